"""P7 (data at scale) and P8 (beyond one process): steps of `make bench` on its running set.

P7 copies the seeded benchmark database to an empty twin, has `manage.py fill_scale` write 10M generations
and 10M ledger entries over 10,000 new accounts into the benchmark's own (the run's keys keep the accounts
`seed.py` made), then measures P2 and P4 on a router over each, alternating round by round, so that the
machine's drift between minutes falls on both alike; it times the fill, a full reconciliation at that size
and an incremental one after the loads, and checks the books of both databases.
P8 runs P2 against one worker on one core and two workers on both cores, in alternating rounds, and
divides the CPU of the router, of the PostgreSQL backends serving it and of Redis by the requests served.
See bench/README.md, "P7: data at scale" and "P8: beyond one process".
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time

import procs
import run as bench_run

ONLY = frozenset(step.strip() for step in os.environ.get("BENCH_ONLY", "").upper().split(",") if step.strip())
WANT_P7 = "P7" in ONLY or (not ONLY and os.environ.get("BENCH_SCALE", "") not in ("", "0"))
WANT_P8 = "P8" in ONLY or (not ONLY and os.environ.get("BENCH_P8", "1") not in ("0", ""))
# The history P7 writes: generations, ledger entries (one opening top-up per account, the rest charges).
SCALE = {
    "accounts": int(os.environ.get("BENCH_SCALE_ACCOUNTS", "10000")),
    "generations": int(os.environ.get("BENCH_SCALE_ROWS", "10000000")),
}
ROUNDS = 1 if os.environ.get("BENCH_QUICK", "") not in ("", "0") else 2  # as run.QUICK
P2 = {"concurrency": 32, "stream": False, "emulator": None}


def steps(bench: bench_run.Bench) -> dict:
    """The scale steps this run asked for, each as its own entry of the results."""
    out: dict = {}
    if WANT_P8:
        out["p8"] = p8(bench)
    if WANT_P7:
        out["p7"] = p7(bench)
    return out


# --- P7 -------------------------------------------------------------------------------------------------
EMPTY = "router-empty"  # the router on the empty twin
P7_ROUNDS = 1 if os.environ.get("BENCH_QUICK", "") not in ("", "0") else 4


def p7(bench: bench_run.Bench) -> dict:
    result: dict = {"history": SCALE}
    twin = _twin(bench)
    try:
        history = f"{SCALE['generations']:,} generations and ledger entries, {SCALE['accounts']:,} accounts"
        bench_run.log(f"P7 filling: {history}")
        argv = [bench_run.PY, "manage.py", "fill_scale", "--accounts", str(SCALE["accounts"])]
        argv += ["--generations", str(SCALE["generations"]), "--ledger", str(SCALE["generations"])]
        load_before = bench_run.loadavg()
        started = time.monotonic()
        env = bench_run.django_env()
        done = subprocess.run(argv, cwd=bench_run.ROOT, env=env, capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(f"fill_scale failed:\n{done.stderr[-2000:]}")
        result["fill"] = {
            "seconds": round(time.monotonic() - started, 1),
            "steps": done.stdout.strip().splitlines(),
            "load_average": f"{load_before} → {bench_run.loadavg()}",
        }
        _sql("CHECKPOINT")  # the loads that follow must not pay for writing the fill's pages out
        bench_run.log(f"    filled in {result['fill']['seconds']} s ({result['fill']['load_average']})")
        result["reconcile_full"] = _reconcile(full=True)
        result["empty"], result["filled"] = _paired_p2_p4(bench, twin)
        result["reconcile_incremental"] = _reconcile(full=False)
        result["accounting"] = bench_run.accounting_check()
        result["accounting_empty"] = bench_run.accounting_check(twin)
    finally:
        if EMPTY in bench.entries:
            bench.processes.stop(bench.entries.pop(EMPTY))
            bench.urls.pop(EMPTY, None)
        _drop(twin)
    return result


def _twin(bench: bench_run.Bench) -> str:
    """Copy the seeded database, as the loads so far left it, to an empty twin served by a router of its own.

    PostgreSQL copies a database only while no one is connected to it: the router stops for the copy and
    starts again on the same database (its keys and accounts unchanged), the twin's router beside it.
    """
    _settled()
    _, name = bench_run.admin_dsn()
    twin_name = f"{name}_empty"
    bench.processes.stop(bench.entries.pop("router"))
    _drop(twin_name)
    _admin_sql(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()", name
    )
    _admin_sql(f'CREATE DATABASE "{twin_name}" TEMPLATE "{name}"')
    twin = bench_run.urlunsplit(bench_run.urlsplit(bench_run.bench_dsn())._replace(path=f"/{twin_name}"))
    bench.start_router("router")
    bench.start_router(EMPTY, database_url=twin)
    bench_run.log(f"P7 twin database {twin_name}: a copy of the seeded one, served by its own router")
    return twin


def _drop(twin: str) -> None:
    name = bench_run.urlsplit(twin).path.lstrip("/") if "://" in twin else twin
    if name.endswith("_empty") and "bench" in name:
        _admin_sql(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            name,
        )
        _admin_sql(f'DROP DATABASE IF EXISTS "{name}"')


def _statio(dsn: str) -> dict[str, int]:
    """Blocks each table and index of `dsn`'s database has read from outside shared buffers so far."""
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT relname, coalesce(heap_blks_read, 0) FROM pg_statio_user_tables"
            " UNION ALL SELECT indexrelname, idx_blks_read FROM pg_statio_user_indexes"
        ).fetchall()
    return dict(rows)


