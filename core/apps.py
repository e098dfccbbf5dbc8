"""`core` as an app only for its start-up work: the log redaction (core/redaction.py)."""

from __future__ import annotations

from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "core"
    verbose_name = "Core"

    def ready(self) -> None:
        from core.redaction import install

        install()
