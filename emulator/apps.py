"""The emulator as a Django app: its `run_emulator` command and its deployment check."""

from __future__ import annotations

from django.apps import AppConfig


class EmulatorConfig(AppConfig):
    name = "emulator"
    verbose_name = "Upstream emulator"

    def ready(self) -> None:
        """Register the deployment check."""
        from emulator import checks  # noqa: F401  (registers on import)
