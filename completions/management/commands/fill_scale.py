"""Fill PostgreSQL with a production-sized history, to measure the admin at scale (see bench/README.md)."""

from __future__ import annotations

import time
import uuid

from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction

from billing.models import Price
from billing.services import price_set
from completions.models import Model, Provider, Route

# Every credit that opens an account's history: large enough that no run of charges takes it below zero.
_OPENING_TOPUP = 1000

_STEPS = (
    (
        "accounts",
        """
        INSERT INTO accounts_account
            (name, email, telegram_chat_id, telegram_username, language, status, low_balance_threshold,
             balance, held, created_at)
        SELECT 'Scale ' || %(run)s || ' customer ' || i, 'scale' || %(run)s || '-' || i || '@example.com',
               NULL, 'scale' || %(run)s || '_' || i, 'en',
               CASE WHEN i %% 97 = 0 THEN 'suspended' ELSE 'active' END, 1, 0, 0,
               now() - make_interval(days => (i %% 365))
        FROM generate_series(1, %(accounts)s) AS i
        """,
    ),
    (
        "account map",
        """
        CREATE TEMP TABLE scale_accounts ON COMMIT DROP AS
        SELECT row_number() OVER (ORDER BY id) - 1 AS n, id FROM accounts_account
        WHERE name LIKE 'Scale ' || %(run)s || ' customer %%'
        """,
    ),
    (
        "keys",
        """
        INSERT INTO accounts_apikey
            (account_id, name, prefix, key_hash, rpm_limit, spend_limit, spend_period, allowed_models, created_at)
        SELECT a.id, 'key ' || k, 'orb_live_' || substr(md5(%(run)s || a.id || '-' || k), 1, 6),
               encode(sha256(convert_to('scale:' || %(run)s || ':' || a.id || ':' || k, 'UTF8')), 'hex'),
               600, NULL, 'none', '[]'::jsonb, now()
        FROM scale_accounts a CROSS JOIN generate_series(1, %(keys)s) AS k
        """,
    ),
    (
        "key map",
        """
        CREATE TEMP TABLE scale_keys ON COMMIT DROP AS
        SELECT DISTINCT ON (account_id) account_id, id FROM accounts_apikey
        WHERE account_id IN (SELECT id FROM scale_accounts) ORDER BY account_id, id
        """,
    ),
    (
        "generations",
        """
        INSERT INTO completions_generation
            (id, account_id, api_key_id, model_id, price_id, provider_id, upstream_model, upstream_id, surface,
             stream, status, finish_reason, error, prompt_tokens, completion_tokens, cached_tokens, cache_write_tokens,
             usage_source,
             cost, upstream_cost, upstream_cost_source, margin, hold_amount, "user", origin, app, request_id,
             latency_ms, ttft_ms, started_at, finished_at)
        SELECT 'gen-' || %(run)s || '-' || i, a.id, k.id, m.model_id, m.price_id, m.provider_id, m.upstream_model,
               'chatcmpl-' || %(run)s || '-' || i, 'chat', i %% 3 = 0,
               CASE WHEN i %% 50 = 0 THEN 'failed' ELSE 'completed' END,
               CASE WHEN i %% 50 = 0 THEN '' ELSE 'stop' END, '',
               10 + i %% 900, 5 + i %% 400, 0, 0, 'upstream',
               cost, cost * 0.8, 'computed', cost * 0.2, cost * 2, 'user-' || (i %% 1000), '', 'scale',
               'req_' || %(run)s || '-' || i,
               50 + i %% 2000, 20 + i %% 300, ts, ts + interval '1 second'
        FROM (
            SELECT i, (i %% 997 + 1) * 0.00001 AS cost,
                   now() - make_interval(secs => (%(generations)s - i) * 30) AS ts
            FROM generate_series(1, %(generations)s) AS i
        ) g
        JOIN scale_accounts a ON a.n = g.i %% %(accounts)s
        JOIN scale_keys k ON k.account_id = a.id
        JOIN scale_models m ON m.n = g.i %% %(models)s
        """,
    ),
    (
        "ledger",
        """
        INSERT INTO billing_ledgerentry
            (account_id, kind, amount, balance_after, reference, idempotency_key, created_by_id, memo, created_at)
        SELECT account_id, kind, amount, sum(amount) OVER (PARTITION BY account_id ORDER BY seq), reference,
               idempotency_key, NULL, memo, created_at
        FROM (
            SELECT a.id AS account_id, 'topup' AS kind, %(opening)s::numeric AS amount, '' AS reference,
                   'scale:' || %(run)s || ':open:' || a.id AS idempotency_key, 'opening balance' AS memo,
                   now() - interval '400 days' AS created_at, -1 AS seq
            FROM scale_accounts a
            UNION ALL
            SELECT a.id, 'charge', -((i %% 997 + 1) * 0.00001), 'gen-' || %(run)s || '-' || i,
                   'charge:gen-' || %(run)s || '-' || i, '', now() - make_interval(secs => (%(generations)s - i) * 30),
                   i
            FROM generate_series(1, %(charges)s) AS i
            JOIN scale_accounts a ON a.n = i %% %(accounts)s
        ) entries
        ORDER BY seq, account_id
        """,
    ),
    (
        "balances",
        """
        UPDATE accounts_account acc SET balance = s.total
        FROM (SELECT account_id, sum(amount) AS total FROM billing_ledgerentry
              WHERE account_id IN (SELECT id FROM scale_accounts) GROUP BY account_id) s
        WHERE acc.id = s.account_id
        """,
    ),
)


