"""Server-side guards for admin actions: a permission check and a confirmation page with a reason.

Django hides an action from users who lack its `permissions`; the action itself checks again with
`permission_required`, so a crafted POST or a direct call is refused too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django import forms
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.core.exceptions import PermissionDenied
from django.template.response import TemplateResponse

if TYPE_CHECKING:
    from django.contrib.admin import ModelAdmin
    from django.http import HttpRequest


def permission_required(request: HttpRequest, *perms: str) -> None:
    """Raise PermissionDenied (403) unless the user holds every one of `perms`."""
    if not request.user.is_active or not request.user.has_perms(perms):
        raise PermissionDenied


class ReasonForm(forms.Form):
    reason = forms.CharField(
        max_length=500,
        required=False,
        error_messages={"required": "Say why."},
        widget=forms.Textarea(attrs={"rows": 2, "cols": 60}),
        help_text="Kept with the action in the admin history; a refund also writes it on its ledger entry.",
    )

    def __init__(self, *args: Any, needs_reason: bool, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["reason"].required = needs_reason


def action_confirmed(
    modeladmin: ModelAdmin,
    request: HttpRequest,
    objects: list[Any],
    *,
    title: str,
    consequence: str,
    lines: list[str],
    needs_reason: bool = True,
) -> tuple[TemplateResponse | None, str]:
    """Return (None, reason) once the operator confirmed, else (the confirmation page, "").

    Like Django's delete confirmation: the action's first POST only shows what will happen (`lines`);
    the page posts the same action again with `post=yes` and the reason.
    """
    confirming = request.POST.get("post") == "yes"
    form = ReasonForm(request.POST if confirming else None, needs_reason=needs_reason)
    if confirming and objects and form.is_valid():
        return None, form.cleaned_data["reason"]
    context = {
        **modeladmin.admin_site.each_context(request),
        "opts": modeladmin.opts,
        "title": title,
        "consequence": consequence,
        "lines": lines,
        "objects": objects,
        "form": form,
        "action": request.POST.get("action", ""),
        "action_checkbox_name": ACTION_CHECKBOX_NAME,
    }
    return TemplateResponse(request, "admin/action_confirmation.html", context), ""
