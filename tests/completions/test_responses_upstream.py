"""Routes that speak OpenAI's Responses API (`Route.api = openai-responses`), in-process against a scripted
provider: the Responses surface passed through to them untouched (reasoning items, `include`, built-in tools),
the answer and the stream handed on with our id and exact cost, every ending of a stream settled once, stored
responses continued natively, and the surface this kind does not serve (embeddings) skipped. Chat completions and
Messages translated onto such routes are tests/completions/test_responses_translated.py.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from django.test import Client

from completions.models import Generation, Route, StoredResponse
from tests.completions import test_chat_view
from tests.completions.test_anthropic_upstream import cost, make_shop, script_stream
from tests.completions.test_chat_view import (
    PROVIDER_KEY,
    UPSTREAM_MODEL,
    FakeProvider,
    Shop,
    assert_nothing_moved,
    assert_settled_once,
    completion,
    decimal_json,
)
from tests.completions.test_messages import events, streamed

provider_server = test_chat_view.provider_server
provider = test_chat_view.provider

pytestmark = pytest.mark.django_db

NATIVE_MODEL = f"{UPSTREAM_MODEL}-openai-responses"
REASONING = {"id": "rs_1", "type": "reasoning", "summary": [], "encrypted_content": "gAAAA-opaque"}
# What only the Responses API can say: a chat route would refuse the built-in tool and drop the reasoning item.
NATIVE_BODY = {
    "input": [
        {"role": "user", "content": "Find the weather"},
        REASONING,
        {"type": "web_search_call", "id": "ws_1", "status": "completed", "action": {"type": "search", "query": "x"}},
        {"role": "user", "content": "and now?"},
    ],
    "instructions": "Be brief.",
    "tools": [{"type": "web_search"}, {"type": "function", "name": "weather", "parameters": {"type": "object"}}],
    "include": ["reasoning.encrypted_content"],
    "reasoning": {"effort": "high", "summary": "auto"},
    "store": False,
    "prompt_cache_key": "thread-1",
    "client_metadata": {"x": "y"},
    "some_provider_extension": {"kept": True},
}
OUTPUT = [
    {"id": "rs_2", "type": "reasoning", "summary": [], "encrypted_content": "gAAAA-next"},
    {
        "id": "msg_up",
        "type": "message",
        "status": "completed",
        "role": "assistant",
        "content": [{"type": "output_text", "text": "Sunny.", "annotations": []}],
    },
]
USAGE = {
    "input_tokens": 1000,
    "input_tokens_details": {"cached_tokens": 400},
    "output_tokens": 50,
    "output_tokens_details": {"reasoning_tokens": 20},
    "total_tokens": 1050,
}


@pytest.fixture
def shop(provider: FakeProvider) -> Shop:
    return make_shop(provider, Route.Api.OPENAI_RESPONSES)


def response(output: list, status: str = "completed", usage: dict | None = USAGE, **extra: Any) -> dict[str, Any]:
    """A provider's `response` object."""
    return {
        "id": "resp_upstream_1",
        "object": "response",
        "created_at": 1700000000,
        "status": status,
        "model": NATIVE_MODEL,
        "output": output,
        "usage": usage,
        "store": False,
        **extra,
    }


def post(shop: Shop, body: dict, **headers: str) -> Any:
    return Client().post(
        "/v1/responses",
        json.dumps({"model": shop.model.public_id, **body}),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {shop.key}",
        **headers,
    )


def frames(*items: tuple[str, dict]) -> bytes:
    return b"".join(
        b"event: " + name.encode() + b"\ndata: " + json.dumps({"type": name, **data, "sequence_number": i}).encode()
        + b"\n\n"
        for i, (name, data) in enumerate(items)
    )  # fmt: skip


def usage_with_cost(charged: Decimal) -> dict[str, Any]:
    """USAGE as the client gets it: our charged counts, the provider's details, the exact cost."""
    return {
        "input_tokens": 1000,
        "input_tokens_details": {"cached_tokens": 400, "cache_write_tokens": 0},
        "output_tokens": 50,
        "output_tokens_details": {"reasoning_tokens": 20},
        "total_tokens": 1050,
        "cost": charged,
        "cost_details": {
            "prompt": Decimal(600) * Decimal("1.00") / 1_000_000,
            "cached_prompt": Decimal(400) * Decimal("0.10") / 1_000_000,
            "completion": Decimal(50) * Decimal("5.00") / 1_000_000,
            "request": Decimal(0),
        },
    }


# --- The request ------------------------------------------------------------------------------------------


