"""The pieces every ML Router admin module shares: links, a bounded paginator, read-only and id-search mixins.

Only Django and `core` here: each app's admin builds on these, and none of them on another app's admin.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from django.core.paginator import Paginator
from django.db.models import Q, QuerySet
from django.urls import reverse
from django.utils.functional import cached_property
from django.utils.html import format_html

from .usd import usd_exact, usd_short

if TYPE_CHECKING:
    from django.http import HttpRequest

_NUMBER = re.compile(r"-?\d{1,18}")


def admin_link(obj: Any, text: str | None = None) -> str:
    """Return a link to an object's admin change page."""
    if obj is None:
        return "—"
    url = reverse(f"admin:{obj._meta.app_label}_{obj._meta.model_name}_change", args=[obj.pk])
    return format_html('<a href="{}">{}</a>', url, text if text is not None else str(obj))


def usd_cell(value: Decimal | None) -> str:
    """A list cell: the amount to six places at most, every digit in its tooltip."""
    if value is None:
        return "—"
    return format_html('<span title="{}">{}</span>', usd_exact(value), usd_short(value))


class BoundedCountPaginator(Paginator):
    """Counts at most `cap` rows, so a changelist never runs COUNT(*) over a table of millions.

    Past the cap the pages stop; reaching further back is what the filters, the search and the date
    hierarchy are for. `count_capped` lets the pagination template say "10000+".
    """

    cap = 10_000

    @cached_property
    def count(self) -> int:
        return self.object_list.order_by()[: self.cap].count()

    @property
    def count_capped(self) -> bool:
        return self.count >= self.cap


class ReadOnlyMixin:
    """For records that only services write (the ledger, holds, generations): nobody edits them here."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class IdSearchMixin:
    """Lets a search for a number match integer columns exactly, through their indexes.

    Django's own `=id` search casts every row's id to text and cannot use an index.
    """

    search_id_fields: tuple[str, ...] = ()

    def get_search_results(self, request: HttpRequest, queryset: QuerySet, search_term: str) -> tuple[QuerySet, bool]:
        results, may_have_duplicates = super().get_search_results(request, queryset, search_term)  # type: ignore[misc]
        term = search_term.strip().lstrip("#")
        if self.search_id_fields and _NUMBER.fullmatch(term):
            by_id = Q.create([(field, int(term)) for field in self.search_id_fields], connector=Q.OR)
            results = results | queryset.filter(by_id)
        return results, may_have_duplicates