def _reads_per_request(before: dict[str, int], after: dict[str, int], requests: int) -> dict[str, float]:
    """The tables and indexes that read most during a load, blocks per request (the five largest)."""
    reads = {name: (count - before.get(name, 0)) / (requests or 1) for name, count in after.items()}
    top = sorted(((r, n) for n, r in reads.items() if r > 0), reverse=True)[:5]
    return {name: round(r, 3) for r, name in top}


def _admin_sql(statement: str, *params: str) -> None:
    import psycopg

    dsn, _ = bench_run.admin_dsn()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(statement, list(params) or None)


def _paired_p2_p4(bench: bench_run.Bench, twin: str) -> tuple[dict, dict]:
    """P2 then P4 on the empty twin's router and the filled database's, alternating (which goes first turns
    each round), P7_ROUNDS times; every round's figures, with the load average and the blocks each table and
    index read from outside PostgreSQL's shared buffers per request."""
    runs: dict[str, dict[str, list[dict]]] = {"empty": {"P2": [], "P4": []}, "filled": {"P2": [], "P4": []}}
    dsns = {"empty": twin, "filled": bench_run.bench_dsn()}
    for n in range(P7_ROUNDS):
        for key, keys in (("P2", "spread"), ("P4", "shared")):
            order = (("empty", EMPTY), ("filled", "router"))
            for label, target in order if n % 2 == 0 else reversed(order):
                bench_run.log(f"P7 {key} on the {label} database, round {n + 1}/{P7_ROUNDS}")
                before = _statio(dsns[label])
                run = _costed_load(bench, target, keys=keys)
                run["blocks_read"] = _reads_per_request(before, _statio(dsns[label]), run["requests_total"])
                bench_run.log(
                    f"    {run['rps']} RPS, p99 {run['p99_ms']} ms, per request: router {run['router_cpu_ms']} ms, "
                    f"PostgreSQL {run['postgres_cpu_ms']} ms; load average {run['load_average']}"
                )
                runs[label][key].append(run)
    return runs["empty"], runs["filled"]


def _settled(timeout: float = 30) -> None:
    """Wait until the loads' last settlements are written: the fill's history must end after them."""
    deadline = time.monotonic() + timeout
    while _sql("SELECT count(*) FROM billing_hold WHERE status = 'open'") and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(1.0)


def _sql(statement: str) -> int | None:
    """Run one statement on the benchmark database; its first value, if it returns one."""
    import psycopg

    with psycopg.connect(bench_run.bench_dsn(), autocommit=True) as conn:
        cursor = conn.execute(statement)
        row = cursor.fetchone() if cursor.description else None
    return row[0] if row else None


def _p2_p4(bench: bench_run.Bench, label: str) -> dict:
    """P2 then P4 on the router, ROUNDS times; every round's figures, with the load average."""
    runs: dict[str, list[dict]] = {"P2": [], "P4": []}
    for n in range(ROUNDS):
        for key, keys in (("P2", "spread"), ("P4", "shared")):
            bench_run.log(f"P7 {key} on the {label} database, round {n + 1}/{ROUNDS}")
            run = _costed_load(bench, "router", keys=keys)
            bench_run.log(
                f"    {run['rps']} RPS, p99 {run['p99_ms']} ms, per request: router {run['router_cpu_ms']} ms, "
                f"PostgreSQL {run['postgres_cpu_ms']} ms; load average {run['load_average']}"
            )
            runs[key].append(run)
    return runs


