"""`manage.py check --deploy` warns when the emulator is mounted outside DEBUG."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Tags, Warning, register


@register(Tags.security, deploy=True)
def check_emulator_off_in_production(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """W001 when EMULATOR_ENABLED serves the fake provider from a non-DEBUG deployment."""
    if settings.DEBUG or not settings.EMULATOR_ENABLED:
        return []
    keyed = "behind EMULATOR_API_KEY" if settings.EMULATOR_API_KEY else "refusing every request (no EMULATOR_API_KEY)"
    return [
        Warning(
            f"The upstream emulator is mounted at /emulator/ outside DEBUG, {keyed}.",
            hint="It answers with fake completions; set EMULATOR_ENABLED=false in production.",
            id="emulator.W001",
        )
    ]
