"""Fill PostgreSQL with a production-sized history, to measure the admin and the router at scale (bench/README.md).

Speed comes from three things, none of which touches the schema's end state: the two big tables lose their
secondary indexes and foreign keys while they are written and get them back (built once, sorted, instead of
maintained row by row; foreign keys validated in one pass each), generations and ledger are written at the same
time over two connections, and every transaction commits asynchronously with generous sort memory. The history's
pages are written full, as settled rows leave them (`_packed`).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable

from django.core.management.base import BaseCommand, CommandError
from django.db import connection, connections, transaction

from billing.models import Price
from billing.services import price_set
from completions.models import Model, Provider, Route

# Every credit that opens an account's history: large enough that no run of charges takes it below zero.
_OPENING_TOPUP = 1000
# The tables whose secondary indexes and foreign keys are set aside while they are written.
_BIG_TABLES = ("completions_generation", "billing_ledgerentry")
# Per transaction: commits need not wait for the WAL flush, sorts and index builds stay in memory.
_SESSION = (
    "SET LOCAL synchronous_commit = off",
    "SET LOCAL work_mem = '256MB'",
    "SET LOCAL maintenance_work_mem = '1GB'",
)

_ACCOUNTS = """
    INSERT INTO accounts_account
        (name, email, telegram_chat_id, telegram_username, language, status, low_balance_threshold,
         balance, held, created_at)
    SELECT 'Scale ' || %(run)s || ' customer ' || i, 'scale' || %(run)s || '-' || i || '@example.com',
           NULL, 'scale' || %(run)s || '_' || i, 'en',
           CASE WHEN i %% 97 = 0 THEN 'suspended' ELSE 'active' END, 1, 0, 0,
           now() - make_interval(days => (i %% 365))
    FROM generate_series(1, %(accounts)s) AS i
"""
_KEYS = """
    INSERT INTO accounts_apikey
        (account_id, name, prefix, key_hash, rpm_limit, spend_limit, spend_period, allowed_models, created_at)
    SELECT a.id, 'key ' || k, 'orb_live_' || substr(md5(%(run)s || a.id || '-' || k), 1, 6),
           encode(sha256(convert_to('scale:' || %(run)s || ':' || a.id || ':' || k, 'UTF8')), 'hex'),
           600, NULL, 'none', '[]'::jsonb, now()
    FROM accounts_account a CROSS JOIN generate_series(1, %(keys)s) AS k
    WHERE a.name LIKE 'Scale ' || %(run)s || ' customer %%'
"""
# Each writing connection's own view of the run's accounts (n = 0…accounts-1) and of their first keys.
_MAPS = (
    """
    CREATE TEMP TABLE scale_accounts ON COMMIT DROP AS
    SELECT row_number() OVER (ORDER BY id) - 1 AS n, id FROM accounts_account
    WHERE name LIKE 'Scale ' || %(run)s || ' customer %%'
    """,
    """
    CREATE TEMP TABLE scale_keys ON COMMIT DROP AS
    SELECT DISTINCT ON (account_id) account_id, id FROM accounts_apikey
    WHERE account_id IN (SELECT id FROM scale_accounts) ORDER BY account_id, id
    """,
)
# Generation i (1…generations) belongs to account i mod accounts and started (generations − i) × 30 s ago.
# Those without a charge (generations beyond the ledger's charges, spread evenly: where ⌊j·uncharged/generations⌋
# steps, j counting back from the newest, so that the newest is charged) failed and cost nothing: every
# generation has exactly the charges its cost calls for. The newest charge is written at the fill's start,
# after every entry already there, as reconciliation's checkpoint expects of entries' times and ids. Ids are
# zero-padded so that they arrive in primary-key order.
_CHARGED = (
    "(%(uncharged)s::bigint * (%(generations)s - i + 1) / %(generations)s)"
    " = (%(uncharged)s::bigint * (%(generations)s - i) / %(generations)s)"
)
_GENERATIONS = f"""
    INSERT INTO completions_generation
        (id, account_id, api_key_id, model_id, price_id, provider_id, upstream_model, upstream_id, surface,
         stream, status, finish_reason, error, prompt_tokens, completion_tokens, cached_tokens, cache_write_tokens,
         usage_source,
         cost, upstream_cost, upstream_cost_source, margin, hold_amount, "user", origin, app, request_id,
         latency_ms, ttft_ms, started_at, finished_at)
    SELECT 'gen-' || %(run)s || '-' || lpad(i::text, 10, '0'), a.id, k.id, m.model_id, m.price_id, m.provider_id,
           m.upstream_model, 'chatcmpl-' || %(run)s || '-' || i, 'chat', i %% 3 = 0,
           CASE WHEN charged THEN 'completed' ELSE 'failed' END,
           CASE WHEN charged THEN 'stop' ELSE '' END, CASE WHEN charged THEN '' ELSE 'upstream error' END,
           CASE WHEN charged THEN 10 + i %% 900 ELSE 0 END, CASE WHEN charged THEN 5 + i %% 400 ELSE 0 END,
           0, 0, 'upstream',
           cost, cost * 0.8, 'computed', cost * 0.2, (i %% 997 + 1) * 0.00002, 'user-' || (i %% 1000), '', 'scale',
           'req_' || %(run)s || '-' || i,
           50 + i %% 2000, 20 + i %% 300, ts, ts + interval '1 second'
    FROM (
        SELECT i, {_CHARGED} AS charged,
               CASE WHEN {_CHARGED} THEN (i %% 997 + 1) * 0.00001 ELSE 0 END AS cost,
               now() - make_interval(secs => (%(generations)s - i) * 30) AS ts
        FROM generate_series(1, %(generations)s) AS i
    ) g
    JOIN scale_accounts a ON a.n = g.i %% %(accounts)s
    JOIN scale_keys k ON k.account_id = a.id
    JOIN scale_models m ON m.n = g.i %% %(models)s
