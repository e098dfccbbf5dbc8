"""The Vercel AI SDK (`ai` with `@ai-sdk/openai-compatible`, pinned in tests/clients/node/package-lock.json)
against a live router, through tests/clients/node/ai-sdk.mjs."""

from __future__ import annotations

from decimal import Decimal

from tests.e2e.conftest import cost_of

from .test_openai_python import TEXT_5


def test_generate_text_returns_the_text_usage_and_cost(run_node):
    out = run_node("ai-sdk.mjs", "generate")
    assert (out["text"], out["finish_reason"]) == (TEXT_5, "stop")
    assert (out["input_tokens"], out["output_tokens"]) == (8, 5)
    assert Decimal(str(out["cost"])) == cost_of(8, 5)


def test_stream_text_without_include_usage_still_reports_usage(run_node):
    out = run_node("ai-sdk.mjs", "stream")
    assert (out["text"], out["finish_reason"]) == (TEXT_5, "stop")
    assert (out["input_tokens"], out["output_tokens"]) == (8, 5)


def test_stream_text_with_include_usage_reports_usage(run_node):
    out = run_node("ai-sdk.mjs", "stream_usage")
    assert (out["text"], out["finish_reason"]) == (TEXT_5, "stop")
    assert (out["input_tokens"], out["output_tokens"]) == (8, 5)
