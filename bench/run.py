"""`make bench`: ML Router side by side with the emulator called directly and with the LiteLLM proxy.

Starts everything it needs on 127.0.0.1 (a fresh `mlrouter_bench` PostgreSQL database, Redis db 13,
the upstream emulator, the router under gunicorn + gevent with one worker, the LiteLLM proxy from
its own venv), runs bounded loads, stops everything it started and prints one table. Raw results go
to bench/results/latest.json. See bench/README.md for what each scenario measures.

Environment:
  BENCH_QUICK=1          short smoke run (seconds per load instead of ~10 s; 200 held streams)
  BENCH_LITELLM=0        do not install or run LiteLLM
  BENCH_PROFILE=1        extra P2 and P1 passes on the router under `py-spy record` (needs py-spy)
  BENCH_DATABASE_URL     default postgres://postgres@127.0.0.1:5432/mlrouter_bench (dropped and re-created!)
  BENCH_REDIS_URL        default redis://127.0.0.1:6379/13 (flushed!)
  BENCH_DB_POOL_MAX      the router's DB_POOL_MAX_SIZE, default 16
  BENCH_STREAMS          concurrent streams in the held-streams test, default 1000 (200 quick)
  BENCH_SURFACES=0       skip P6 (Messages and Responses beside chat completions)
  BENCH_ONLY=P1P2,P6     only the named steps (P1P2 = P1, P2 and P4; P3 = P3 and the held streams; P5; P6; P7; P8),
                         no metrics or reconciliation step
  BENCH_RUNS=5           the selected scenarios five times against the same servers, the books after each
                         (bench/repeat.py), and a markdown table of the runs
  BENCH_P5_STREAMS       P5's concurrent streams, default 200,500 (bench/streams.py)
  BENCH_P6_ROUNDS        P6's interleaved rounds of the router's variants, default 10
  BENCH_SCALE=1          add P7 to a full run (10M rows: 8–13 minutes); BENCH_P8=0 leaves P8 out (bench/scale.py)
"""

from __future__ import annotations

import json
import os
import platform
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))

import metrics_cost  # noqa: E402
import procs  # noqa: E402
import profile_summary  # noqa: E402
import repeat  # noqa: E402
import report  # noqa: E402
import scale  # noqa: E402
import streams  # noqa: E402

PY = sys.executable
QUICK = os.environ.get("BENCH_QUICK", "") not in ("", "0")
DATABASE_URL = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/mlrouter_bench")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/13")
POOL_MAX = int(os.environ.get("BENCH_DB_POOL_MAX", "16"))
STREAMS = int(os.environ.get("BENCH_STREAMS", "200" if QUICK else "1000"))
WANT_LITELLM = os.environ.get("BENCH_LITELLM", "1") not in ("0", "")
WANT_PROFILE = os.environ.get("BENCH_PROFILE", "") not in ("", "0")
WANT_RECONCILE = os.environ.get("BENCH_RECONCILE", "1") not in ("0", "")
RECONCILE_ROWS = os.environ.get("BENCH_RECONCILE_ROWS", "100000,500000" if QUICK else "1000000,5000000").split(",")
WANT_SURFACES = os.environ.get("BENCH_SURFACES", "1") not in ("0", "")
# BENCH_ONLY: the steps named, nothing else; unset: every step (P7 only with BENCH_SCALE=1).
ONLY = frozenset(step.strip() for step in os.environ.get("BENCH_ONLY", "").upper().split(",") if step.strip())


def wanted(step: str) -> bool:
    """Whether a step of the benchmark runs: any in a full run, only the named ones under BENCH_ONLY.

    P1P2 is P1, P2 and P4 (P4's target is a share of P2's throughput in the same run).
    """
    return step in ONLY if ONLY else True


WARMUP = 1.0 if QUICK else 2.0
DURATION = 3.0 if QUICK else 10.0
# P6: short loads at one connection, the router's in interleaved rounds, so that its variants are compared
# round by round (a shared machine drifts between rounds more than the margin measured, and within a round
# by up to ~1 ms of CPU per request: many short rounds, and the median of their differences): ~3.5 min
# (quick: ~1).
SURFACE_WARMUP = 0.3
SURFACE_DURATION = 1.0
SURFACE_ROUNDS = 2 if QUICK else int(os.environ.get("BENCH_P6_ROUNDS", "10"))
KEYS = 32
LITELLM_VENV = BENCH / ".venv-litellm"
RESULTS = BENCH / "results"

