"""`{% ops_dashboard %}`: the operators' figures on the admin index."""

from __future__ import annotations

from django import template

from completions.dashboard import dashboard_figures
from core.usd import usd_exact

register = template.Library()


@register.filter
def usd(value) -> str:
    """USD as operators read it everywhere in the admin: `$1,234.50`, no digit lost."""
    return usd_exact(value)


@register.inclusion_tag("admin/ops_dashboard.html", takes_context=True)
def ops_dashboard(context: template.Context) -> dict:
    request = context.get("request")
    visible = request is not None and request.user.is_staff
    return {"dashboard": dashboard_figures() if visible else None}
