"""The books after a fault: what every fault test asserts, run in the test process or against a private cluster.

`python -m tests.faults.books seed|audit` does the same against the database DATABASE_URL names (the
private PostgreSQL cluster of the outage test), reading and writing JSON on stdin and stdout.
"""

from __future__ import annotations

import json
import os
import sys
from datetime import timedelta
from decimal import Decimal

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mlrouter.settings")
    import django

    django.setup()

from django.db.models import Count, Sum
from django.utils import timezone

from accounts.models import Account
from billing.models import Hold, LedgerEntry
from billing.reconciliation import reconcile_run


def reconcile_after_expiry() -> dict:
    """Let every open hold expire (as an hour would) and run reconciliation, as the scheduled task does."""
    Hold.objects.filter(status=Hold.Status.OPEN).update(expires_at=timezone.now() - timedelta(seconds=1))
    run = reconcile_run(trigger="manual")
    assert run is not None, "another reconciliation was running"
    return run.counts


def audit(delivered: dict[str, Decimal], *, uncharged_ok: frozenset[str] = frozenset()) -> list[str]:
    """What is wrong with the books: balances off their ledger, held amounts off their open holds, a
    generation charged twice, an open hold, or an answer delivered (generation id -> the cost the
    client was told) without exactly that one charge. `uncharged_ok`: generations allowed no charge."""
    problems = []
    for account in Account.objects.all():
        ledger = LedgerEntry.objects.filter(account=account).aggregate(s=Sum("amount"))["s"] or Decimal(0)
        held = Hold.objects.filter(account=account, status=Hold.Status.OPEN).aggregate(s=Sum("amount"))["s"]
        if account.balance != ledger:
            problems.append(f"account {account.pk}: balance {account.balance} != ledger {ledger}")
        if account.held != (held or Decimal(0)):
            problems.append(f"account {account.pk}: held {account.held} != open holds {held}")
    charges = LedgerEntry.objects.filter(kind=LedgerEntry.Kind.CHARGE)
    for row in charges.values("reference").annotate(n=Count("pk")).filter(n__gt=1):
        problems.append(f"generation {row['reference']} charged {row['n']} times")
    for reference in Hold.objects.filter(status=Hold.Status.OPEN).values_list("reference", flat=True):
        problems.append(f"hold {reference} still open")
    for generation_id, cost in delivered.items():
        amounts = list(charges.filter(reference=generation_id).values_list("amount", flat=True))
        if generation_id in uncharged_ok and not amounts:
            continue
        if amounts != [-cost]:
            problems.append(f"generation {generation_id} delivered at {cost} but charged {amounts}")
    return problems


def _main() -> None:
    command = sys.argv[1]
    if command == "seed":
        from tests.e2e.conftest import make_shop

        options = json.loads(sys.stdin.read())
        shop = make_shop(options.pop("emulator_url"), **options)
        print(json.dumps({"key": shop.key, "model": shop.model.public_id, "account_id": shop.account_id}))
    elif command == "audit":
        options = json.loads(sys.stdin.read())
        counts = reconcile_after_expiry() if options["reconcile"] else {}
        delivered = {k: Decimal(v) for k, v in options["delivered"].items()}
        print(json.dumps({"problems": audit(delivered), "reconciliation": counts}, default=str))


if __name__ == "__main__":
    _main()
