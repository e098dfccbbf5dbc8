"""The analytics page in admin: usage, revenue, upstream cost and margin over time, read from the rollups only."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.template.response import TemplateResponse
from django.urls import reverse

from billing.admin.accounts import register_account_panel
from billing.money import ZERO
from core.admin import ReadOnlyMixin
from core.usd import decimal_text

from .customer import account_overview
from .forms import AnalyticsFilterForm
from .models import LATENCY_BOUNDS_MS, HourlyUsage
from .selectors import (
    PERCENTILES,
    Figures,
    ledger_series,
    quality,
    usage_breakdown,
    usage_series,
    usage_totals,
)

if TYPE_CHECKING:
    from django.http import HttpRequest, HttpResponse

TOP = 10

register_account_panel(account_overview)


@admin.register(HourlyUsage)
class AnalyticsAdmin(ReadOnlyMixin, admin.ModelAdmin[HourlyUsage]):
    """The model's list is the analytics page; its rows are written by the rollup refresh only."""

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        form = AnalyticsFilterForm(request.GET or None)
        scope = form.scope()
        group = form.breakdown
        totals = usage_totals(scope)
        series = usage_series(scope)
        breakdown = usage_breakdown(scope, group)
        ledger, ledger_totals = ledger_series(scope)
        by_model = quality(scope, "model")
        by_provider = quality(scope, "provider")
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Analytics",
            "form": form,
            "scope": scope.snapped,
            "group": group,
            "totals": totals,
            "breakdown": [_drill(request, group, row) for row in breakdown],
            "top_accounts": _linked_accounts(usage_breakdown(scope, "account", limit=TOP)),
            "top_models": [_drill(request, "model", row) for row in usage_breakdown(scope, "model", limit=TOP)],
            "by_model": by_model,
            "by_provider": by_provider,
            "ledger_totals": ledger_totals,
            "percentiles": PERCENTILES,
            "charts": {
                "bucket": scope.bucket,
                "usage": _usage_chart(series),
                "breakdown": _breakdown_chart(breakdown),
                "latency": _latency_chart(by_model),
                "ledger": {
                    "labels": [day.label for day in ledger],
                    "series": {
                        kind: [decimal_text(day.amounts.get(kind, ZERO)) for day in ledger] for kind in ledger_totals
                    },
                },
            },
            **(extra_context or {}),
        }
        return TemplateResponse(request, "admin/analytics/analytics.html", context)


def _usage_chart(series: list[Figures]) -> dict:
    return {
        "labels": [f.label for f in series],
        "requests": [f.requests for f in series],
        "errors": [f.errors for f in series],
        "revenue": [decimal_text(f.revenue) for f in series],
        "upstream_cost": [decimal_text(f.upstream_cost) for f in series],
        "margin": [decimal_text(f.margin) for f in series],
    }


def _breakdown_chart(rows: list[Figures]) -> dict:
    return {
        "labels": [f.label for f in rows],
        "revenue": [decimal_text(f.revenue) for f in rows],
        "upstream_cost": [decimal_text(f.upstream_cost) for f in rows],
        "margin": [decimal_text(f.margin) for f in rows],
    }


def _latency_chart(rows: list[Figures]) -> dict:
    with_latency = [f for f in rows if f.extra.get("percentiles")][:TOP]
    return {
        "labels": [f.label for f in with_latency],
        # A percentile past the last bound is drawn at that bound.
        **{f"p{p}": [f.extra["percentiles"][p] or LATENCY_BOUNDS_MS[-1] for f in with_latency] for p in PERCENTILES},
    }


def _drill(request: HttpRequest, group: str, row: Figures) -> Figures:
    """Link a breakdown row to this page narrowed to it (each breakdown is also a filter of the same name)."""
    query = request.GET.copy()
    value = row.extra["id"]
    if group == "app" and not value:
        value = "-"
    query[group] = "" if value is None else str(value)
    query.pop("group", None)
    row.extra["drill_url"] = f"?{query.urlencode()}"
    return row


def _linked_accounts(rows: list[Figures]) -> list[Figures]:
    for row in rows:
        row.extra["url"] = reverse("admin:accounts_account_change", args=[row.extra["id"]])
    return rows
