"""How long a reconciliation run takes as the ledger grows: an incremental run and a full audit.

Grows the ledger of the database in DATABASE_URL (already migrated) to each size in turn with
generate_series (a charge entry and its settled hold per row, spread over 1,000 accounts, balances
set to their sums), then: a full audit (which leaves the checkpoint), then three rounds of new traffic
— 1,000 generations held and charged through billing's services, as the request path writes them —
each followed by an incremental run. Prints JSON. `make bench` runs it after the load scenarios.

    DATABASE_URL=postgres://…/mlrouter_bench python bench/reconcile.py 1000000 5000000
"""

from __future__ import annotations

import json
import os
import secrets
import statistics
import sys
import time
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ACCOUNTS = 1000
NEW_PER_ROUND = 1000
ROUNDS = 3


def _setup() -> None:
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mlrouter.settings")
    # New entries are folded into the checkpoint at once: the rounds follow each other within seconds.
    os.environ["RECONCILE_CHECKPOINT_LAG_SECONDS"] = "0"
    os.environ["RECONCILE_FULL_EVERY_RUNS"] = "0"
    import django

    django.setup()


def _accounts() -> dict[int, int]:
    """ACCOUNTS funded accounts with a key each: {account id: key id}."""
    from accounts.models import Account, ApiKey
    from accounts.services import account_create, api_key_create
    from billing.services import ledger_credit

    for i in range(Account.objects.filter(name__startswith="bench-recon-").count(), ACCOUNTS):
        account = account_create(name=f"bench-recon-{i}")
        ledger_credit(account=account, amount=Decimal(1_000_000), idempotency_key=f"bench-recon-fund:{account.pk}")
        api_key_create(account=account, name="bench")
    keys = ApiKey.objects.filter(account__name__startswith="bench-recon-").order_by("account_id")
    return dict(keys.values_list("account_id", "pk"))


def _grow(rows: int, accounts: dict[int, int]) -> float:
    """Append history until the ledger has `rows` entries; the seconds it took."""
    from django.db import connection

    started = time.monotonic()
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM billing_ledgerentry")
        have = cursor.fetchone()[0]
        if have < rows:
            # Account ids are consecutive (created in one go): spread the rows over them.
            first, last, low, n = have + 1, rows, min(accounts), len(accounts)
            cursor.execute(
                """
                INSERT INTO billing_ledgerentry
                    (account_id, kind, amount, balance_after, reference, idempotency_key, memo, created_at)
                SELECT %s + i %% %s, 'charge', -0.0001, 0, 'gen-hist-' || i, 'bench-hist:' || i, '',
                       now() - interval '1 second' * (%s - i)
                FROM generate_series(%s, %s) AS i
                """,
                [low, n, last, first, last],
            )
            cursor.execute(
                """
                INSERT INTO billing_hold (account_id, amount, reference, status, created_at, expires_at, closed_at,
                                          close_reason)
                SELECT %s + i %% %s, 0.01, 'gen-hist-' || i, 'settled', now(), now(), now(), ''
                FROM generate_series(%s, %s) AS i
                """,
                [low, n, first, last],
            )
            # History only: every balance equals its ledger, as the services would have left it.
            cursor.execute(
                """
                UPDATE accounts_account a SET balance = s.total
                FROM (SELECT account_id, SUM(amount) AS total FROM billing_ledgerentry GROUP BY account_id) s
                WHERE a.id = s.account_id
                """
            )
            cursor.execute("ANALYZE")
    return time.monotonic() - started


def _traffic(accounts: dict[int, int], tag: str) -> None:
    """NEW_PER_ROUND generations held and charged the way settlement writes them."""
    from django.utils import timezone

    from billing.models import Price
    from billing.services import hold_place, hold_settle
    from billing.statements import RowInsert, RowUpdate
    from completions.models import Generation

    price = Price.objects.first()
    if price is None:  # run on its own, not after `make bench`'s seed
        from completions.catalog import catalog_import

        catalog_import(
            {
                "providers": [{"name": "bench-recon", "base_url": "http://127.0.0.1:9/v1"}],
                "models": [
                    {
                        "id": "bench/reconcile",
                        "name": "Reconciliation benchmark",
                        "routes": [{"provider": "bench-recon", "upstream_model": "none"}],
                        "price": {"prompt": "0.15", "completion": "0.60"},
                    }
                ],
            }
        )
        price = Price.objects.first()
    ids = list(accounts)
    for i in range(NEW_PER_ROUND):
        account_id = ids[i % len(ids)]
        key = accounts[account_id]
        generation_id = f"gen-bench-{tag}-{i}"
        now = timezone.now()
        row = {
            "id": generation_id,
            "account_id": account_id,
            "api_key_id": key,
            "model_id": price.model_id,
            "price_id": price.pk,
            "surface": "chat",
            "hold_amount": Decimal("0.01"),
            "started_at": now,
        }
        hold_place(
            account_id=account_id, amount=Decimal("0.01"), reference=generation_id, also=RowInsert(Generation, row)
        )
        changes = {
            "status": Generation.Status.COMPLETED,
            "prompt_tokens": 10,
            "completion_tokens": 5,
            "finished_at": now,
        }
        hold_settle(
            reference=generation_id,
            cost=Decimal("0.000004"),
            memo="bench",
            also=RowUpdate(Generation, generation_id, changes, charge_field="cost"),
        )


def main(sizes: list[int]) -> list[dict]:
    _setup()
    from billing.reconciliation import reconcile_run

    accounts = _accounts()
    run_tag = secrets.token_hex(3)  # generation ids unique across runs on the same database
    results = []
    for rows in sizes:
        grown = _grow(rows, accounts)
        started = time.monotonic()
        audit = reconcile_run(trigger="bench", full=True)
        full_s = time.monotonic() - started
        incremental = []
        for round_ in range(ROUNDS):
            _traffic(accounts, f"{run_tag}-{rows}-{round_}")
            started = time.monotonic()
            run = reconcile_run(trigger="bench")
            incremental.append(time.monotonic() - started)
            assert run.scope == "incremental" and run.status == "clean", (run.scope, run.status, run.counts)
        results.append(
            {
                "ledger_rows": rows,
                "accounts": len(accounts),
                "seed_s": round(grown, 1),
                "full_audit_s": round(full_s, 3),
                "full_audit_status": audit.status,
                "new_generations_per_run": NEW_PER_ROUND,
                "incremental_s": [round(s, 3) for s in incremental],
                "incremental_median_s": round(statistics.median(incremental), 3),
                "generations_checked": run.counts["generations_checked"],
            }
        )
        print(json.dumps(results[-1]), file=sys.stderr, flush=True)
    return results


if __name__ == "__main__":
    print(json.dumps(main([int(arg) for arg in sys.argv[1:]] or [1_000_000, 5_000_000]), indent=2))
