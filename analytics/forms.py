"""The analytics page's filters: a period, a bucket size, the dimensions to narrow to and the breakdown."""

from __future__ import annotations

from datetime import datetime, time, timedelta

from django import forms
from django.utils import timezone

from completions.models import Model, Provider

from .rollups import UTC
from .selectors import GROUPS, Scope

RANGES = {"24h": timedelta(hours=24), "7d": timedelta(days=7), "30d": timedelta(days=30), "90d": timedelta(days=90)}
# Longer than this, hour buckets would draw thousands of bars: the page switches to days.
MAX_HOURLY_SPAN = timedelta(days=31)


class AnalyticsFilterForm(forms.Form):
    range = forms.ChoiceField(
        choices=[(key, f"last {key}") for key in RANGES] + [("custom", "custom")], initial="7d", required=False
    )
    start = forms.DateField(required=False, help_text="Custom range: first UTC day.")
    end = forms.DateField(required=False, help_text="Custom range: last UTC day, included.")
    bucket = forms.ChoiceField(
        choices=[("", "auto"), ("hour", "hour"), ("day", "day"), ("week", "week")], required=False
    )
    model = forms.ModelChoiceField(Model.objects.all(), required=False)
    provider = forms.ModelChoiceField(Provider.objects.all(), required=False)
    account = forms.IntegerField(required=False, min_value=1, help_text="Account id.")
    key = forms.IntegerField(required=False, min_value=1, help_text="API key id.")
    surface = forms.CharField(required=False, max_length=32)
    app = forms.CharField(required=False, max_length=200, help_text="The X-Title; '-' for requests without one.")
    group = forms.ChoiceField(choices=[(g, g) for g in GROUPS], initial="model", required=False)

    def clean(self) -> dict:
        data = super().clean()
        if data.get("range") == "custom":
            if not data.get("start") or not data.get("end"):
                raise forms.ValidationError("A custom range needs a first and a last day.")
            if data["end"] < data["start"]:
                raise forms.ValidationError("The last day is before the first.")
        return data

    def scope(self, now: datetime | None = None) -> Scope:
        """The `Scope` these filters describe (the defaults when the form is invalid)."""
        data = self.cleaned_data if self.is_valid() else {}
        now = now or timezone.now()
        if data.get("range") == "custom":
            start = datetime.combine(data["start"], time.min, tzinfo=UTC)
            end = datetime.combine(data["end"], time.min, tzinfo=UTC) + timedelta(days=1)
        else:
            start, end = now - RANGES[data.get("range") or "7d"], now
        bucket = data.get("bucket") or _auto_bucket(end - start)
        if bucket == "hour" and end - start > MAX_HOURLY_SPAN:
            bucket = "day"
        app = data.get("app") or None
        return Scope(
            start=start,
            end=end,
            bucket=bucket,
            account_id=data.get("account"),
            api_key_id=data.get("key"),
            model_id=data["model"].pk if data.get("model") else None,
            provider_id=data["provider"].pk if data.get("provider") else None,
            surface=data.get("surface") or "",
            app="" if app == "-" else app,
        )

    @property
    def breakdown(self) -> str:
        return (self.cleaned_data.get("group") if self.is_valid() else None) or "model"


def _auto_bucket(span: timedelta) -> str:
    if span <= timedelta(days=2):
        return "hour"
    return "week" if span > timedelta(days=60) else "day"
