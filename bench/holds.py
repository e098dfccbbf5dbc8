"""Client CPU per hold: one statement per hold against group commit (core/group_commit.py).

Under gevent, as gunicorn serves: `CONCURRENCY` green threads place `HOLDS` holds (each with its
Generation, as the relay places them) through `billing.services.hold_place`, once with group commit and
once with every hold in its own statement; `time.process_time` around each round, the books checked
after (each account's `held` is the sum of its open holds). The database is migrated and written to.

    DATABASE_URL=postgres://…/mlrouter_somewhere .venv/bin/python bench/holds.py [HOLDS] [CONCURRENCY]
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


def _world() -> tuple[str, list[tuple[int, int]], int, int]:
    """Funded accounts with a key each: the run's tag, (account, key) pairs, the model and its price."""
    from accounts.models import Account
    from accounts.services import api_key_create
    from billing.models import Price
    from billing.services import ledger_credit
    from completions.models import Model

    run = uuid.uuid4().hex[:8]
    model = Model.objects.create(public_id=f"bench/holds-{run}", name="holds", context_length=1000)
    price = Price.objects.create(model=model, prompt=Decimal("0.15"), completion=Decimal("0.60"))
    owners = []
    for n in range(ACCOUNTS):
        account = Account.objects.create(name=f"holds {run} {n}", email=f"holds-{run}-{n}@example.com")
        ledger_credit(account=account, amount=Decimal("1000"), idempotency_key=f"bench-holds:{run}:{n}")
        owners.append((account.pk, api_key_create(account=account)[0].pk))
    return run, owners, model.pk, price.pk


def _round(holds: int, concurrency: int, *, grouped: bool) -> dict:
    import gevent
    from django.utils import timezone

    from billing import services
    from billing.statements import RowInsert
    from completions.models import Generation

    run, owners, model_id, price_id = _world()
    statements = []
    batch = services._holds.batch
    services._holds.cooperative = grouped
    services._holds.batch = lambda items: statements.append(len(items)) or batch(items)
    queue = list(reversed(range(holds)))

    def place() -> None:
        while queue:
            n = queue.pop()
            account_id, key_id = owners[n % ACCOUNTS]
            reference = f"holds-{run}-{n}"
            row = {
                "id": reference,
                "account_id": account_id,
                "api_key_id": key_id,
                "model_id": model_id,
                "price_id": price_id,
                "surface": "chat",
                "stream": False,
                "user": "",
                "origin": "",
                "app": "",
                "request_id": "",
                "hold_amount": Decimal("0.01"),
                "started_at": timezone.now(),
            }
            services.hold_place(
                account_id=account_id, amount=Decimal("0.01"), reference=reference, also=RowInsert(Generation, row)
            )

    cpu, wall = time.process_time(), time.perf_counter()
    gevent.joinall([gevent.spawn(place) for _ in range(concurrency)], raise_error=True)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    services._holds.batch = batch
    return {
        "mode": "group commit" if grouped else "one statement per hold",
        "holds": holds,
        "concurrency": concurrency,
        "cpu_us_per_hold": round(cpu / holds * 1e6, 1),
        "wall_us_per_hold": round(wall / holds * 1e6, 1),
        "statements": len(statements) if grouped else holds,
        "mean_batch": round(sum(statements) / len(statements), 1) if grouped else 1.0,
    }


def _books_balanced() -> bool:
    """Every account holds exactly the sum of its open holds, and its balance is untouched."""
    from django.db.models import Sum

    from accounts.models import Account
    from billing.models import Hold

    for account in Account.objects.filter(name__startswith="holds "):
        open_sum = Hold.objects.filter(account=account, status=Hold.Status.OPEN).aggregate(s=Sum("amount"))["s"]
        if account.held != (open_sum or 0) or account.balance != Decimal("1000"):
            return False
    return True


def main() -> None:
    holds = int(sys.argv[1]) if len(sys.argv) > 1 else 4000
    concurrency = int(sys.argv[2]) if len(sys.argv) > 2 else 32
    _setup()
    results = []
    for grouped in (False, True, False, True):
        results.append(_round(holds, concurrency, grouped=grouped))
    print(json.dumps({"rounds": results, "books_balanced": _books_balanced()}, indent=1))


if __name__ == "__main__":
    main()
