"""POST /v1/responses in-process against a scripted chat provider: the answer side of the translation
table (finish reasons, namespaced calls, usage details) in the `response` object and in the event stream.
The scripted provider is test_chat_view's."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from django.test import Client

from tests.completions import test_chat_view
from tests.completions.test_chat_view import UPSTREAM_MODEL, FakeProvider, Shop, chunk, completion, decimal_json

provider_server = test_chat_view.provider_server
provider = test_chat_view.provider
shop = test_chat_view.shop

pytestmark = pytest.mark.django_db

TOOLS = [{"type": "namespace", "name": "agents", "tools": [{"type": "function", "name": "spawn"}]}]


def post(shop: Shop, **body: Any) -> Any:
    raw = json.dumps({"model": shop.model.public_id, "input": "hi", **body}).encode()
    return Client().post("/v1/responses", raw, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {shop.key}")


def events(response: Any) -> list[dict[str, Any]]:
    out = []
    for block in b"".join(response.streaming_content).strip().split(b"\n\n"):
        name, data = block.split(b"\n")
        event = json.loads(data[6:], parse_float=Decimal)
        assert name == b"event: " + event["type"].encode()
        out.append(event)
    assert [e["sequence_number"] for e in out] == list(range(len(out)))
    return out


def test_a_content_filter_stop_is_an_incomplete_response(shop: Shop, provider: FakeProvider):
    answer = completion("partial", {"prompt_tokens": 5, "completion_tokens": 1})
    answer["choices"][0]["finish_reason"] = "content_filter"
    provider.answer(answer)

    body = decimal_json(post(shop).content)

    assert (body["status"], body["incomplete_details"]) == ("incomplete", {"reason": "content_filter"})


def test_usage_details_come_from_the_providers_usage(shop: Shop, provider: FakeProvider):
    answer = completion("ok", {"prompt_tokens": 50, "completion_tokens": 20})
    answer["usage"]["prompt_tokens_details"] = {"cached_tokens": 30}
    answer["usage"]["completion_tokens_details"] = {"reasoning_tokens": 12}
    provider.answer(answer)

    usage = decimal_json(post(shop).content)["usage"]

    assert usage["input_tokens_details"] == {"cached_tokens": 30, "cache_write_tokens": 0}
    assert usage["output_tokens_details"] == {"reasoning_tokens": 12}
    assert (usage["input_tokens"], usage["output_tokens"], usage["total_tokens"]) == (50, 20, 70)
    assert usage["cost"] == (Decimal(50) * Decimal("0.15") + Decimal(20) * Decimal("0.60")) / 1_000_000


@pytest.mark.django_db(transaction=True)  # the stream is settled by its reader thread
def test_a_namespaced_call_comes_back_under_its_namespace_plain_and_streamed(shop: Shop, provider: FakeProvider):
    call = {"id": "call_1", "type": "function", "function": {"name": "agents__spawn", "arguments": '{"n":1}'}}
    answer = completion("", {"prompt_tokens": 5, "completion_tokens": 3})
    answer["choices"][0]["message"] = {"role": "assistant", "content": None, "tool_calls": [call]}
    answer["choices"][0]["finish_reason"] = "tool_calls"
    provider.answer(answer)

    (item,) = decimal_json(post(shop, tools=TOOLS).content)["output"]

    assert (item["type"], item["namespace"], item["name"], item["call_id"]) == (
        "function_call",
        "agents",
        "spawn",
        "call_1",
    )
    assert provider.received[0].body["tools"][0]["function"]["name"] == "agents__spawn"
    assert provider.received[0].body["model"] == UPSTREAM_MODEL

    provider.events(
        [
            chunk(
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [{**call, "index": 0, "function": {"name": "agents__spawn", "arguments": ""}}],
                }
            ),
            chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"n":'}}]}),
            chunk({"tool_calls": [{"index": 0, "function": {"arguments": "1}"}}]}),
            chunk({}, finish_reason="tool_calls"),
        ]
    )
    stream = events(post(shop, tools=TOOLS, stream=True))

    kinds = [e["type"] for e in stream]
    assert kinds == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    done = stream[-2]["item"]
    assert (done["namespace"], done["name"], done["arguments"], done["status"]) == (
        "agents",
        "spawn",
        '{"n":1}',
        "completed",
    )
    assert stream[-1]["response"]["output"] == [done]


@pytest.mark.django_db(transaction=True)  # the stream is settled by its reader thread
def test_text_then_a_call_in_one_stream_are_two_items_each_closed_before_the_next(shop: Shop, provider: FakeProvider):
    call = {"index": 0, "id": "call_1", "type": "function", "function": {"name": "agents__spawn", "arguments": "{}"}}
    provider.events(
        [
            chunk({"content": "Let me"}),
            chunk({"content": " check."}),
            chunk({"tool_calls": [call]}),
            chunk({}, finish_reason="tool_calls"),
        ]
    )

    stream = events(post(shop, tools=TOOLS, stream=True))

    kinds = [e["type"] for e in stream]
    assert kinds[2:9] == [
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
    ]
    assert stream[6]["text"] == "Let me check."
    output = stream[-1]["response"]["output"]
    assert [(o["type"], o["status"]) for o in output] == [("message", "completed"), ("function_call", "completed")]
    assert [e["output_index"] for e in stream if e["type"] == "response.output_item.added"] == [0, 1]