class Command(BaseCommand):
    help = (
        "Fill PostgreSQL with generated accounts, keys, generations and ledger entries (balances equal their "
        "ledger sums), to measure the admin at scale. Adds to what is there; each run is tagged."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--accounts", type=int, default=5000)
        parser.add_argument("--keys-per-account", type=int, default=2)
        parser.add_argument("--generations", type=int, default=1_000_000)
        parser.add_argument("--ledger", type=int, default=1_000_000, help="Entries, one opening top-up per account.")

    def handle(self, *args, **options) -> None:
        if connection.vendor != "postgresql":
            raise CommandError("fill_scale needs PostgreSQL")
        accounts, ledger = options["accounts"], options["ledger"]
        if accounts < 1 or ledger < accounts:
            raise CommandError("--ledger must be at least --accounts (one opening top-up each)")
        models = _catalog()
        params = {
            "run": uuid.uuid4().hex[:8],
            "accounts": accounts,
            "keys": max(1, options["keys_per_account"]),
            "generations": options["generations"],
            # Charges beyond the generations would name generations that do not exist.
            "charges": min(ledger - accounts, options["generations"]),
            "models": len(models),
            "opening": _OPENING_TOPUP,
        }
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SET LOCAL synchronous_commit = off")
            cursor.execute(
                "CREATE TEMP TABLE scale_models (n int, model_id bigint, price_id bigint, provider_id bigint,"
                " upstream_model text) ON COMMIT DROP"
            )
            cursor.executemany("INSERT INTO scale_models VALUES (%s, %s, %s, %s, %s)", models)
            for name, sql in _STEPS:
                started = time.monotonic()
                cursor.execute(sql, params)
                self.stdout.write(f"{name}: {cursor.rowcount} rows in {time.monotonic() - started:.1f}s")
        with connection.cursor() as cursor:
            for table in ("accounts_account", "accounts_apikey", "completions_generation", "billing_ledgerentry"):
                cursor.execute(f"ANALYZE {table}")
        self.stdout.write(f"run {params['run']}: done")


def _catalog() -> list[tuple[int, int, int, int, str]]:
    """(n, model, price, provider, upstream model) for each routed, priced model; a small catalog if none."""
    rows = []
    for route in Route.objects.select_related("model").order_by("model_id", "priority"):
        price = Price.objects.filter(model_id=route.model_id).order_by("-effective_from").first()
        if price is not None and route.model_id not in {r[1] for r in rows}:
            rows.append((len(rows), route.model_id, price.pk, route.provider_id, route.upstream_model))
    if rows:
        return rows
    provider, _ = Provider.objects.get_or_create(name="scale", defaults={"base_url": "http://127.0.0.1:9/v1"})
    for n in range(5):
        model, _ = Model.objects.get_or_create(public_id=f"scale/model-{n}", defaults={"name": f"Scale model {n}"})
        route, _ = Route.objects.get_or_create(model=model, provider=provider, defaults={"upstream_model": f"m{n}"})
        price = price_set(model_id=model.pk, prompt="0.50", completion="1.50")
        rows.append((n, model.pk, price.pk, provider.pk, route.upstream_model))
    return rows