MESSAGES = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "Say hello to the benchmark in one short sentence, please."},
]
# Streams are paced like a real model (~50 tokens/s) so that TTFT measures the gateway, not a queue.
PACED = {"completion_tokens": 16, "chunk_delay_ms": 20}
# Held streams last ~16 s (quick: ~4 s), so that all of them are open at once.
HELD = {"completion_tokens": 20, "chunk_delay_ms": 200 if QUICK else 750}

# P6: how each surface is asked (path under /v1), when its stream is complete and what its first token is.
SURFACES = {
    "chat": {"path": "chat/completions", "done": "data: [DONE]", "token": r'"content":\s?"[^"]'},
    "messages": {"path": "messages", "done": "message_stop", "token": r'"text":\s?"[^"]'},
    "responses": {"path": "responses", "done": "response.completed", "token": r'"delta":\s?"[^"]'},
}
# Per surface, the model each target is asked for. `router` is the `openai-chat` route (`bench/emulator`):
# native for chat, translated for Messages and Responses; `router-native` is Messages passed through to
# an `anthropic-messages` route (`bench/claude`), and Responses to an `openai-responses` one
# (`bench/responses`). LiteLLM: `openai/…` for chat and Responses (its Responses call goes to the
# emulator's /v1/responses), `anthropic/…` for Messages (to the emulator's /v1/messages).
SURFACE_MODELS = {
    "chat": {"direct": "emulator-small", "router": "bench/emulator", "litellm": "bench/emulator"},
    "messages": {
        "direct": "emulator-claude",
        "router": "bench/emulator",
        "router-native": "bench/claude",
        "litellm": "bench/claude",
    },
    "responses": {
        "direct": "emulator-small",
        "router": "bench/emulator",
        "router-native": "bench/responses",
        "litellm": "bench/emulator",
    },
}

SCENARIOS = [
    # key, title, concurrency, stream, emulator options, targets, keys
    ("P1", "plain c=1", 1, False, None, ("direct", "router", "litellm"), "spread"),
    ("P2", "plain c=32", 32, False, None, ("direct", "router", "litellm"), "spread"),
    # Right after P2, so that both run under the same conditions on a shared machine.
    ("P4", "plain c=32, one account", 32, False, None, ("router",), "shared"),
    ("P3", "stream c=32", 32, True, PACED, ("direct", "router", "litellm"), "spread"),
]


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def admin_dsn() -> tuple[str, str]:
    """A DSN for the maintenance database `postgres`, and the benchmark database's name."""
    parts = urlsplit(DATABASE_URL)
    name = parts.path.lstrip("/")
    if "bench" not in name:
        raise SystemExit(f"refusing to drop {name!r}: the benchmark database's name must contain 'bench'")
    return urlunsplit(parts._replace(path="/postgres")), name


def prepare_stores() -> None:
    import psycopg
    import redis

    dsn, name = admin_dsn()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            [name],
        )
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    redis.Redis.from_url(REDIS_URL).flushdb()


def django_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "DB_POOL_", "REDIS_"))}
    env.update(
        DATABASE_URL=DATABASE_URL,
        REDIS_URL=REDIS_URL,
        DEBUG="false",
        DJANGO_SETTINGS_MODULE="mlrouter.settings",
        GUNICORN_ACCESSLOG="",
        LOG_LEVEL="WARNING",
        PYTHONDONTWRITEBYTECODE="1",
    )
    env.update(extra)
    return env


