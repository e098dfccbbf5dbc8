"""Admin for the bot's own state: the payment settings operators edit."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest, HttpResponseRedirect
from django.urls import reverse

from .models import BotSettings


@admin.register(BotSettings)
class BotSettingsAdmin(admin.ModelAdmin[BotSettings]):
    fieldsets = [
        ("Telegram Stars", {"fields": ["usd_per_star"]}),
        (
            "Payment provider (when TELEGRAM_PAYMENT_PROVIDER_TOKEN is set)",
            {"fields": ["provider_currency", "usd_per_provider_unit"]},
        ),
        ("Top-ups", {"fields": ["min_topup_usd", "max_topup_usd", "support_contact"]}),
    ]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return not BotSettings.objects.exists()

    def has_delete_permission(self, request: HttpRequest, obj: BotSettings | None = None) -> bool:
        return False

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None) -> HttpResponseRedirect:
        # One row: the list would only ever show it, so go straight to editing it.
        BotSettings.load()
        return HttpResponseRedirect(reverse("admin:bot_botsettings_change", args=[1]))