"""  # noqa: S608 (a constant expression, values bound)
# An opening top-up per account, then one charge per charged generation, in time order (ids follow time),
# `balance_after` the running sum per account.
_LEDGER = f"""
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
        SELECT a.id, 'charge', -((i %% 997 + 1) * 0.00001), gen, 'charge:' || gen, '',
               now() - make_interval(secs => (%(generations)s - i) * 30), i
        FROM (
            SELECT i, 'gen-' || %(run)s || '-' || lpad(i::text, 10, '0') AS gen
            FROM generate_series(1, %(generations)s) AS i
            WHERE {_CHARGED}
        ) c
        JOIN scale_accounts a ON a.n = c.i %% %(accounts)s
    ) entries
    ORDER BY seq, account_id
"""  # noqa: S608 (a constant expression, values bound)
_BALANCES = """
    UPDATE accounts_account acc SET balance = s.total
    FROM (SELECT account_id, sum(amount) AS total FROM billing_ledgerentry
          WHERE account_id IN (SELECT id FROM accounts_account WHERE name LIKE 'Scale ' || %(run)s || ' customer %%')
          GROUP BY account_id) s
    WHERE acc.id = s.account_id
"""


class Command(BaseCommand):
    help = (
        "Fill PostgreSQL with generated accounts, keys, generations and ledger entries (balances equal their "
        "ledger sums, every generation charged its cost once), to measure the admin and the router at scale. "
        "Adds new accounts with their history to what is there; each run is tagged. Sets the big tables' "
        "secondary indexes and foreign keys aside while it writes: run it while nothing else writes."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--accounts", type=int, default=5000, help="New accounts the history is spread over.")
        parser.add_argument("--keys-per-account", type=int, default=2)
        parser.add_argument("--generations", type=int, default=1_000_000)
        parser.add_argument(
            "--ledger", type=int, default=1_000_000, help="Entries: one opening top-up per account, then charges."
        )

    def handle(self, *args, **options) -> None:
        if connection.vendor != "postgresql":
            raise CommandError("fill_scale needs PostgreSQL")
        accounts, ledger, generations = options["accounts"], options["ledger"], options["generations"]
        if accounts < 1 or ledger < accounts:
            raise CommandError("--ledger must be at least --accounts (one opening top-up each)")
        if ledger - accounts > generations:
            raise CommandError("--ledger may hold at most one charge per generation besides the top-ups")
        models = _catalog()
        params = {
            "run": uuid.uuid4().hex[:8],
            "accounts": accounts,
            "keys": max(1, options["keys_per_account"]),
            "generations": generations,
            "uncharged": generations - (ledger - accounts),
            "models": len(models),
            "opening": _OPENING_TOPUP,
        }
        started = time.monotonic()
        self._step("accounts and keys", lambda cursor: _run(cursor, [_ACCOUNTS, _KEYS], params))
        set_aside = _secondary_indexes_drop()
        unpack = _packed()
        try:
            _parallel(
                lambda: self._step("generations", lambda cursor: _write(cursor, _GENERATIONS, params, models)),
                lambda: self._step("ledger", lambda cursor: _write(cursor, _LEDGER, params, models)),
            )
        finally:
            # Also after a failure: the schema must come back whole, whatever was written.
            jobs = [(table, [sql for t, sql in set_aside if t == table]) for table in _BIG_TABLES]
            with connection.cursor() as cursor:
                for sql in unpack:
                    cursor.execute(sql)
            _parallel(*(lambda t=t, s=s: self._step(f"{t} indexes", lambda c: _run(c, s, params)) for t, s in jobs))
        self._step("balances", lambda cursor: _run(cursor, [_BALANCES], params))
        # Vacuumed and analysed, as old history is: otherwise autovacuum reads it all again under the next load.
        vacuumed = time.monotonic()
        with connection.cursor() as cursor:
            for table in ("accounts_account", "accounts_apikey", *_BIG_TABLES):
                cursor.execute(f"VACUUM (ANALYZE) {table}")
        self.stdout.write(f"vacuum and analyze: {time.monotonic() - vacuumed:.1f}s")
        self.stdout.write(f"run {params['run']}: done in {time.monotonic() - started:.1f}s")

    def _step(self, name: str, work: Callable) -> None:
        """One transaction on this thread's connection, timed."""
        started = time.monotonic()
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                for statement in _SESSION:
                    cursor.execute(statement)
                rows = work(cursor)
        finally:
            if threading.current_thread() is not threading.main_thread():
                connections.close_all()
        self.stdout.write(f"{name}: {rows} rows in {time.monotonic() - started:.1f}s")