def _reconcile(*, full: bool) -> dict:
    """One reconciliation run in a process of its own (`python bench/scale.py reconcile`), timed inside it."""
    env = bench_run.django_env(RECONCILE_CHECKPOINT_LAG_SECONDS="0")
    argv = [bench_run.PY, __file__, "reconcile", *(["--full"] if full else [])]
    bench_run.log(f"P7 reconciliation, {'full audit' if full else 'incremental'}")
    done = subprocess.run(argv, cwd=bench_run.ROOT, env=env, capture_output=True, text=True)
    if done.returncode:
        return {"seconds": None, "status": f"failed: {done.stderr.strip()[-300:]}", "counts": {}}
    result = json.loads(done.stdout)
    checked = result["counts"].get("generations_checked")
    bench_run.log(f"    {result['seconds']} s, {result['status']}, {checked} generations checked")
    return result


def reconcile_timed(full: bool) -> dict:
    """Run the reconciliation once (Django set up first, outside the timing); seconds, status and counts."""
    sys.path.insert(0, str(bench_run.ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mlrouter.settings")
    import django

    django.setup()
    from billing.reconciliation import reconcile_run

    started = time.monotonic()
    run = reconcile_run(trigger="bench", full=True if full else None)
    seconds = round(time.monotonic() - started, 2)
    counts = {key: value for key, value in run.counts.items() if isinstance(value, int)}
    return {"seconds": seconds, "scope": run.scope, "status": run.status, "counts": counts}


# --- P8 -------------------------------------------------------------------------------------------------
def p8(bench: bench_run.Bench) -> dict:
    """P2 on one worker pinned to core 0 and on two workers over both cores, alternating, same keys."""
    name = "router2"
    bench.start_router(name, workers=2)
    runs: dict[str, list[dict]] = {"router": [], name: []}
    try:
        for n in range(ROUNDS):
            for target in runs:
                bench_run.log(f"P8 P2 on {'two workers' if target == name else 'one worker'}, round {n + 1}/{ROUNDS}")
                run = _costed_load(bench, target)
                bench_run.log(
                    f"    {run['rps']} RPS, p99 {run['p99_ms']} ms, per request: router {run['router_cpu_ms']} ms, "
                    f"PostgreSQL {run['postgres_cpu_ms']} ms, Redis {run['redis_cpu_ms']} ms; "
                    f"load average {run['load_average']}"
                )
                runs[target].append(run)
    finally:
        bench.processes.stop(bench.entries.pop(name))
        bench.urls.pop(name)
    one, two = (statistics.mean(r["rps"] for r in runs[t]) for t in runs)
    return {
        "one_worker": runs["router"],
        "two_workers": runs[name],
        "scaling": round(two / one, 2) if one else None,
        "batched_writes": [_batched_writes(batch) for batch in (1, 100)],
    }


# One generation and its charge, as the request path leaves them, and the account's balance moved: what a
# durable outbox would still have to write per request, `batch` requests per transaction.
_OUTBOX_GENERATION = """
    INSERT INTO completions_generation
        (id, account_id, api_key_id, model_id, price_id, provider_id, upstream_model, upstream_id, surface, stream,
         status, finish_reason, error, prompt_tokens, completion_tokens, cached_tokens, cache_write_tokens,
         usage_source, cost, upstream_cost, upstream_cost_source, margin, hold_amount, "user", origin, app,
         request_id, latency_ms, ttft_ms, started_at, finished_at)
    VALUES (%s, %s, %s, %s, %s, %s, 'emulator-small', %s, 'chat', false, 'completed', 'stop', '', 27, 12, 0, 0,
            'upstream', 0.0000112500, 0.0000112500, 'computed', 0, 0.0000400000, '', '', '', %s, 3, 3, now(), now())
"""
_OUTBOX_CHARGE = """
    INSERT INTO billing_ledgerentry
        (account_id, kind, amount, balance_after, reference, idempotency_key, memo, created_at)
    VALUES (%s, 'charge', -0.0000112500, 0, %s, %s, '', now())
"""
_OUTBOX_BALANCES = """
    UPDATE accounts_account a SET balance = a.balance + d.amount
    FROM unnest(%s::bigint[], %s::numeric[]) AS d(id, amount) WHERE a.id = d.id
"""


def _batched_writes(batch: int, requests: int = 3000) -> dict:
    """PostgreSQL CPU per request for the writes an outbox would batch, `batch` requests per transaction.

    Each transaction is rolled back, so that the books stay as the loads left them: the figure has the
    inserts, their index entries and WAL records, not the commit's flush (I/O, and one per batch).
    """
    import psycopg

    with psycopg.connect(bench_run.bench_dsn()) as conn:
        pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
        keys = conn.execute(
            "SELECT k.account_id, k.id FROM accounts_apikey k JOIN accounts_account a ON a.id = k.account_id "
            "WHERE a.name LIKE 'bench-spread-%%' ORDER BY k.id"
        ).fetchall()
        model, price, provider = conn.execute(
            "SELECT r.model_id, p.id, r.provider_id FROM completions_route r "
            "JOIN billing_price p ON p.model_id = r.model_id ORDER BY r.id LIMIT 1"
        ).fetchone()
        conn.rollback()
        started = procs.cpu_seconds(pid) or 0.0
        for first in range(0, requests, batch):
            ids = [f"gen-outbox-{n}" for n in range(first, first + batch)]
            owners = [keys[n % len(keys)] for n in range(first, first + batch)]
            with conn.cursor() as cursor:
                cursor.executemany(
                    _OUTBOX_GENERATION,
                    [
                        (i, a, k, model, price, provider, f"up-{i}", f"req-{i}")
                        for i, (a, k) in zip(ids, owners, strict=True)
                    ],
                )
                cursor.executemany(
                    _OUTBOX_CHARGE, [(a, i, f"charge:{i}") for i, (a, _) in zip(ids, owners, strict=True)]
                )
                moved: dict[int, int] = {}
                for account, _ in owners:
                    moved[account] = moved.get(account, 0) + 1
                amounts = [f"-{0.00001125 * n:.10f}" for n in moved.values()]
                cursor.execute(_OUTBOX_BALANCES, [list(moved), amounts])
            conn.rollback()
        cpu = (procs.cpu_seconds(pid) or 0.0) - started
    result = {"batch": batch, "requests": requests, "postgres_cpu_ms": round(1000 * cpu / requests, 3)}
    bench_run.log(f"P8 writes batched {batch} per transaction: PostgreSQL {result['postgres_cpu_ms']} ms per request")
    return result


def _costed_load(bench: bench_run.Bench, target: str, keys: str = "spread") -> dict:
    """A P2 load with the CPU of every process serving it, per request (warm-up requests included)."""
    workers = bench.workers[target]
    application = f"bench-{target}"
    emulator = [bench.emulator_pid]
    before = _cpu(workers), _postgres_cpu(application), _redis_cpu(), os.times(), _cpu(emulator)
    run = bench.load(target, keys=keys, **P2)
    after = _cpu(workers), _postgres_cpu(application), _redis_cpu(), os.times(), _cpu(emulator)
    total = run["requests_total"] or 1
    postgres = sum(cpu - before[1].get(pid, 0.0) for pid, cpu in after[1].items())
    loadgen = sum(after[3][2:4]) - sum(before[3][2:4])  # children's user + system: the load generator's

    def per_request(seconds: float | None) -> float | None:
        return None if seconds is None else round(1000 * seconds / total, 3)

    figures = _brief(run)
    figures.update(
        workers=len(workers),
        router_cpu_ms=per_request(after[0] - before[0]),
        postgres_cpu_ms=per_request(postgres),
        postgres_backends=len(after[1]),
        redis_cpu_ms=per_request(None if None in (after[2], before[2]) else after[2] - before[2]),
        loadgen_cpu_ms=per_request(loadgen),
        emulator_cpu_ms=per_request(after[4] - before[4]),
        load_average=bench_run.loadavg(),
    )
    return figures


def _cpu(pids: list[int]) -> float:
    return sum(procs.cpu_seconds(pid) or 0.0 for pid in pids)


def _postgres_cpu(application: str) -> dict[int, float]:
    """CPU seconds so far of each PostgreSQL backend serving `application` (read from /proc: same host)."""
    import psycopg

    dsn, name = bench_run.admin_dsn()
    with psycopg.connect(dsn, autocommit=True) as conn:
        pids = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = ANY(%s) AND application_name = %s",
            [[name, f"{name}_empty"], application],  # the benchmark's database or P7's empty twin
        ).fetchall()
    return {pid: cpu for (pid,) in pids if (cpu := procs.cpu_seconds(pid)) is not None}


def _redis_cpu() -> float | None:
    """The Redis server's CPU seconds so far (all of it: the benchmark is its only client during a load)."""
    import redis

    try:
        info = redis.Redis.from_url(bench_run.REDIS_URL).info("cpu")
    except redis.RedisError:
        return None
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def _brief(run: dict) -> dict:
    keep = ("rps", "p50_ms", "p99_ms", "ok", "requests", "requests_total", "cpu_ms_per_request", "load_average")
    return {key: run[key] for key in keep if key in run}


# --- report ---------------------------------------------------------------------------------------------
def text(out: dict) -> str:
    lines = []
    if p7_out := out.get("p7"):
        lines += _p7_text(p7_out)
    if p8_out := out.get("p8"):
        lines += _p8_text(p8_out)
    return "\n".join(lines)


def _mean(runs: list[dict], field: str) -> float:
    values = [run[field] for run in runs if run.get(field) is not None]
    return statistics.mean(values) if values else 0.0


def _p7_text(p7_out: dict) -> list[str]:
    history = p7_out["history"]
    lines = [
        f"\nP7, data at scale: {history['generations']:,} generations and ledger entries over "
        f"{history['accounts']:,} accounts, written in {p7_out['fill']['seconds']} s "
        f"(load average {p7_out['fill']['load_average']}); the empty twin's router and the filled database's,"
        f" alternating, mean of {P7_ROUNDS} round(s); ratio: the median of the rounds' filled / empty:",
        "  scenario   empty RPS  filled RPS  ratio   empty p99  filled p99   router CPU ms/req   PostgreSQL CPU ms/req"
        "   ratio by round",
    ]
    for key in ("P2", "P4"):
        empty, filled = p7_out["empty"][key], p7_out["filled"][key]
        rps = (_mean(empty, "rps"), _mean(filled, "rps"))
        rounds = [f["rps"] / e["rps"] for e, f in zip(empty, filled, strict=True) if e.get("rps")]
        lines.append(
            f"  {key:<9} {rps[0]:>10.0f} {rps[1]:>11.0f} {statistics.median(rounds) if rounds else 0:>6.2f}× "
            f"{_mean(empty, 'p99_ms'):>10.1f} {_mean(filled, 'p99_ms'):>11.1f} "
            f"{_mean(empty, 'router_cpu_ms'):>9.3f} → {_mean(filled, 'router_cpu_ms'):.3f} "
            f"{_mean(empty, 'postgres_cpu_ms'):>11.3f} → {_mean(filled, 'postgres_cpu_ms'):.3f}"
            f"   {', '.join(f'{r:.2f}' for r in rounds)}"
        )
    for label in ("empty", "filled"):
        loads = [f"{key} {run['load_average']}" for key in ("P2", "P4") for run in p7_out[label][key]]
        lines.append(f"  load average after each {label} load: {'; '.join(loads)}")
    for label in ("empty", "filled"):
        last = p7_out[label]["P2"][-1].get("blocks_read") if p7_out[label]["P2"] else None
        lines.append(f"  blocks read from outside shared buffers per request, last {label} P2 load: {last}")
    for kind in ("reconcile_full", "reconcile_incremental"):
        r = p7_out[kind]
        checked = r["counts"].get("generations_checked", "?")
        label = "full audit" if kind == "reconcile_full" else "incremental run after the filled loads"
        lines.append(f"  reconciliation, {label}: {r['seconds']} s, {checked} generations checked, {r['status']}")
    lines.append(f"  books after the fill and the loads: {p7_out['accounting']}")
    lines.append(f"  books of the empty twin after its loads: {p7_out.get('accounting_empty')}")
    return lines


def _p8_text(p8_out: dict) -> list[str]:
    lines = [
        f"\nP8, beyond one process: P2 (c=32) on one worker (core 0) and two workers (cores 0–1), "
        f"scaling {p8_out['scaling']}×; CPU per request in ms:",
        "  workers  round     RPS   p99 ms   router  PostgreSQL   Redis  emulator  loadgen  load average",
    ]
    for label, runs in (("1", p8_out["one_worker"]), ("2", p8_out["two_workers"])):
        for n, run in enumerate(runs, 1):
            lines.append(
                f"  {label:>7} {n:>6} {run['rps']:>7.0f} {run['p99_ms']:>8.1f} {run['router_cpu_ms']:>8.3f} "
                f"{run['postgres_cpu_ms']:>11.3f} {run['redis_cpu_ms'] or 0:>7.3f} {run['emulator_cpu_ms']:>9.3f} "
                f"{run['loadgen_cpu_ms']:>8.3f}  "
                f"{run['load_average']}"
            )
    for written in p8_out.get("batched_writes", []):
        lines.append(
            f"  a generation, its charge and the balance written {written['batch']} per transaction (rolled back): "
            f"PostgreSQL {written['postgres_cpu_ms']} ms per request"
        )
    return lines


if __name__ == "__main__":
    if sys.argv[1:2] != ["reconcile"]:
        raise SystemExit("usage: python bench/scale.py reconcile [--full]  (make bench runs the steps)")
    print(json.dumps(reconcile_timed("--full" in sys.argv)))