def test_a_responses_body_reaches_a_native_route_untouched_but_for_the_model(shop: Shop, provider: FakeProvider):
    provider.answer(response(OUTPUT))

    answer = post(
        shop,
        {**NATIVE_BODY, "models": [shop.model.public_id], "provider": {"sort": "price"}},
        HTTP_OPENAI_BETA="responses=experimental",
    )

    assert answer.status_code == 200, answer.content
    (received,) = provider.received
    assert received.path == "/v1/responses"
    assert received.body == {**NATIVE_BODY, "model": NATIVE_MODEL}  # reasoning, include, built-in tools kept
    assert received.headers["authorization"] == f"Bearer {PROVIDER_KEY}"  # ours for the provider
    assert received.headers["openai-beta"] == "responses=experimental"


def test_reasoning_items_we_wrote_are_not_sent_to_a_native_route(shop: Shop, provider: FakeProvider):
    # Codex passes back the reasoning items a translated route answered with: the provider never stored them
    # and they carry nothing to decrypt, so they are left out; the provider's own items go through.
    provider.answer(response(OUTPUT))
    ours = {"id": "rs_gen-1764000000-abc", "type": "reasoning", "summary": [{"type": "summary_text", "text": "x"}]}
    theirs = {"id": "rs_123", "type": "reasoning", "summary": [], "encrypted_content": "gAAAA"}
    turn = {"type": "message", "role": "user", "content": "next"}

    answer = post(shop, {**NATIVE_BODY, "input": [ours, theirs, turn]})

    assert answer.status_code == 200, answer.content
    (received,) = provider.received
    assert received.body["input"] == [theirs, turn]


def test_a_built_in_tool_is_refused_by_a_chat_route_and_skips_it_for_a_native_one(provider: FakeProvider):
    chat_only = make_shop(provider, Route.Api.OPENAI_CHAT)

    refused = post(chat_only, {"input": "hi", "tools": [{"type": "web_search"}]})

    assert refused.status_code == 400
    error = refused.json()["error"]
    assert (error["code"], error["param"]) == ("invalid_request", "tools[0]")
    assert "native Responses route" in error["message"]
    assert provider.received == []
    assert_nothing_moved(chat_only)

    both = make_shop(provider, Route.Api.OPENAI_CHAT, Route.Api.OPENAI_RESPONSES)
    provider.answer(response(OUTPUT))

    served = post(both, {"input": "hi", "tools": [{"type": "web_search"}]})

    assert served.status_code == 200, served.content
    assert [r.path for r in provider.received] == ["/v1/responses"]


def test_a_translatable_request_falls_back_across_kinds(provider: FakeProvider):
    shop = make_shop(provider, Route.Api.OPENAI_RESPONSES, Route.Api.OPENAI_CHAT)
    provider.answer({"error": {"message": "overloaded", "type": "server_error"}}, 503)
    provider.answer(completion("from chat", {"prompt_tokens": 5, "completion_tokens": 2}))

    answer = post(shop, {"input": "hi"})

    assert answer.status_code == 200, answer.content
    assert [r.path for r in provider.received] == ["/v1/responses", "/v1/chat/completions"]
    assert answer.json()["output"][0]["content"][0]["text"] == "from chat"
    assert_settled_once(shop, answer["X-Generation-Id"], cost(5, 2))


# --- The plain answer -------------------------------------------------------------------------------------


def test_a_native_answer_is_handed_on_with_our_id_model_and_exact_cost_and_is_stored(
    shop: Shop, provider: FakeProvider
):
    provider.answer(response(OUTPUT, some_provider_field={"kept": 1}))

    answer = post(shop, {"input": "Weather?", "include": ["reasoning.encrypted_content"]})

    assert answer.status_code == 200, answer.content
    body = decimal_json(answer.content)
    generation_id = answer["X-Generation-Id"]
    charged = cost(1000, 50, read=400)
    assert (body["id"], body["model"], body["status"]) == (generation_id, shop.model.public_id, "completed")
    assert (body["output"], body["some_provider_field"]) == (OUTPUT, {"kept": 1})  # as the provider sent them
    assert body["usage"] == usage_with_cost(charged)
    assert_settled_once(shop, generation_id, charged)
    generation = Generation.objects.get(pk=generation_id)
    assert (generation.surface, generation.upstream_id, generation.finish_reason) == (
        "responses",
        "resp_upstream_1",
        "completed",
    )
    # Stored under our id (the client did not say store: false), read back as it was answered.
    read = Client().get(f"/v1/responses/{generation_id}", HTTP_AUTHORIZATION=f"Bearer {shop.key}")
    assert read.status_code == 200
    assert decimal_json(read.content)["output"] == OUTPUT
    items = Client().get(f"/v1/responses/{generation_id}/input_items", HTTP_AUTHORIZATION=f"Bearer {shop.key}")
    assert [item["type"] for item in items.json()["data"]] == ["message"]