def _run(cursor, statements: list[str], params: dict) -> int:
    rows = 0
    for sql in statements:
        cursor.execute(sql, params)
        rows += max(cursor.rowcount, 0)
    return rows


def _write(cursor, sql: str, params: dict, models: list[tuple]) -> int:
    """Build this connection's maps of accounts, keys and models, then run the big INSERT."""
    for statement in _MAPS:
        cursor.execute(statement, params)
    cursor.execute(
        "CREATE TEMP TABLE scale_models (n int, model_id bigint, price_id bigint, provider_id bigint,"
        " upstream_model text) ON COMMIT DROP"
    )
    cursor.executemany("INSERT INTO scale_models VALUES (%s, %s, %s, %s, %s)", models)
    cursor.execute(sql, params)
    return cursor.rowcount


def _parallel(*jobs: Callable[[], None]) -> None:
    """Run each job on its own thread (so its own connection); raise the first failure once all have ended."""
    errors: list[BaseException] = []

    def guarded(job: Callable[[], None]) -> None:
        try:
            job()
        except BaseException as exc:  # reported to the caller below
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=(job,)) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]


def _secondary_indexes_drop() -> list[tuple[str, str]]:
    """Drop the big tables' foreign keys, unique constraints and secondary indexes; (table, SQL to restore) each."""
    restore = []
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT c.conrelid::regclass::text, c.conname, pg_get_constraintdef(c.oid) FROM pg_constraint c
            WHERE c.conrelid::regclass::text = ANY(%s) AND c.contype IN ('f', 'u')
            ORDER BY c.contype DESC, c.conname
            """,
            [list(_BIG_TABLES)],
        )
        for table, name, definition in cursor.fetchall():
            cursor.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
            restore.append((table, f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}'))
        cursor.execute(
            """
            SELECT i.indrelid::regclass::text, i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid)
            FROM pg_index i
            WHERE i.indrelid::regclass::text = ANY(%s) AND NOT i.indisprimary
              AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)
            ORDER BY 2
            """,
            [list(_BIG_TABLES)],
        )
        for table, name, definition in cursor.fetchall():
            cursor.execute(f"DROP INDEX {name}")
            restore.append((table, definition))
    # Indexes first, so that the unique constraint and the foreign keys are checked with them in place.
    return sorted(restore, key=lambda item: item[1].startswith("ALTER"))


def _packed() -> list[str]:
    """Write the big tables' pages full, whatever free space their fillfactor keeps; the SQL to restore it.

    A fillfactor keeps room on a page for the updates of the rows just inserted there (a generation is
    settled once, in place). History is written as it ends up, settled and never updated again: had the
    router written it, the settlements would have taken that room. Left free, it would be a gap in every
    old page, into which PostgreSQL would put the router's new rows one by one instead of at the table's end.
    """
    restore = []
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT relname, option FROM pg_class, unnest(reloptions) AS option"
            " WHERE relname = ANY(%s) AND relkind = 'r' AND option LIKE 'fillfactor=%%'",
            [list(_BIG_TABLES)],
        )
        for table, option in cursor.fetchall():
            cursor.execute(f"ALTER TABLE {table} SET (fillfactor = 100)")
            restore.append(f"ALTER TABLE {table} SET ({option})")
    return restore


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
