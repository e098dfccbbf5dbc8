"""`{% changelist_filter_notice cl %}`: says that a list is filtered, by what, even when no sidebar filter shows it."""

from __future__ import annotations

from typing import Any

from django import template
from django.contrib.admin.views.main import (
    ALL_VAR,
    IS_FACETS_VAR,
    IS_POPUP_VAR,
    ORDER_VAR,
    PAGE_VAR,
    SEARCH_VAR,
    TO_FIELD_VAR,
    ChangeList,
)
from django.core.exceptions import FieldDoesNotExist, ValidationError

register = template.Library()

NOT_FILTERS = {
    ALL_VAR,
    IS_FACETS_VAR,
    IS_POPUP_VAR,
    ORDER_VAR,
    PAGE_VAR,
    SEARCH_VAR,
    TO_FIELD_VAR,
    "_changelist_filters",
}
EXACT = {"", "exact", "id", "id__exact", "pk", "pk__exact"}


@register.inclusion_tag("admin/filter_notice.html")
def changelist_filter_notice(cl: ChangeList) -> dict[str, Any]:
    filters = {key: value for key, value in cl.params.items() if key not in NOT_FILTERS}
    return {
        "filters": [_describe(cl.model, key, value) for key, value in filters.items()],
        "clear_url": cl.get_query_string(remove=list(filters)),
    }


def _describe(model: Any, key: str, value: str) -> str:
    """`account: Acme Labs (#3)`, `status: failed`, `started at (year): 2026`."""
    name, _, lookup = key.partition("__")
    try:
        field = model._meta.get_field(name.removesuffix("_id") if name.endswith("_id") else name)
    except FieldDoesNotExist:
        return f"{key}: {value}"
    label = str(field.verbose_name)
    if field.is_relation and field.related_model is not None and lookup in EXACT:
        try:
            related = field.related_model._default_manager.filter(pk=value).first()
        except (ValueError, ValidationError):
            related = None
        return f"{label}: {related if related is not None else value}"
    if field.choices and lookup in EXACT:
        return f"{label}: {dict(field.flatchoices).get(value, value)}"
    suffix = f" ({lookup.replace('__', ' ')})" if lookup not in EXACT else ""
    return f"{label}{suffix}: {value}"