def ensure_litellm() -> tuple[Path | None, str]:
    """The LiteLLM CLI from bench/.venv-litellm, installing it once; (None, why) when unavailable."""
    if not WANT_LITELLM:
        return None, "skipped (BENCH_LITELLM=0)"
    cli = LITELLM_VENV / "bin" / "litellm"
    stamp = LITELLM_VENV / ".installed"
    if not stamp.exists():
        log("installing the LiteLLM proxy into bench/.venv-litellm (once; takes a few minutes)")
        base = shutil.which("python3") or PY
        try:
            subprocess.run([base, "-m", "venv", str(LITELLM_VENV)], check=True, timeout=300)
            subprocess.run(
                [str(LITELLM_VENV / "bin" / "pip"), "install", "--quiet", "litellm[proxy]"],
                check=True,
                timeout=1800,
                stdout=subprocess.DEVNULL,
            )
        except (subprocess.SubprocessError, OSError) as exc:
            return None, f"skipped: installing litellm[proxy] failed ({exc})"
        stamp.touch()
    # Like Python 3.13's venv: git, and ruff through it, ignore everything in here.
    (LITELLM_VENV / ".gitignore").write_text("# Created by bench/run.py: the LiteLLM venv is never committed.\n*\n")
    if not cli.exists():
        return None, "skipped: bench/.venv-litellm has no litellm CLI"
    version = subprocess.run(
        [str(LITELLM_VENV / "bin" / "python"), "-c", "import importlib.metadata as m; print(m.version('litellm'))"],
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout.strip()
    return cli, f"litellm {version}"


def body(model: str, *, stream: bool, emulator: dict | None) -> bytes:
    payload: dict = {"model": model, "messages": MESSAGES, "max_tokens": 64}
    if stream:
        payload["stream"] = True
        payload["stream_options"] = {"include_usage": True}
    if emulator:
        payload["emulator"] = emulator
    return json.dumps(payload).encode()


def surface_body(surface: str, model: str, *, stream: bool) -> bytes:
    """The same small request as the chat scenarios', in the surface's own shape."""
    if surface == "chat":
        return body(model, stream=stream, emulator=None)
    system, user = MESSAGES[0]["content"], MESSAGES[1]["content"]
    if surface == "messages":
        payload: dict = {"model": model, "max_tokens": 64, "system": system, "messages": [MESSAGES[1]]}
    else:  # Codex's `store: false`: nothing kept, so the step times the surface, not the response store.
        payload = {"model": model, "instructions": system, "input": user, "max_output_tokens": 64, "store": False}
    if stream:
        payload["stream"] = True
    return json.dumps(payload).encode()


def litellm_config(emulator_url: str) -> str:
    """LiteLLM's proxy config: chat and Responses on an `openai/…` model, Messages on an `anthropic/…` one."""
    root = emulator_url.removesuffix("/v1")  # LiteLLM's Anthropic client appends /v1/messages itself
    return (
        "model_list:\n"
        "  - model_name: bench/emulator\n"
        "    litellm_params:\n"
        "      model: openai/emulator-small\n"
        f"      api_base: {emulator_url}\n"
        "      api_key: sk-bench-emulator\n"
        "  - model_name: bench/claude\n"
        "    litellm_params:\n"
        "      model: anthropic/emulator-claude\n"
        f"      api_base: {root}\n"
        "      api_key: sk-bench-emulator\n"
    )


class Bench:
    """The running set: emulator, router, LiteLLM, and how to load each of them."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.processes = procs.Processes(workdir)
        self.server_core, self.load_core = procs.pinning()
        dsn, name = admin_dsn()
        self.sampler = procs.Sampler(dsn, name)
        self.urls: dict[str, str] = {}
        self.models = {
            "direct": "emulator-small",
            "router": "bench/emulator",
            "litellm": "bench/emulator",
        }
        self.server_pid: dict[str, int] = {}
        self.emulator_pid = 0
        self.workers: dict[str, list[int]] = {}
        self.entries: dict[str, procs.Started] = {}
        self.keys: dict[str, Path] = {}
        self.litellm_key = ""
        self.litellm_note = ""

    # --- starting -------------------------------------------------------------------------------
    def start_emulator(self) -> None:
        port = procs.free_port()
        entry = self.processes.start(
            "emulator", [*self.load_core, PY, "manage.py", "run_emulator", "--port", str(port)],
            env={**django_env(), "EMULATOR_API_KEY": ""}, cwd=ROOT,
        )  # fmt: skip
        self.urls["direct"] = f"http://127.0.0.1:{port}/v1"
        procs.wait_http(f"{self.urls['direct']}/models", entry)
        self.emulator_pid = entry.process.pid

    def migrate_and_seed(self) -> None:
        env = django_env()
        subprocess.run([PY, "manage.py", "migrate", "--no-input", "-v0"], cwd=ROOT, env=env, check=True, timeout=600)
        out = subprocess.run(
            [PY, str(BENCH / "seed.py"), "--emulator-url", self.urls["direct"], "--keys", str(KEYS)],
            cwd=ROOT,
            env=env,
            check=True,
            timeout=600,
            capture_output=True,
            text=True,
        ).stdout
        seeded = json.loads(out.strip().splitlines()[-1])
        for group in ("spread", "shared"):
            path = self.workdir / f"keys-{group}.txt"
            path.write_text("\n".join(seeded[group]) + "\n")
            self.keys[group] = path

    def start_router(
        self, name: str = "router", app: list[str] | None = None, workers: int = 1, database_url: str = ""
    ) -> None:
        """gunicorn + gevent, exactly as production serves it (`app`: another WSGI entry point).

        One worker is pinned to the server's core; more are given every core (P8). `database_url`: another
        database than the benchmark's (P7's empty twin).
        """
        port = procs.free_port()
        url = database_url or DATABASE_URL
        # application_name tells this router's PostgreSQL connections apart from any other's.
        env = django_env(
            DATABASE_URL=f"{url}{'&' if '?' in url else '?'}application_name=bench-{name}",
            DB_POOL_MAX_SIZE=str(POOL_MAX),
            DB_POOL_MIN_SIZE="4",
            GUNICORN_WORKER_CONNECTIONS="4000",
        )
        cores = self.server_core if workers == 1 or not self.server_core else ["taskset", "-c", "0,1"]
        argv = [
            *cores, PY, "-m", "gunicorn", "-c", "platform/gunicorn.conf.py",
            "--bind", f"127.0.0.1:{port}", "--workers", str(workers), *(app or ["mlrouter.wsgi"]),
        ]  # fmt: skip
        entry = self.processes.start(name, argv, env=env, cwd=ROOT)
        self.urls[name] = f"http://127.0.0.1:{port}/v1"
        procs.wait_http(f"{self.urls[name]}/models", entry)
        deadline = time.monotonic() + 30
        while len(found := procs.children(entry.process.pid)) < workers and time.monotonic() < deadline:
            time.sleep(0.2)
        if len(found) != workers:
            raise RuntimeError(f"expected {workers} gunicorn worker(s), found {found}")
        self.server_pid[name], self.workers[name], self.entries[name] = found[0], found, entry
        self.models.setdefault(name, self.models["router"])

    def start_litellm(self, cli: Path) -> None:
        port = procs.free_port()
        self.litellm_key = "sk-bench-" + secrets.token_urlsafe(24)
        config = self.workdir / "litellm.yaml"
        config.write_text(litellm_config(self.urls["direct"]))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "REDIS_", "DJANGO_"))}
        env.update(
            LITELLM_LOCAL_MODEL_COST_MAP="True",
            LITELLM_MASTER_KEY=self.litellm_key,
            LITELLM_LOG="ERROR",
            LITELLM_TELEMETRY="False",
            NO_PROXY="127.0.0.1,localhost",
        )
        argv = [
            *self.server_core, str(cli), "--config", str(config), "--host", "127.0.0.1", "--port", str(port),
            "--num_workers", "1",
        ]  # fmt: skip
        entry = self.processes.start("litellm", argv, env=env, cwd=self.workdir)
        self.urls["litellm"] = f"http://127.0.0.1:{port}/v1"
        auth = {"Authorization": f"Bearer {self.litellm_key}"}
        procs.wait_http(f"{self.urls['litellm']}/models", entry, timeout=180, headers=auth)
        self.server_pid["litellm"] = entry.process.pid

    # --- loading --------------------------------------------------------------------------------
    def load(
        self,
        target: str,
        *,
        concurrency: int,
        stream: bool,
        emulator: dict | None,
        keys: str = "spread",
        once: bool = False,
        ramp: float = 0.0,
        surface: str = "chat",
        model: str | None = None,
        timing: tuple[float, float] = (WARMUP, DURATION),
    ) -> dict:
        """One load on a target (`router-native`: the router, asked for the pass-through model)."""
        server = target if target in self.urls else "router" if target.startswith("router") else target
        model = model or self.models[target]
        ask = SURFACES[surface]
        body_file = self.workdir / f"body-{surface}-{target}-{int(stream)}-{abs(hash(json.dumps(emulator)))}.json"
        payload = body(model, stream=stream, emulator=emulator) if surface == "chat" else None
        body_file.write_bytes(payload or surface_body(surface, model, stream=stream))
        argv = [
            *self.load_core, PY, str(BENCH / "loadgen.py"),
            "--url", f"{self.urls[server]}/{ask['path']}", "--body-file", str(body_file),
            "--concurrency", str(concurrency), "--done", ask["done"], "--token", ask["token"],
        ]  # fmt: skip
        if once:
            argv += ["--once", "--ramp", str(ramp), "--timeout", "60"]
            bound = ramp + 200
        else:
            warmup, duration = timing
            argv += ["--duration", str(duration), "--warmup", str(warmup), "--timeout", "30"]
            bound = warmup + duration + 120
        if stream:
            argv.append("--stream")
        if server.startswith("router"):
            argv += ["--keys-file", str(self.keys[keys])]
        elif server == "litellm":
            argv += ["--header", f"Authorization: Bearer {self.litellm_key}"]
        pid = self.server_pid.get(server)
        self.sampler.pid = pid
        self.sampler.application = f"bench-{server}"
        cpu_before = procs.cpu_seconds(pid) if pid else None
        with self.sampler:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=bound)
        if done.returncode != 0:
            raise RuntimeError(f"loadgen failed against {target}:\n{done.stderr[-2000:]}")
        result = json.loads(done.stdout)
        if pid:
            cpu_after = procs.cpu_seconds(pid)
            result["server_cpu_s"] = None if cpu_after is None else round(cpu_after - cpu_before, 3)
            # Warm-up requests included: the CPU was spent on them too.
            total = result["requests_total"]
            if result["server_cpu_s"] is not None and total:
                result["cpu_ms_per_request"] = round(1000 * result["server_cpu_s"] / total, 3)
            result["max_rss_mb"] = None if self.sampler.max_rss is None else round(self.sampler.max_rss, 1)
        if server == "router":
            result["max_pg_connections"] = self.sampler.max_conns
        return result

    def profile(self, target: str, concurrency: int = 32) -> dict | None:
        """An extra plain pass (P2's, or P1's at concurrency 1) on a router under py-spy (never counted)."""
        spy = shutil.which("py-spy") or str(Path(PY).parent / "py-spy")
        if not Path(spy).exists():
            log("profile skipped: py-spy is not installed (pip install py-spy)")
            return None
        out = RESULTS / f"profile-{'p1' if concurrency == 1 else 'p2'}-{target}.txt"
        pid = self.server_pid[target]
        argv = [*self.load_core, spy, "record", "--pid", str(pid), "--rate", "200", "--format", "raw"]
        argv += ["--duration", str(int(WARMUP + DURATION)), "--output", str(out)]
        spy_proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            time.sleep(1.0)
            run = self.load(target, concurrency=concurrency, stream=False, emulator=None)
            spy_proc.wait(timeout=60)
        finally:
            if spy_proc.poll() is None:
                spy_proc.terminate()
                spy_proc.wait(timeout=10)
        if not out.exists():
            log(f"profile failed: {spy_proc.stderr.read().decode()[-500:] if spy_proc.stderr else ''}")
            return None
        summary = profile_summary.summarize(str(out))
        summary["file"] = str(out.relative_to(ROOT))
        summary["rps_while_profiled"] = run["rps"]
        return summary


def accounting_check(dsn: str = "") -> dict:
    """After the loads: every generation settled, no hold left open, balances equal their ledgers (in the
    benchmark's database, or the one `dsn` names)."""
    import psycopg

    try:
        return _accounting(psycopg, dsn or bench_dsn())
    except psycopg.Error as exc:  # a schema change must not cost the run its figures
        return {"error": str(exc).splitlines()[0]}


def bench_dsn() -> str:
    """The benchmark database's DSN without its query (application_name and the like)."""
    _, name = admin_dsn()
    return urlunsplit(urlsplit(DATABASE_URL)._replace(path=f"/{name}"))


def _accounting(psycopg, dsn: str) -> dict:
    with psycopg.connect(dsn, autocommit=True) as conn:
        statuses = dict(conn.execute("SELECT status, count(*) FROM completions_generation GROUP BY status").fetchall())
        open_holds = conn.execute("SELECT count(*) FROM billing_hold WHERE status = 'open'").fetchone()[0]
        charges = conn.execute("SELECT count(*) FROM billing_ledgerentry WHERE kind = 'charge'").fetchone()[0]
        mismatched = conn.execute(
            "SELECT count(*) FROM accounts_account a WHERE a.balance <> "
            "(SELECT coalesce(sum(e.amount), 0) FROM billing_ledgerentry e WHERE e.account_id = a.id) OR a.held <> 0"
        ).fetchone()[0]
    return {
        "generations": statuses,
        "charges": charges,
        "open_holds": open_holds,
        "accounts_off_ledger_or_holding": mismatched,
    }


def machine() -> dict:
    model = ""
    with open("/proc/cpuinfo") as fh:
        for line in fh:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as fh:
        mem_kb = int(fh.readline().split()[1])
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    return {
        "nproc": os.cpu_count(),
        "cpu": model,
        "ram_gb": round(mem_kb / 1024 / 1024, 1),
        "python": platform.python_version(),
        "commit": commit.stdout.strip(),
    }


def loadavg() -> str:
    with open("/proc/loadavg") as fh:
        return " ".join(fh.read().split()[:3])


def run_scenarios(bench: Bench) -> list[dict]:
    """P1, P2, P4, P3 and the held streams against every target that is running."""
    results = []
    for key, title, concurrency, stream, emulator, targets, keys in SCENARIOS:
        if not wanted("P3" if stream else "P1P2"):
            continue
        runs = {}
        for target in targets:
            if target not in bench.urls:
                continue
            log(f"{key} {title}: {target}")
            runs[target] = bench.load(target, concurrency=concurrency, stream=stream, emulator=emulator, keys=keys)
            log(
                f"    {runs[target]['rps']} RPS, p50 {runs[target]['p50_ms']} ms, "
                f"p99 {runs[target]['p99_ms']} ms, ok {runs[target]['ok']}/{runs[target]['requests']}"
            )
        results.append({"key": key, "title": title, "concurrency": concurrency, "runs": runs})
        if key == "P3":
            held_runs = {}
            for target in ("router",):
                if target not in bench.urls:
                    continue
                log(f"P3h {STREAMS} concurrent streams held by one worker: {target}")
                ramp = 2.0 if QUICK else 3.0
                held = bench.load(target, concurrency=STREAMS, stream=True, emulator=HELD, once=True, ramp=ramp)
                held["streams"] = STREAMS
                log(
                    f"    {held['ok']}/{STREAMS} ok, {held['max_streaming']} streaming at once, "
                    f"{held.get('max_pg_connections')} PG connections, {held.get('max_rss_mb')} MB RSS"
                )
                held_runs[target] = held
            title = f"{STREAMS} held streams"
            results.append({"key": "P3h", "title": title, "concurrency": STREAMS, "runs": held_runs})
    return results


def run_surfaces(bench: Bench) -> list[dict]:
    """P6: chat completions, Messages and Responses, plain and streamed, one connection, every target."""
    results = []
    timing = (SURFACE_WARMUP, SURFACE_DURATION)

    def load(surface: str, target: str, model: str, stream: bool, note: str = "") -> dict:
        log(f"P6 {surface} {'stream' if stream else 'plain'}: {target} ({model}){note}")
        run = bench.load(target, concurrency=1, stream=stream, emulator=None, surface=surface, model=model,
                         timing=timing)  # fmt: skip
        log(
            f"    {run['rps']} RPS, p50 {run['p50_ms']} ms, p99 {run['p99_ms']} ms, "
            f"CPU {run.get('cpu_ms_per_request')} ms/req, ok {run['ok']}/{run['requests']}"
        )
        return run

    # Every target's first requests on a surface pay for lazy imports and caches (LiteLLM's first Messages call
    # takes ~0.5 s of CPU): a few unmeasured requests each, so that no load starts cold.
    log("P6 priming every target on every surface")
    for stream in (False, True):
        for surface, models in SURFACE_MODELS.items():
            for target, model in models.items():
                if ("router" if target.startswith("router") else target) in bench.urls:
                    bench.load(target, concurrency=4, stream=stream, emulator=None, surface=surface, model=model,
                               once=True)  # fmt: skip
    for stream in (False, True):
        rounds: dict[tuple[str, str], list[dict]] = {}
        for n in range(SURFACE_ROUNDS):
            for surface, models in SURFACE_MODELS.items():
                for target, model in models.items():
                    if target.startswith("router") and "router" in bench.urls:
                        run = load(surface, target, model, stream, f", round {n + 1}/{SURFACE_ROUNDS}")
                        rounds.setdefault((surface, target), []).append(run)
        for surface, models in SURFACE_MODELS.items():
            runs = {}
            for target, model in models.items():
                if target.startswith("router"):
                    if (surface, target) in rounds:
                        runs[target] = median_round(rounds[(surface, target)])
                elif target in bench.urls:
                    runs[target] = load(surface, target, model, stream)
            results.append({"surface": surface, "stream": stream, "runs": runs})
    return results


def median_round(runs: list[dict]) -> dict:
    """The round with the median CPU per request, with every round's CPU and failures beside it."""
    measured = [run for run in runs if run["requests"]] or runs
    ordered = sorted(measured, key=lambda run: run.get("cpu_ms_per_request") or 0.0)
    chosen = dict(ordered[(len(ordered) - 1) // 2])
    chosen["cpu_ms_per_request_rounds"] = [run.get("cpu_ms_per_request") for run in runs]
    chosen["failed_rounds"] = sum(run["requests"] - run["ok"] + sum(run["errors"].values()) for run in runs)
    return chosen


def print_report(out: dict) -> None:
    """The table, the targets, the books and the profiles."""
    m = out["machine"]
    print()
    print(
        f"ML Router benchmark — {'QUICK ' if QUICK else ''}{out['when']}, {m['nproc']} × {m['cpu']}, "
        f"{m['ram_gb']} GB RAM, Python {m['python']}, commit {m['commit']}; {out['pinning']}; "
        f"load average {out['load_average_before']} → {out['load_average_after']}"
    )
    print(f"LiteLLM: {out['litellm']}")
    print()
    if out["scenarios"]:
        print(report.table(out["scenarios"]))
        print()
        print(report.targets_text(out["targets"]))
    if isinstance(out.get("surfaces"), list):
        print()
        print(report.surfaces_table(out["surfaces"]))
        print()
        print(report.targets_text(out["surface_targets"]))
    elif out.get("surfaces"):
        print(f"\nP6 surfaces: {out['surfaces']}")
    if out.get("streams"):
        print()
        print(streams.text(out["streams"]))
    acc = out["accounting"]
    if "error" in acc:
        print(f"\naccounting check failed: {acc['error']}")
    else:
        print(
            f"\naccounting after the run: generations {acc['generations']}, {acc['charges']} charges, "
            f"{acc['open_holds']} open holds, {acc['accounts_off_ledger_or_holding']} accounts off their ledger"
        )
    if out.get("metrics_cost"):
        print()
        print(metrics_cost.text(out["metrics_cost"]))
    recon = out.get("reconciliation")
    if isinstance(recon, list):
        print("\nreconciliation (1,000 accounts; 1,000 new generations charged before each incremental run):")
        for r in recon:
            print(
                f"  {r['ledger_rows']:>11,} ledger rows: incremental run {r['incremental_median_s']:.3f} s "
                f"(median of {r['incremental_s']}), full audit {r['full_audit_s']:.2f} s"
            )
    elif recon:
        print(f"\nreconciliation: {recon}")
    if scale_text := scale.text(out):
        print(scale_text)
    for name, summary in (out.get("profiles") or {}).items():
        if summary:
            scenario, target = name.split()
            print(f"\nprofile of the {report.LABELS[target]} worker during {scenario} ({summary['file']}):")
            measured = report.find(out["scenarios"], scenario, target) or {}
            print(profile_summary.text(summary, measured.get("cpu_ms_per_request")))


def reconciliation_times() -> list[dict] | str:
    """Grow the benchmark database's ledger to each size and time reconciliation runs (bench/reconcile.py)."""
    log(f"reconciliation at {', '.join(RECONCILE_ROWS)} ledger rows (bench/reconcile.py)")
    done = subprocess.run(
        [PY, str(BENCH / "reconcile.py"), *RECONCILE_ROWS], env=django_env(), cwd=ROOT, capture_output=True, text=True
    )
    if done.returncode:
        return f"failed: {done.stderr.strip().splitlines()[-1] if done.stderr.strip() else done.returncode}"
    return json.loads(done.stdout)


def run() -> int:
    started = time.time()
    RESULTS.mkdir(exist_ok=True)
    out: dict = {
        "when": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "quick": QUICK,
        "machine": machine(),
        "load_average_before": loadavg(),
        "config": {
            "warmup_s": WARMUP,
            "duration_s": DURATION,
            "db_pool_max_size": POOL_MAX,
            "held_streams": STREAMS,
            "paced_stream": PACED,
            "held_stream": HELD,
            "surface_warmup_s": SURFACE_WARMUP,
            "surface_duration_s": SURFACE_DURATION,
            "surface_rounds": SURFACE_ROUNDS,
        },
    }
    with tempfile.TemporaryDirectory(prefix="mlrouter-bench-") as tmp:
        bench = Bench(Path(tmp))
        out["pinning"] = "router/LiteLLM on core 0, loadgen + emulator on core 1" if bench.server_core else "none"
        try:
            kind = "quick" if QUICK else "full"
            log(f"{kind} run; pinning: {out['pinning']}; load average {out['load_average_before']}")
            scale_only = bool(ONLY) and ONLY <= {"P7", "P8"}  # no LiteLLM in P7 or P8
            cli, out["litellm"] = (None, "not needed (BENCH_ONLY)") if scale_only else ensure_litellm()
            log(f"LiteLLM: {out['litellm']}")
            prepare_stores()
            bench.start_emulator()
            log("migrating and seeding mlrouter_bench")
            bench.migrate_and_seed()
            bench.start_router()
            if cli is not None:
                try:
                    bench.start_litellm(cli)
                except RuntimeError as exc:
                    out["litellm"] = f"skipped: the proxy did not start ({str(exc).splitlines()[0]})"
                    log(out["litellm"])
            if not (wanted("P1P2") or wanted("P3")):
                out["scenarios"] = []
            elif repeat.RUNS > 1:
                out["runs"] = repeat.repeat(lambda: run_scenarios(bench), accounting_check, log)
                out["scenarios"] = out["runs"][-1]["scenarios"]
            else:
                out["scenarios"] = run_scenarios(bench)
            if wanted("P5"):
                out["streams"] = streams.run(bench, log, quick=QUICK, profile=WANT_PROFILE)
            if wanted("P6") and (WANT_SURFACES or "P6" in ONLY):
                out["surfaces"] = run_surfaces(bench)
            else:
                out["surfaces"] = "skipped (BENCH_SURFACES=0)" if wanted("P6") else "skipped (BENCH_ONLY)"
            if WANT_PROFILE and wanted("P1P2"):
                out["profiles"] = {}
                log("profiling the router worker during an extra P2 pass and an extra P1 pass (py-spy)")
                out["profiles"]["P2 router"] = bench.profile("router")
                out["profiles"]["P1 router"] = bench.profile("router", concurrency=1)
            out.update(scale.steps(bench))
            out["accounting"] = accounting_check()
        finally:
            bench.processes.stop_all()
    # After the servers stopped: both time work on this process's core, not the router's.
    if ONLY:
        out["metrics_cost"], out["reconciliation"] = None, f"skipped (BENCH_ONLY={','.join(sorted(ONLY))})"
    else:
        log("timing the metrics instrumentation per request")
        out["metrics_cost"] = metrics_cost.measure_all()
        if scale.WANT_P7:  # the ledger already holds P7's history: its sizes would be wrong
            out["reconciliation"] = "skipped (P7 timed it at 10M ledger rows)"
        else:
            out["reconciliation"] = reconciliation_times() if WANT_RECONCILE else "skipped (BENCH_RECONCILE=0)"
    out["load_average_after"] = loadavg()
    out["elapsed_s"] = round(time.time() - started, 1)
    out["targets"] = report.targets(out["scenarios"])
    if isinstance(out["surfaces"], list):
        out["surface_targets"] = report.surface_targets(out["surfaces"])
    (RESULTS / "latest.json").write_text(json.dumps(out, indent=2, ensure_ascii=False) + "\n")

    print_report(out)
    if out.get("runs"):
        print()
        print(repeat.text(out["runs"]))
    print(f"\nraw results: bench/results/latest.json ({out['elapsed_s']} s)")
    return 0


def main() -> None:
    if os.cpu_count() and os.cpu_count() >= 2 and shutil.which("taskset"):
        os.sched_setaffinity(0, {1})  # the orchestrator and its sampler stay off the server's core

    def interrupted(signum, frame):
        raise KeyboardInterrupt

    # Explicit for SIGINT too: a shell that starts us in the background may have left it ignored.
    signal.signal(signal.SIGTERM, interrupted)
    signal.signal(signal.SIGINT, interrupted)
    try:
        sys.exit(run())
    except KeyboardInterrupt:
        print("\ninterrupted; everything the benchmark started was stopped", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
