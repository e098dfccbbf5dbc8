from __future__ import annotations

from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError

from billing.models import ReconciliationRun
from billing.reconciliation import reconcile_run


class Command(BaseCommand):
    help = "Run the usage reconciliation now and print its findings; exit 0 when clean, 1 when it found something."

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--lookback-hours",
            type=float,
            default=None,
            help="Check generations started in the last N hours only (the checkpoint stays where it was).",
        )
        parser.add_argument(
            "--full",
            action="store_true",
            help="A full audit: sum the whole ledger and check every generation (default: what changed since "
            "the last run).",
        )

    def handle(self, *args, **options) -> None:
        hours = options["lookback_hours"]
        if hours is not None and hours <= 0:
            raise CommandError("--lookback-hours must be positive")
        lookback = timedelta(hours=hours) if hours else None
        run = reconcile_run(trigger="cli", lookback=lookback, full=True if options["full"] else None)
        if run is None:
            raise CommandError("another reconciliation run is in progress; try again shortly", returncode=2)
        for finding in run.findings.order_by("pk"):
            amount = "-" if finding.amount is None else f"{finding.amount:+}"
            fixed = f" (fixed by ledger entry #{finding.fix_entry_id})" if finding.fix_entry_id else ""
            account = f"account #{finding.account_id}" if finding.account_id else "no account"
            reference = f" {finding.reference}" if finding.reference else ""
            self.stdout.write(f"{finding.kind}: {account}{reference} {amount} USD{fixed}: {finding.detail}")
        counts = ", ".join(f"{k}={v}" for k, v in run.counts.items() if not isinstance(v, dict))
        self.stdout.write(f"reconciliation #{run.pk} {run.status}: {counts}")
        if run.status != ReconciliationRun.Status.CLEAN:
            raise SystemExit(1)
