"""`make bench`'s definitions, without running a load: its catalog imports, the request bodies of every surface
are answered by the emulator and recognised by the load generator, LiteLLM's config routes each surface, and
the surfaces step's verdicts follow its figures."""

from __future__ import annotations

import importlib.util
import re
import sys

import pytest
import yaml
from django.conf import settings

from completions.catalog import catalog_import
from completions.models import Route
from emulator import core, messages, responses

BENCH = settings.BASE_DIR / "bench"


def _module(name: str):
    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


run = _module("run")
seed = _module("seed")
loadgen = _module("loadgen")
report = _module("report")
repeat = _module("repeat")

REPLIES = {"chat": core.chat_reply, "messages": messages.messages_reply, "responses": responses.responses_reply}
HEADERS = {"content-type": "application/json", "anthropic-version": "2023-06-01"}


@pytest.mark.django_db
def test_the_bench_catalog_imports_with_a_route_of_each_kind_the_surfaces_step_needs():
    catalog_import(seed.catalog("http://127.0.0.1:9/v1"))
    apis = dict(Route.objects.values_list("model__public_id", "api"))
    assert apis == {
        seed.MODEL_ID: Route.Api.OPENAI_CHAT,
        seed.MESSAGES_MODEL_ID: Route.Api.ANTHROPIC_MESSAGES,
        seed.RESPONSES_MODEL_ID: Route.Api.OPENAI_RESPONSES,
    }
    for targets in run.SURFACE_MODELS.values():
        assert {targets["router"], targets.get("router-native", seed.MESSAGES_MODEL_ID)} <= set(apis)


@pytest.mark.parametrize("surface", list(run.SURFACES))
@pytest.mark.parametrize("stream", [False, True])
def test_each_surface_body_is_answered_by_the_emulator_and_recognised_as_complete(surface, stream):
    model = run.SURFACE_MODELS[surface]["direct"]
    reply = REPLIES[surface](run.surface_body(surface, model, stream=stream), HEADERS)
    assert reply.status == 200, reply.body
    if not stream:
        assert reply.events is None and reply.body.startswith(b"{")
        return
    raw = b"".join(event for event in reply.events if isinstance(event, bytes))
    ask = run.SURFACES[surface]
    assert loadgen._complete(raw, ask["done"].encode())
    assert loadgen._complete(raw + b"data: [DONE]\n\n", ask["done"].encode())  # as LiteLLM ends its streams
    assert re.search(ask["token"].encode(), raw)
    cut = raw.rstrip()[: raw.rstrip().rfind(b"\n\n")]  # without its last event, a stream is not complete
    assert not loadgen._complete(cut, ask["done"].encode())


def test_litellm_config_routes_messages_to_anthropic_and_the_rest_to_openai_at_the_emulator():
    config = yaml.safe_load(run.litellm_config("http://127.0.0.1:8100/v1"))
    params = {entry["model_name"]: entry["litellm_params"] for entry in config["model_list"]}
    assert params["bench/emulator"]["model"].startswith("openai/")
    assert params["bench/emulator"]["api_base"] == "http://127.0.0.1:8100/v1"
    assert params["bench/claude"]["model"].startswith("anthropic/")
    assert params["bench/claude"]["api_base"] == "http://127.0.0.1:8100"
    for targets in run.SURFACE_MODELS.values():
        assert targets["litellm"] in params


def _run(cpu: float | None) -> dict:
    return {"cpu_ms_per_request": cpu, "p50_ms": 2.0, "p99_ms": 3.0, "ttft_p50_ms": None, "rps": 400.0}


def _results(
    chat: float, translated: float, native: float, responses_cpu: float, responses_native: float = 1.6
) -> list[dict]:
    out = []
    for stream in (False, True):
        out += [
            {"surface": "chat", "stream": stream, "runs": {"router": _run(chat)}},
            {
                "surface": "messages",
                "stream": stream,
                "runs": {"router": _run(translated), "router-native": _run(native)},
            },
            {
                "surface": "responses",
                "stream": stream,
                "runs": {"router": _run(responses_cpu), "router-native": _run(responses_native)},
            },
        ]
    for scenario in out:
        for one in scenario["runs"].values():
            one.update(requests=10, ok=10, errors={})
    return out


