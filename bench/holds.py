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

from decimal import Decimal  # noqa: E402

from charges import ACCOUNTS, _funded, _generation, _run, _timed  # noqa: E402 (bench/charges.py, beside this one)


def _round(holds: int, concurrency: int, grouped: bool) -> dict:
    """Holds placed, each with its Generation, as the relay places them."""
    from billing import services

    run, owners, model_id, price_id = _funded("holds")

    def place(n: int) -> None:
        owner, reference = owners[n % ACCOUNTS], f"holds-{run}-{n}"
        services.hold_place(
            account_id=owner[0],
            amount=Decimal("0.01"),
            reference=reference,
            also=_generation(reference, owner, model_id, price_id),
        )

    return _timed("holds", list(range(holds)), concurrency, services._holds, grouped, place)


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
    _run(_round, _books_balanced)


if __name__ == "__main__":
    main()
