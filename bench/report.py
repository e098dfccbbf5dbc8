"""The benchmark's table and target checks, from the raw results `run.py` collects."""

from __future__ import annotations

TARGETS = ("direct", "router", "litellm")
LABELS = {
    "direct": "emulator direct",
    "router": "ML Router",
    "litellm": "LiteLLM proxy",
}
# P6: how the router serves each surface on the `openai-chat` route, and Messages on its own route.
SURFACE_LABELS = {
    ("chat", "router"): "ML Router, openai-chat route (native)",
    ("messages", "router"): "ML Router, openai-chat route (translated)",
    ("messages", "router-native"): "ML Router, anthropic-messages route (pass-through)",
    ("responses", "router"): "ML Router, openai-chat route (translated)",
    ("responses", "router-native"): "ML Router, openai-responses route (pass-through)",
}
SURFACE_CPU_MARGIN_MS = 0.3


def _num(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


def _ratio(ours: float | None, theirs: float | None) -> str:
    if ours is None or theirs in (None, 0):
        return "–"
    return f"{ours / theirs:.2f}×"


def table(results: list[dict]) -> str:
    """One markdown table: a row per scenario and target, with ratios to the direct call and to LiteLLM."""
    head = (
        "| scenario | target | RPS | p50 ms | p95 ms | p99 ms | TTFT p50 ms | CPU ms/req | RSS MB | PG conns "
        "| RPS ×direct | RPS ×LiteLLM | p50 ×direct | p50 ×LiteLLM | TTFT ×direct | TTFT ×LiteLLM | failed |"
    )
    lines = [head, "|" + "---|" * head.count(" | ") + "---|"]
    for scenario in results:
        runs = scenario["runs"]
        direct, litellm = runs.get("direct"), runs.get("litellm")
        for target in TARGETS:
            run = runs.get(target)
            if run is None:
                continue
            failed = run["requests"] - run["ok"] + sum(run["errors"].values())
            row = [
                f"{scenario['key']} {scenario['title']}",
                LABELS[target],
                _num(run["rps"]),
                _num(run["p50_ms"], 2),
                _num(run["p95_ms"], 2),
                _num(run["p99_ms"], 2),
                _num(run["ttft_p50_ms"], 2),
                _num(run.get("cpu_ms_per_request"), 2),
                _num(run.get("max_rss_mb")),
                _num(run.get("max_pg_connections"), 0),
            ]
            for field in ("rps", "p50_ms", "ttft_p50_ms"):
                for other in (direct, litellm):
                    # Ratios are what a gateway costs: none for the direct call itself.
                    theirs = None if other is None or other is run or run is direct else other.get(field)
                    row.append(_ratio(run.get(field), theirs))
            row.append(str(failed))
            lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def find(results: list[dict], key: str, target: str) -> dict | None:
    for scenario in results:
        if scenario["key"] == key:
            return scenario["runs"].get(target)
    return None


def _diff(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else round(a - b, 3)


def _verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("PASS" if ok else "FAIL")


def targets(results: list[dict], ours: str = "router") -> list[dict]:
    """The issue's targets P1..P4 for `ours`, each with the measured figure and a verdict."""
    out = []
    tag = "" if ours == "router" else f" [{LABELS[ours]}]"

    def runs(key: str) -> tuple[dict | None, dict | None, dict | None]:
        return find(results, key, "direct"), find(results, key, ours), find(results, key, "litellm")

    direct, router, litellm = runs("P1")
    overhead = _diff(router and router["p50_ms"], direct and direct["p50_ms"])
    theirs = _diff(litellm and litellm["p50_ms"], direct and direct["p50_ms"])
    out.append(
        {
            "target": f"P1 plain c=1: p50 overhead over the direct call ≤ 2.5 ms{tag}",
            "measured": f"{_num(overhead, 2)} ms (LiteLLM: {_num(theirs, 2)} ms)",
            "verdict": _verdict(None if overhead is None else overhead <= 2.5),
        }
    )

    _, router, litellm = runs("P2")
    times = None if not router or not litellm or not litellm["rps"] else router["rps"] / litellm["rps"]
    p99 = router and router["p99_ms"]
    out.append(
        {
            "target": f"P2 plain c=32: ≥ 5× LiteLLM's RPS, p99 ≤ 100 ms{tag}",
            "measured": f"{_num(router and router['rps'])} RPS = {_num(times, 2)}× LiteLLM; p99 {_num(p99, 2)} ms",
            "verdict": _verdict(
                None if router is None or p99 is None else (p99 <= 100 and (times is None or times >= 5))
            ),
        }
    )

    direct, router, litellm = runs("P3")
    ttft = _diff(router and router["ttft_p50_ms"], direct and direct["ttft_p50_ms"])
    theirs = _diff(litellm and litellm["ttft_p50_ms"], direct and direct["ttft_p50_ms"])
    out.append(
        {
            "target": f"P3 streams c=32: TTFT p50 overhead ≤ 5 ms{tag}",
            "measured": f"{_num(ttft, 2)} ms (LiteLLM: {_num(theirs, 2)} ms)",
            "verdict": _verdict(None if ttft is None else ttft <= 5),
        }
    )

    held = find(results, "P3h", ours)
    if held is not None:
        ok = (
            held["ok"] == held["requests"] == held["streams"]
            and held["max_streaming"] >= held["streams"]
            and (held.get("max_pg_connections") or 0) <= 20
            and (held.get("max_rss_mb") or 0) <= 250
        )
        out.append(
            {
                "target": f"P3 {held['streams']} concurrent streams on one worker: ≤ 20 PG connections, "
                f"≤ 250 MB RSS{tag}",
                "measured": (
                    f"{held['ok']}/{held['streams']} completed, {held['max_streaming']} streaming at once; "
                    f"{_num(held.get('max_pg_connections'), 0)} PG connections, "
                    f"{_num(held.get('max_rss_mb'))} MB RSS"
                ),
                "verdict": _verdict(ok),
            }
        )

    shared, spread = find(results, "P4", ours), find(results, "P2", ours)
    share = None if not shared or not spread or not spread["rps"] else shared["rps"] / spread["rps"]
    out.append(
        {
            "target": f"P4 one account, c=32: ≥ 80% of P2's RPS{tag}",
            "measured": f"{_num(shared and shared['rps'])} RPS = {_num(share and share * 100, 0)}% of P2",
            "verdict": _verdict(None if share is None else share >= 0.8),
        }
    )
    return out


def targets_text(checks: list[dict]) -> str:
    return "\n".join(f"- {c['verdict']:4}  {c['target']}: {c['measured']}" for c in checks)


def _surface(results: list[dict], surface: str, stream: bool) -> dict:
    for scenario in results:
        if scenario["surface"] == surface and scenario["stream"] == stream:
            return scenario["runs"]
    return {}


def _cpu(run: dict | None) -> float | None:
    return None if run is None else run.get("cpu_ms_per_request")


def _paired(run: dict | None, other: dict | None) -> tuple[float | None, list[float]]:
    """`run`'s CPU per request minus `other`'s: the median of the differences within each interleaved round
    (the rounds' drift cancels), or of the two figures when there are no rounds; and the differences."""
    mine = (run or {}).get("cpu_ms_per_request_rounds") or []
    theirs = (other or {}).get("cpu_ms_per_request_rounds") or []
    pairs = sorted(round(a - b, 3) for a, b in zip(mine, theirs, strict=False) if a is not None and b is not None)
    if not pairs or len(mine) != len(theirs):
        return _diff(_cpu(run), _cpu(other)), []
    middle = len(pairs) // 2
    median = pairs[middle] if len(pairs) % 2 else (pairs[middle - 1] + pairs[middle]) / 2
    return round(median, 3), [round(a - b, 3) for a, b in zip(mine, theirs, strict=True)]


def surfaces_table(results: list[dict]) -> str:
    """P6 as one markdown table, ratios first: the router's CPU per request against chat completions' on the
    same route and mode, and each gateway's CPU and p50 against LiteLLM's and the direct call's."""
    head = (
        "| surface | mode | target | CPU − chat ms | CPU ×chat | CPU ×LiteLLM | p50 ×direct | p50 ×LiteLLM "
        "| CPU ms/req | p50 ms | p99 ms | TTFT p50 ms | RPS | failed |"
    )
    lines = [head, "|" + "---|" * head.count(" | ") + "---|"]
    for scenario in results:
        surface, runs = scenario["surface"], scenario["runs"]
        chat = _surface(results, "chat", scenario["stream"]).get("router")
        direct, litellm = runs.get("direct"), runs.get("litellm")
        for target, run in runs.items():
            gateway = run is not direct
            ours = target.startswith("router")
            row = [
                surface,
                "stream" if scenario["stream"] else "plain",
                SURFACE_LABELS.get((surface, target), LABELS.get(target, target)),
                _num(_paired(run, chat)[0], 2) if ours and surface != "chat" else "–",
                _ratio(_cpu(run), _cpu(chat)) if ours and surface != "chat" else "–",
                _ratio(_cpu(run), _cpu(litellm)) if ours else "–",
                _ratio(run["p50_ms"], direct and direct["p50_ms"]) if gateway else "–",
                _ratio(run["p50_ms"], litellm and litellm["p50_ms"]) if ours else "–",
                _num(_cpu(run), 3),
                _num(run["p50_ms"], 2),
                _num(run["p99_ms"], 2),
                _num(run["ttft_p50_ms"], 2),
                _num(run["rps"]),
                str(run.get("failed_rounds", run["requests"] - run["ok"] + sum(run["errors"].values()))),
            ]
            lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def surface_targets(results: list[dict]) -> list[dict]:
    """P6's targets: translation at most 0.3 ms of CPU over pass-through, each surface within 0.3 ms of chat
    (round-by-round medians; the rounds' own differences are shown, their spread is the measurement's)."""
    out = []
    margin = SURFACE_CPU_MARGIN_MS

    def check(title: str, run: dict | None, other: dict | None) -> dict:
        extra, rounds = _paired(run, other)
        spread = f" (by round: {', '.join(f'{d:+.2f}' for d in rounds)})" if rounds else ""
        return {
            "target": title,
            "measured": f"{_num(_cpu(run), 3)} vs {_num(_cpu(other), 3)} ms/req: {_num(extra, 3)} ms{spread}",
            "verdict": _verdict(None if extra is None else extra <= margin),
        }

    for stream in (False, True):
        mode = "stream" if stream else "plain"
        chat = _surface(results, "chat", stream).get("router")
        for surface in ("messages", "responses"):
            runs = _surface(results, surface, stream)
            out.append(
                check(
                    f"P6 {surface} {mode}: translation adds ≤ {margin} ms of CPU over pass-through",
                    runs.get("router"),
                    runs.get("router-native"),
                )
            )
        for surface, target in (
            ("messages", "router"),
            ("messages", "router-native"),
            ("responses", "router"),
            ("responses", "router-native"),
        ):
            how = SURFACE_LABELS[(surface, target)].split(", ", 1)[1]
            title = f"P6 {surface} {mode}, {how}: CPU ≤ chat completions' + {margin} ms"
            out.append(check(title, _surface(results, surface, stream).get(target), chat))
    return out
