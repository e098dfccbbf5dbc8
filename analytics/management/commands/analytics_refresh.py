"""Refresh the analytics rollups now, optionally reopening every period to recompute it from scratch."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandParser

from analytics.rollups import rollups_refresh, rollups_reopen


class Command(BaseCommand):
    help = "Recompute the open hours and days of the analytics rollups (--reopen: all of them, over several runs)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--reopen", action="store_true", help="Mark every period open again first.")

    def handle(self, *args, reopen: bool = False, **options) -> None:
        if reopen:
            self.stdout.write(f"Reopened {rollups_reopen()} periods.")
        refreshed = rollups_refresh()
        if refreshed is None:
            self.stdout.write("Another refresh is in progress; nothing done.")
            return
        self.stdout.write(f"Recomputed {refreshed.hours} hours of usage and {refreshed.days} days of the ledger.")