def test_previous_response_id_goes_to_a_native_route_as_the_stored_conversation(shop: Shop, provider: FakeProvider):
    provider.answer(response(OUTPUT))
    first = post(shop, {"input": "Weather?"})
    assert first.status_code == 200, first.content
    provider.answer(response(OUTPUT))

    second = post(shop, {"input": "And tomorrow?", "previous_response_id": first["X-Generation-Id"]})

    assert second.status_code == 200, second.content
    sent = provider.received[1].body
    assert "previous_response_id" not in sent  # ours: the provider never saw it
    user = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Weather?"}]}
    message = {key: value for key, value in OUTPUT[1].items() if key != "id"}
    # Our item ids dropped, the reasoning item with its own id and encrypted content.
    assert sent["input"] == [user, OUTPUT[0], message, {"type": "message", "role": "user", "content": "And tomorrow?"}]
    assert second.json()["previous_response_id"] == first["X-Generation-Id"]


def test_store_false_keeps_nothing_and_is_passed_on(shop: Shop, provider: FakeProvider):
    provider.answer(response(OUTPUT))

    answer = post(shop, {"input": "hi", "store": False})

    assert answer.status_code == 200
    assert provider.received[0].body["store"] is False
    assert not StoredResponse.objects.filter(pk=answer["X-Generation-Id"]).exists()


# --- The stream -------------------------------------------------------------------------------------------

SNAPSHOT = response([], status="in_progress", usage=None)
TEXT_ITEM = {"id": "msg_up", "type": "message", "status": "in_progress", "role": "assistant", "content": []}
BODY = [
    ("response.output_item.added", {"output_index": 0, "item": OUTPUT[0]}),
    ("response.output_item.done", {"output_index": 0, "item": OUTPUT[0]}),
    ("response.output_item.added", {"output_index": 1, "item": TEXT_ITEM}),
    ("response.output_text.delta", {"item_id": "msg_up", "output_index": 1, "content_index": 0, "delta": "Sun"}),
    ("response.output_text.delta", {"item_id": "msg_up", "output_index": 1, "content_index": 0, "delta": "ny."}),
    ("response.output_item.done", {"output_index": 1, "item": OUTPUT[1]}),
]
START = [("response.created", {"response": SNAPSHOT}), ("response.in_progress", {"response": SNAPSHOT})]


@pytest.mark.django_db(transaction=True)
def test_a_native_stream_is_relayed_event_by_event_and_the_completed_event_carries_the_exact_cost(
    shop: Shop, provider: FakeProvider
):
    upstream = [*START, *BODY, ("response.completed", {"response": response(OUTPUT)})]
    script_stream(provider, frames(*upstream))

    answer = post(shop, {"input": "Weather?", "stream": True, "include": ["reasoning.encrypted_content"]})

    got = events(streamed(answer))
    generation_id = answer["X-Generation-Id"]
    assert [name for name, _ in got] == [name for name, _ in upstream]
    for _, created in got[:2]:
        assert (created["response"]["id"], created["response"]["model"]) == (generation_id, shop.model.public_id)
    # Every other event is the provider's own, its sequence numbers included.
    assert [data for _, data in got[2:-1]] == [
        {"type": name, **data, "sequence_number": i} for i, (name, data) in enumerate(upstream) if 2 <= i < 8
    ]
    charged = cost(1000, 50, read=400)
    completed = got[-1][1]
    assert completed["sequence_number"] == 8
    assert (completed["response"]["id"], completed["response"]["output"]) == (generation_id, OUTPUT)
    assert completed["response"]["usage"] == usage_with_cost(charged)
    assert_settled_once(shop, generation_id, charged)
    generation = Generation.objects.get(pk=generation_id)
    assert (generation.status, generation.upstream_id, generation.stream) == ("completed", "resp_upstream_1", True)
    assert StoredResponse.objects.get(pk=generation_id).output == OUTPUT


