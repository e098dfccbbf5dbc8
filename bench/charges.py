"""Client CPU per charge: one statement per charge against group commit (core/group_commit.py).

Under gevent, as gunicorn serves: `CONCURRENCY` green threads settle `CHARGES` holds (each with its
Generation, as the relay settles them) through `billing.services.hold_settle`, once with group commit
and once with every charge in its own statement; `time.process_time` around each round, the books
checked after. Holds are placed beforehand and not timed. The database is migrated and written to.

    DATABASE_URL=postgres://…/mlrouter_somewhere .venv/bin/python bench/charges.py [CHARGES] [CONCURRENCY]
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from decimal import Decimal  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
ACCOUNTS = 8


def _setup() -> None:
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mlrouter.settings")
    import django

    django.setup()
    from django.core.management import call_command

    from core.db import green_wait_install

    green_wait_install()
    call_command("migrate", verbosity=0)


def _world(charges: int) -> list[str]:
    """Funded accounts and `charges` open holds, each with its pending Generation; their references."""
    from django.utils import timezone

    from accounts.models import Account
    from accounts.services import api_key_create
    from billing.models import Price
    from billing.services import hold_place, ledger_credit
    from billing.statements import RowInsert
    from completions.models import Generation, Model

    run = uuid.uuid4().hex[:8]
    model = Model.objects.create(public_id=f"bench/charges-{run}", name="charges", context_length=1000)
    price = Price.objects.create(model=model, prompt=Decimal("0.15"), completion=Decimal("0.60"))
    owners = []
    for n in range(ACCOUNTS):
        account = Account.objects.create(name=f"charges {run} {n}", email=f"charges-{run}-{n}@example.com")
        ledger_credit(account=account, amount=Decimal("1000"), idempotency_key=f"bench-charges:{run}:{n}")
        owners.append((account.pk, api_key_create(account=account)[0].pk))
    references = []
    for n in range(charges):
        account_id, key_id = owners[n % ACCOUNTS]
        reference = f"charges-{run}-{n}"
        row = {
            "id": reference,
            "account_id": account_id,
            "api_key_id": key_id,
            "model_id": model.pk,
            "price_id": price.pk,
            "hold_amount": Decimal("0.01"),
            "started_at": timezone.now(),
        }
        hold_place(account_id=account_id, amount=Decimal("0.01"), reference=reference, also=RowInsert(Generation, row))
        references.append(reference)
    return references


def _round(references: list[str], concurrency: int, *, grouped: bool) -> dict:
    import gevent

    from billing import services
    from billing.statements import RowUpdate
    from completions.models import Generation

    statements = []
    batch = services._charges.batch
    services._charges.cooperative = grouped
    services._charges.batch = lambda items: statements.append(len(items)) or batch(items)
    queue = list(reversed(references))

    def settle() -> None:
        while queue:
            reference = queue.pop()
            changes = {"status": Generation.Status.COMPLETED, "prompt_tokens": 10, "finish_reason": "stop"}
            services.hold_settle(
                reference=reference, cost=Decimal("0.000006"), also=RowUpdate(Generation, reference, changes, "cost")
            )

    cpu, wall = time.process_time(), time.perf_counter()
    gevent.joinall([gevent.spawn(settle) for _ in range(concurrency)], raise_error=True)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    services._charges.batch = batch
    return {
        "mode": "group commit" if grouped else "one statement per charge",
        "charges": len(references),
        "concurrency": concurrency,
        "cpu_us_per_charge": round(cpu / len(references) * 1e6, 1),
        "wall_us_per_charge": round(wall / len(references) * 1e6, 1),
        "statements": len(statements) if grouped else len(references),
        "mean_batch": round(sum(statements) / len(statements), 1) if grouped else 1.0,
    }


def _books_balanced() -> bool:
    """Every account's entries, in id order, run to its balance, each `balance_after` on the way."""
    from accounts.models import Account
    from billing.models import LedgerEntry

    for account in Account.objects.filter(name__startswith="charges "):
        running = Decimal(0)
        for amount, balance_after in (
            LedgerEntry.objects.filter(account=account).order_by("id").values_list("amount", "balance_after")
        ):
            running += amount
            if running != balance_after:
                return False
        if running != account.balance or account.held != 0:
            return False
    return True


def main() -> None:
    charges = int(sys.argv[1]) if len(sys.argv) > 1 else 4000
    concurrency = int(sys.argv[2]) if len(sys.argv) > 2 else 32
    _setup()
    results = []
    for grouped in (False, True, False, True):
        results.append(_round(_world(charges), concurrency, grouped=grouped))
    print(json.dumps({"rounds": results, "books_balanced": _books_balanced()}, indent=1))


if __name__ == "__main__":
    main()
