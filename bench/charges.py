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
from collections.abc import Callable  # noqa: E402
from decimal import Decimal  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

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


def _funded(kind: str) -> tuple[str, list[tuple[int, int]], int, int]:
    """Funded accounts with a key each, for a run of `kind`: the run's tag, (account, key) pairs, the model and its
    price. Shared with bench/holds.py."""
    from accounts.models import Account
    from accounts.services import api_key_create
    from billing.models import Price
    from billing.services import ledger_credit
    from completions.models import Model

    run = uuid.uuid4().hex[:8]
    model = Model.objects.create(public_id=f"bench/{kind}-{run}", name=kind, context_length=1000)
    price = Price.objects.create(model=model, prompt=Decimal("0.15"), completion=Decimal("0.60"))
    owners = []
    for n in range(ACCOUNTS):
        account = Account.objects.create(name=f"{kind} {run} {n}", email=f"{kind}-{run}-{n}@example.com")
        ledger_credit(account=account, amount=Decimal("1000"), idempotency_key=f"bench-{kind}:{run}:{n}")
        owners.append((account.pk, api_key_create(account=account)[0].pk))
    return run, owners, model.pk, price.pk


def _generation(reference: str, owner: tuple[int, int], model_id: int, price_id: int) -> Any:
    """The pending Generation placed with a hold, as the relay places it (`RowInsert`)."""
    from django.utils import timezone

    from billing.statements import RowInsert
    from completions.models import Generation

    row = {
        "id": reference,
        "account_id": owner[0],
        "api_key_id": owner[1],
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
    return RowInsert(Generation, row)


def _timed(kind: str, items: list, concurrency: int, commit: Any, grouped: bool, write: Callable[[Any], None]) -> dict:
    """`write` each of `items` from `concurrency` green threads through `commit` (a `GroupCommit`), grouped or
    one statement each; CPU and wall time per item, statements and mean batch. Shared with bench/holds.py."""
    import gevent

    statements = []
    batch = commit.batch
    commit.cooperative = grouped
    commit.batch = lambda batched: statements.append(len(batched)) or batch(batched)
    queue = list(reversed(items))

    def worker() -> None:
        while queue:
            write(queue.pop())

    cpu, wall = time.process_time(), time.perf_counter()
    gevent.joinall([gevent.spawn(worker) for _ in range(concurrency)], raise_error=True)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    commit.batch = batch
    one = kind.removesuffix("s")
    return {
        "mode": "group commit" if grouped else f"one statement per {one}",
        kind: len(items),
        "concurrency": concurrency,
        f"cpu_us_per_{one}": round(cpu / len(items) * 1e6, 1),
        f"wall_us_per_{one}": round(wall / len(items) * 1e6, 1),
        "statements": len(statements) if grouped else len(items),
        "mean_batch": round(sum(statements) / len(statements), 1) if grouped else 1.0,
    }


def _run(rounds: Callable[[int, int, bool], dict], books: Callable[[], bool]) -> None:
    """Four rounds, one statement each and grouped in turn, with the arguments given; then the books."""
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 4000
    concurrency = int(sys.argv[2]) if len(sys.argv) > 2 else 32
    _setup()
    results = [rounds(count, concurrency, grouped) for grouped in (False, True, False, True)]
    print(json.dumps({"rounds": results, "books_balanced": books()}, indent=1))


def _round(charges: int, concurrency: int, grouped: bool) -> dict:
    """Holds placed beforehand (not timed), then settled as the relay settles them."""
    from billing import services
    from billing.statements import RowUpdate
    from completions.models import Generation

    run, owners, model_id, price_id = _funded("charges")
    references = []
    for n in range(charges):
        reference = f"charges-{run}-{n}"
        owner = owners[n % ACCOUNTS]
        services.hold_place(
            account_id=owner[0],
            amount=Decimal("0.01"),
            reference=reference,
            also=_generation(reference, owner, model_id, price_id),
        )
        references.append(reference)
    changes = {"status": Generation.Status.COMPLETED, "prompt_tokens": 10, "finish_reason": "stop"}

    def settle(reference: str) -> None:
        services.hold_settle(
            reference=reference, cost=Decimal("0.000006"), also=RowUpdate(Generation, reference, changes, "cost")
        )

    return _timed("charges", references, concurrency, services._charges, grouped, settle)


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
    _run(_round, _books_balanced)


if __name__ == "__main__":
    main()