@pytest.mark.django_db(transaction=True)
def test_an_incomplete_native_stream_ends_with_response_incomplete_and_its_cost(shop: Shop, provider: FakeProvider):
    incomplete = response(OUTPUT, status="incomplete", incomplete_details={"reason": "max_output_tokens"})
    script_stream(provider, frames(*START, *BODY, ("response.incomplete", {"response": incomplete})))

    answer = post(shop, {"input": "Weather?", "stream": True})

    got = events(streamed(answer))
    assert got[-1][0] == "response.incomplete"
    charged = cost(1000, 50, read=400)
    assert got[-1][1]["response"]["usage"]["cost"] == charged
    assert Generation.objects.get(pk=answer["X-Generation-Id"]).finish_reason == "max_output_tokens"
    assert_settled_once(shop, answer["X-Generation-Id"], charged)


FAILED = response(
    OUTPUT[:1], status="failed", usage={**USAGE, "output_tokens": 10}, error={"code": "server_error", "message": "x"}
)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("ending", "charged"),
    [
        # An error event: charged for what was generated (our estimate: nothing reported).
        ([("error", {"code": "server_error", "message": "boom", "param": None})], None),
        ([], None),  # the connection closed without a final event
        # The provider's own failure, with the usage it reports.
        ([("response.failed", {"response": FAILED})], cost(1000, 10, read=400)),
    ],
)
def test_a_native_stream_that_fails_ends_with_response_failed_and_is_settled_once(
    shop: Shop, provider: FakeProvider, ending: list, charged: Decimal | None
):
    script_stream(provider, frames(*START, *BODY[:4], *ending))

    answer = post(shop, {"input": "Weather?", "stream": True})

    got = events(streamed(answer))
    assert [name for name, _ in got] == [name for name, _ in START + BODY[:4]] + ["response.failed"]
    failed = got[-1][1]
    assert failed["sequence_number"] == 6
    assert (failed["response"]["id"], failed["response"]["status"]) == (answer["X-Generation-Id"], "failed")
    generation = Generation.objects.get(pk=answer["X-Generation-Id"])
    assert generation.status == Generation.Status.FAILED
    assert generation.cost > 0  # something was generated: it is charged, once
    assert failed["response"]["usage"]["cost"] == generation.cost
    assert_settled_once(shop, generation.id, charged if charged is not None else generation.cost)
    if charged is not None:
        assert failed["response"]["error"] == {"code": "server_error", "message": "x"}  # the provider's own


# --- Surfaces this kind does not serve --------------------------------------------------------------------


def test_the_embeddings_surface_skips_a_responses_route(provider: FakeProvider):
    shop = make_shop(provider, Route.Api.OPENAI_RESPONSES)

    answer = Client().post(
        "/v1/embeddings",
        json.dumps({"model": shop.model.public_id, "input": "hi"}),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {shop.key}",
    )

    assert answer.status_code == 404
    assert answer.json()["error"]["code"] == "no_route"
    assert provider.received == []
    assert_nothing_moved(shop)


@pytest.mark.parametrize("response_id", [1.5, 7, ["gen-1"], {"id": "gen-1"}, True])
def test_a_previous_response_id_that_is_not_a_string_is_a_400_on_every_route(shop: Shop, response_id):
    # A body a native route could still take (an item only the Responses API has) skips the translation's
    # checks: the id is checked on every route all the same, before it reaches the stored responses.
    for body in (
        {"input": "Weather?", "previous_response_id": response_id},
        {"input": [{"type": "item_reference", "id": "x"}], "previous_response_id": response_id},
    ):
        answer = post(shop, body)
        assert answer.status_code == 400, answer.content
        assert answer.json()["error"]["param"] == "previous_response_id"
    assert_nothing_moved(shop)


@pytest.mark.parametrize("response_id", ["gen-\x00x", "gen-" + "x" * 200])
def test_an_id_no_stored_response_could_have_is_a_404_on_every_operation_not_a_500(shop: Shop, response_id: str):
    # PostgreSQL cannot compare a string holding a NUL: such an id must not reach the query.
    continued = post(shop, {"input": "Weather?", "previous_response_id": response_id})
    assert (continued.status_code, continued.json()["error"]["param"]) == (404, "previous_response_id")
    auth = {"HTTP_AUTHORIZATION": f"Bearer {shop.key}"}
    quoted = response_id.replace("\x00", "%00")
    for method, path in (
        ("get", f"/v1/responses/{quoted}"),
        ("delete", f"/v1/responses/{quoted}"),
        ("get", f"/v1/responses/{quoted}/input_items"),
    ):
        answer = getattr(Client(), method)(path, **auth)
        assert answer.status_code == 404, (method, path, answer.content)
