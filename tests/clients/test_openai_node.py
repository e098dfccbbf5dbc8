"""openai-node (pinned in tests/clients/node/package-lock.json) against a live router, through
tests/clients/node/openai.mjs."""

from __future__ import annotations

from decimal import Decimal

from tests.e2e.conftest import Shop, cost_of

from .test_openai_python import TEXT_5


def test_a_completion_has_its_text_usage_cost_and_request_id(run_node):
    out = run_node("openai.mjs", "create")
    assert out["content"] == TEXT_5
    assert (out["usage"]["prompt_tokens"], out["usage"]["completion_tokens"]) == (8, 5)
    assert Decimal(str(out["usage"]["cost"])) == cost_of(8, 5)
    assert out["request_id"]


def test_the_docs_stream_loop_reads_every_chunk_without_include_usage(run_node):
    out = run_node("openai.mjs", "stream")
    assert out["text"] == TEXT_5
    assert out["finish_reason"] == "stop"
    assert (out["usage"]["prompt_tokens"], out["usage"]["completion_tokens"]) == (8, 5)
    assert Decimal(str(out["usage"]["cost"])) == cost_of(8, 5)
    assert out["request_id"]


def test_a_stream_with_include_usage_ends_with_the_usage_chunk(run_node):
    out = run_node("openai.mjs", "stream_usage")
    assert out["text"] == TEXT_5
    *content, last = out["choices_per_chunk"]
    assert (min(content), last) == (1, 0)
    assert Decimal(str(out["usage"]["cost"])) == cost_of(8, 5)


def test_a_tool_call_round_trips(run_node):
    out = run_node("openai.mjs", "tools")
    assert (out["finish_reason"], out["name"], out["arguments"]) == ("tool_calls", "get_weather", {"city": "Moscow"})
    assert "Sunny" in out["answer"]


def test_parse_returns_the_json_schema_object(run_node):
    assert run_node("openai.mjs", "parse")["parsed"] == {"city": "Moscow", "temperature_c": 1, "sunny": True}


def test_the_model_list_names_the_model(run_node, shop: Shop):
    assert shop.model.public_id in run_node("openai.mjs", "models")["ids"]
