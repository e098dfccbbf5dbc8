"""Helpers for driving admin forms the way a browser does."""

from __future__ import annotations

from typing import Any

from django.urls import reverse


def admin_url(model_or_obj: Any, view: str, *args: Any) -> str:
    opts = model_or_obj._meta
    return reverse(f"admin:{opts.app_label}_{opts.model_name}_{view}", args=args)


def _bound_values(form: Any, data: dict[str, Any]) -> None:
    for name in form.fields:
        value = form[name].value()
        if value is None or value is False:
            continue
        data[form.add_prefix(name)] = "on" if value is True else value


def change_form_data(response: Any, **changes: Any) -> dict[str, Any]:
    """Return what the browser would POST back from a rendered admin change form, with `changes`."""
    data: dict[str, Any] = {}
    _bound_values(response.context["adminform"].form, data)
    for inline in response.context["inline_admin_formsets"]:
        formset = inline.formset
        _bound_values(formset.management_form, data)
        for form in formset.forms:
            _bound_values(form, data)
    data.update(changes)
    return {key: value for key, value in data.items() if value is not None}


def run_action(client: Any, model: Any, action: str, objects: list[Any], **extra: Any) -> Any:
    """POST a changelist action for `objects`."""
    data = {"action": action, "_selected_action": [obj.pk for obj in objects], **extra}
    return client.post(admin_url(model, "changelist"), data)