def test_the_surfaces_verdicts_follow_the_margin_over_pass_through_and_over_chat():
    passing = report.surface_targets(
        _results(chat=1.6, translated=1.8, native=1.6, responses_cpu=1.9, responses_native=1.7)
    )
    assert [check["verdict"] for check in passing] == ["PASS"] * 12
    failing = report.surface_targets(_results(chat=1.6, translated=2.0, native=1.6, responses_cpu=1.6))
    # Per mode: Messages and Responses over pass-through, then each variant over chat completions.
    assert [check["verdict"] for check in failing] == ["FAIL", "PASS", "FAIL", "PASS", "PASS", "PASS"] * 2
    table = report.surfaces_table(_results(chat=1.6, translated=2.0, native=1.6, responses_cpu=1.6))
    assert "| messages | plain | ML Router, openai-chat route (translated) | 0.40 | 1.25× |" in table


def test_the_median_round_is_reported_with_every_round_beside_it():
    rounds = [dict(_run(cpu), requests=10, ok=10, errors={}) for cpu in (2.0, 1.5, 1.7)]
    chosen = run.median_round(rounds)
    assert chosen["cpu_ms_per_request"] == 1.7
    assert chosen["cpu_ms_per_request_rounds"] == [2.0, 1.5, 1.7]
    assert chosen["failed_rounds"] == 0


def test_a_surface_is_compared_with_chat_round_by_round_when_both_ran_in_rounds():
    chat = dict(_run(1.0), cpu_ms_per_request_rounds=[2.0, 1.0, 1.5])
    messages = dict(_run(1.2), cpu_ms_per_request_rounds=[2.1, 1.2, 1.6])
    assert report._paired(messages, chat) == (0.1, [0.1, 0.2, 0.1])
    assert report._paired(_run(1.2), _run(1.0)) == (0.2, [])  # no rounds: the two figures


def _plain(p1: tuple[float, float], p2: tuple[float, float, float], p4: float) -> list[dict]:
    """P1, P2 and P4 as run_scenarios returns them: P1 (direct, router) p50, P2 (router, LiteLLM) RPS and p99."""

    def one(**figures) -> dict:
        return {"requests": 10, "ok": 10, "errors": {}, "rps": None, "p50_ms": None, "p99_ms": None, **figures}

    return [
        {"key": "P1", "runs": {"direct": one(p50_ms=p1[0]), "router": one(p50_ms=p1[1]), "litellm": one(p50_ms=9.0)}},
        {"key": "P2", "runs": {"router": one(rps=p2[0], p99_ms=p2[2]), "litellm": one(rps=p2[1], p99_ms=600.0)}},
        {"key": "P4", "runs": {"router": one(rps=p4, p99_ms=90.0)}},
    ]


BALANCED = {"generations": {"completed": 30}, "charges": 30, "open_holds": 0, "accounts_off_ledger_or_holding": 0}


def test_a_run_passes_only_when_p1_p2_and_the_books_all_meet_issue_16s_targets():
    passing = repeat.figures(_plain((0.2, 1.6), (660.0, 100.0, 80.0), 600.0), BALANCED)
    assert (passing["p1_ms"], passing["p2_ratio"], passing["p4_share"], passing["passed"]) == (1.4, 6.6, 0.909, True)
    slow = repeat.figures(_plain((0.2, 1.8), (660.0, 100.0, 80.0), 600.0), BALANCED)
    assert slow["checks"] == {"P1": False, "P2": True, "books": True, "failed": True}
    behind = repeat.figures(_plain((0.2, 1.6), (590.0, 100.0, 80.0), 600.0), BALANCED)
    assert behind["checks"]["P2"] is False
    tail = repeat.figures(_plain((0.2, 1.6), (660.0, 100.0, 101.0), 600.0), BALANCED)
    assert tail["checks"]["P2"] is False
    open_hold = repeat.figures(_plain((0.2, 1.6), (660.0, 100.0, 80.0), 600.0), {**BALANCED, "open_holds": 1})
    assert (open_hold["books"], open_hold["passed"]) == (False, False)


def test_the_runs_are_repeated_with_the_books_checked_after_each_and_a_table_marks_each_miss(monkeypatch):
    monkeypatch.setattr(repeat, "RUNS", 3)
    passes = iter([(1.6, 660.0), (1.8, 660.0), (1.6, 590.0)])
    checked = []

    def once():
        router_p50, rps = next(passes)
        return _plain((0.2, router_p50), (rps, 100.0, 80.0), 600.0)

    def books():
        checked.append(len(checked) + 1)
        return BALANCED

    runs = repeat.repeat(once, books, lambda line: None)
    assert checked == [1, 2, 3]
    assert [run["passed"] for run in runs] == [True, False, False]
    text = repeat.text(runs)
    assert "| **1.60 ms** |" in text and "| **590 / 100 = 5.90×** |" in text
    assert text.splitlines()[-1].startswith("- FAIL  every run:") and text.endswith("1 of 3 runs")
