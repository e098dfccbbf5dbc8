"""Bad input is a 4xx, never a 5xx: numbers too big to hold money for are refused before anything moves."""

# ruff: noqa: F811  (pytest fixtures imported from another module are parameters here)

from __future__ import annotations

import json
from decimal import Decimal

import pytest
import redis
from django.conf import settings
from django.test import Client

from billing.models import Hold
from completions.models import Generation
from completions.surfaces import chat
from completions.surfaces.chat import MAX_TOKENS_LIMIT
from emulator import core as emulator_core
from emulator.core import DEEP_JSON
from tests.completions.test_chat_view import (  # noqa: F401  (fixtures)
    HI,
    URL,
    FakeProvider,
    Shop,
    assert_nothing_moved,
    assert_settled_once,
    chunk,
    completion,
    provider,
    provider_server,
    shop,
    sse_data,
)
from tests.completions.test_embeddings import post as embeddings_post
from tests.completions.test_messages import post as messages_post
from tests.factories import funded_account, key_for
from tests.mlrouter.wsgi import wsgi_call

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("name", ["max_tokens", "max_completion_tokens"])
@pytest.mark.parametrize("value", [MAX_TOKENS_LIMIT + 1, 10**17, 10**30, 2**63])
def test_a_huge_token_limit_on_a_model_without_an_output_cap_is_a_400(
    shop: Shop, provider: FakeProvider, name: str, value: int
):
    shop.model.max_output_tokens = 0  # no cap of its own: the request's number sizes the hold
    shop.model.save()

    response = shop.post({"model": shop.model.public_id, "messages": HI, name: value})

    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["code"], error["param"]) == ("invalid_request", name)
    assert provider.received == []
    assert_nothing_moved(shop)


def test_the_largest_token_limit_is_priced_and_refused_as_unaffordable_not_as_an_error(
    shop: Shop, provider: FakeProvider
):
    shop.model.max_output_tokens = 0
    shop.model.save()

    response = shop.post({"model": shop.model.public_id, "messages": HI, "max_tokens": MAX_TOKENS_LIMIT})

    assert response.status_code == 402  # its worst case, ~$1,288, is a storable amount the $10 balance lacks
    assert response.json()["error"]["code"] == "insufficient_funds"
    assert provider.received == []
    assert_nothing_moved(shop)


HUGE = 10**400  # a JSON integer Python reads exactly; math.isfinite on it raises OverflowError

CHAT_FIELDS = [
    ("temperature", HUGE),
    ("top_p", HUGE),
    ("presence_penalty", -HUGE),
    ("frequency_penalty", HUGE),
    ("seed", HUGE),
    ("logit_bias", {"50256": HUGE}),
    ("max_tokens", HUGE),
    ("max_completion_tokens", HUGE),
    ("n", HUGE),
    ("reasoning", {"max_tokens": HUGE}),
]


@pytest.mark.parametrize(("name", "value"), CHAT_FIELDS)
def test_a_huge_number_in_any_chat_field_is_a_400_naming_it(shop: Shop, provider: FakeProvider, name: str, value):
    response = shop.post({"model": shop.model.public_id, "messages": HI, name: value})

    assert response.status_code == 400
    param = {"logit_bias": "logit_bias.50256", "reasoning": "reasoning.max_tokens"}.get(name, name)
    assert response.json()["error"]["param"] == param
    assert provider.received == []
    assert_nothing_moved(shop)


def test_a_logit_bias_outside_its_range_is_a_400(shop: Shop, provider: FakeProvider):
    response = shop.post({"model": shop.model.public_id, "messages": HI, "logit_bias": {"7": 101}})
    assert (response.status_code, response.json()["error"]["param"]) == (400, "logit_bias.7")


def test_in_range_seed_and_logit_bias_are_forwarded_unchanged(shop: Shop, provider: FakeProvider):
    fields = {"seed": -(2**63), "logit_bias": {"7": -100, "8": 2.5}}
    provider.answer(completion("hello", {"prompt_tokens": 8, "completion_tokens": 2}))
    response = shop.post({"model": shop.model.public_id, "messages": HI, **fields})
    assert response.status_code == 200
    assert {name: provider.received[0].body[name] for name in fields} == fields


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("temperature", HUGE),
        ("top_p", -HUGE),
        ("max_tokens", HUGE),
        ("thinking", {"type": "enabled", "budget_tokens": HUGE}),
    ],
)
def test_a_huge_number_on_messages_is_an_invalid_request_error(shop: Shop, provider: FakeProvider, name: str, value):
    body = {"model": shop.model.public_id, "max_tokens": 16, "messages": HI, name: value}
    response = messages_post(shop, body)

    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert name in response.json()["error"]["message"]
    assert provider.received == []
    assert_nothing_moved(shop)


@pytest.mark.parametrize(
    ("name", "value", "param"),
    [("dimensions", HUGE, "dimensions"), ("input", [HUGE], "input[0]"), ("input", [[1, HUGE]], "input[0]")],
)
def test_a_huge_number_on_embeddings_is_a_400_naming_the_field(
    shop: Shop, provider: FakeProvider, name: str, value, param: str
):
    response = embeddings_post(shop, {"model": shop.model.public_id, "input": "hi", name: value})

    assert response.status_code == 400
    assert response.json()["error"]["param"] == param
    assert provider.received == []
    assert_nothing_moved(shop)


# --- An upstream answer nested deeper than JSON can be read (the emulator's `deep_json`) ---------------


def test_an_upstream_body_nested_too_deep_is_a_502_and_its_hold_is_released(shop: Shop, provider: FakeProvider):
    provider.replies.append(lambda _: (200, "application/json", DEEP_JSON))

    response = shop.post({"model": shop.model.public_id, "messages": HI})

    assert response.status_code == 502
    assert response.json()["error"]["code"] == "upstream_error"
    assert response["x-should-retry"] == "true"
    assert_nothing_moved(shop)
    generation = Generation.objects.get(model=shop.model)
    assert (generation.status, generation.error) == (Generation.Status.FAILED, "upstream sent an invalid response")
    assert Hold.objects.get(reference=generation.pk).status == Hold.Status.RELEASED


def test_an_upstream_body_readable_but_too_deep_to_write_back_is_a_502_too(shop: Shop, provider: FakeProvider):
    # Within json.loads' reach, beyond json.dumps' once wrapped in our answer.
    deep = b"[" * 980 + b"]" * 980
    answer = json.dumps(completion("hi", {"prompt_tokens": 8, "completion_tokens": 1})).encode()
    provider.replies.append(lambda _: (200, "application/json", answer[:-1] + b',"extra":' + deep + b"}"))

    response = shop.post({"model": shop.model.public_id, "messages": HI})

    assert response.status_code == 502
    assert_nothing_moved(shop)
    assert Hold.objects.get(account=shop.account).status == Hold.Status.RELEASED


@pytest.mark.django_db(transaction=True)
def test_a_stream_event_nested_too_deep_ends_in_an_error_event_and_is_charged_what_was_generated(
    shop: Shop, provider: FakeProvider
):
    head = [chunk({"role": "assistant", "content": ""}), chunk({"content": "Hel"}), chunk({"content": "lo"})]
    tail = [chunk({"content": " never relayed"}), chunk({}, finish_reason="stop")]
    events = b"".join(b"data: " + json.dumps(each).encode() + b"\n\n" for each in head)
    events += b"data: " + DEEP_JSON + b"\n\n"
    events += b"".join(b"data: " + json.dumps(each).encode() + b"\n\n" for each in tail) + b"data: [DONE]\n\n"
    provider.replies.append(lambda _: (200, "text/event-stream", events))
    raw = json.dumps({"model": shop.model.public_id, "messages": HI, "stream": True}).encode()

    response = shop.post(raw)
    data = sse_data(b"".join(response.streaming_content))

    assert data[-1] == b"[DONE]"
    *chunks, usage_event, error_event = [json.loads(each) for each in data[:-1]]
    assert [c["choices"][0]["delta"]["content"] for c in chunks] == ["", "Hel", "lo"]
    assert error_event["error"]["code"] == "upstream_error"
    assert "invalid event" in error_event["error"]["message"]
    # Settled as the endings table says of an upstream failing mid-stream: the estimate of what it generated.
    generation = Generation.objects.get(pk=response["X-Generation-Id"])
    assert generation.status == Generation.Status.FAILED
    cost = (-(-len(raw) // 4) * Decimal("0.15") + 2 * Decimal("0.60")) / 1_000_000
    assert_settled_once(shop, generation.pk, cost)
    assert Decimal(str(usage_event["usage"]["cost"])) == cost


def test_the_emulators_deep_json_mode_answers_json_too_deep_to_read_plain_and_mid_stream():
    body = {"messages": HI, "emulator": {"fail": "deep_json"}}
    plain = emulator_core.chat_reply(json.dumps(body).encode(), {})
    assert (plain.status, plain.body) == (200, DEEP_JSON)
    with pytest.raises(RecursionError):
        json.loads(plain.body)

    streamed = emulator_core.chat_reply(json.dumps({**body, "stream": True}).encode(), {})
    events = [e for e in streamed.events if isinstance(e, bytes)]
    assert b"data: " + DEEP_JSON + b"\n\n" in events
    assert events[-1] == emulator_core.DONE  # the stream goes on after it


# --- The body's media type --------------------------------------------------------------------------------


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data"])
@pytest.mark.parametrize("url", ["/v1/chat/completions", "/v1/embeddings"])
def test_a_body_not_sent_as_json_is_a_415_in_openais_shape(shop: Shop, provider: FakeProvider, content_type, url):
    body = json.dumps({"model": shop.model.public_id, "messages": HI, "input": "hi"})

    response = Client().post(url, body, content_type=content_type, HTTP_AUTHORIZATION=f"Bearer {shop.key}")

    assert response.status_code == 415
    error = response.json()["error"]
    assert (error["type"], error["code"], error["param"]) == ("invalid_request_error", "unsupported_media_type", None)
    assert "application/json" in error["message"]
    assert response["x-should-retry"] == "false"
    assert provider.received == []
    assert_nothing_moved(shop)


@pytest.mark.parametrize("url", ["/v1/messages", "/v1/messages/count_tokens"])
def test_messages_answer_a_body_not_sent_as_json_with_anthropics_415(shop: Shop, provider: FakeProvider, url: str):
    body = json.dumps({"model": shop.model.public_id, "max_tokens": 16, "messages": HI})

    response = Client().post(url, body, content_type="text/plain", HTTP_X_API_KEY=shop.key)

    assert response.status_code == 415
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert provider.received == []


@pytest.mark.parametrize("content_type", ["application/json; charset=utf-8", "Application/JSON", ""])
def test_json_with_parameters_or_no_declared_type_at_all_is_read(shop: Shop, provider: FakeProvider, content_type):
    provider.answer(completion("hello", {"prompt_tokens": 8, "completion_tokens": 2}))
    body = json.dumps({"model": shop.model.public_id, "messages": HI})

    response = Client().post(URL, body, content_type=content_type, HTTP_AUTHORIZATION=f"Bearer {shop.key}")

    assert response.status_code == 200


# --- The Host header ----------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)  # the WSGI entry point closes the connection after each request
def test_a_request_that_would_be_a_402_or_a_429_under_an_unknown_host_is_a_400(shop: Shop, provider: FakeProvider):
    account = funded_account("0.0001")  # below the minimum balance, with one request a minute
    key = key_for(account, rpm_limit=1)
    # A new database hands out key ids again: forget an earlier run's window for this one.
    redis.Redis.from_url(settings.REDIS_URL).delete(f"rl:key:{account.api_keys.get().pk}")
    body = json.dumps({"model": shop.model.public_id, "messages": HI}).encode()

    def post(host: str) -> tuple[int, str]:
        # Through the WSGI entry point, as a server calls it (the test client takes the site's handler).
        headers = {"HTTP_HOST": host, "HTTP_AUTHORIZATION": f"Bearer {key}"}
        status, _, raw = wsgi_call(URL, method="POST", headers=headers, body=body)
        return int(status.split()[0]), json.loads(raw)["error"]["code"]

    assert post("evil.example") == (400, "invalid_host")  # before the key's one request is counted
    assert post("localhost") == (402, "insufficient_funds")
    assert post("localhost") == (429, "rate_limit")
    assert post("evil.example") == (400, "invalid_host")
    assert provider.received == []


# --- The reads ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("generation_id", ["gen-\x00", "g" * 5000])
def test_a_generation_id_no_generation_can_have_is_a_404(shop: Shop, generation_id: str):
    response = Client().get("/v1/generation", {"id": generation_id}, HTTP_AUTHORIZATION=f"Bearer {shop.key}")

    assert (response.status_code, response.json()["error"]["code"]) == (404, "not_found")


def test_a_provider_refusal_nested_too_deep_to_read_is_passed_on_as_a_plain_400(shop: Shop, provider: FakeProvider):
    provider.replies.append(lambda _: (400, "application/json", DEEP_JSON))

    response = shop.post({"model": shop.model.public_id, "messages": HI})

    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["code"], error["message"]) == (
        "upstream_invalid_request",
        "The provider rejected the request (HTTP 400).",
    )
    assert_nothing_moved(shop)


def test_tool_arguments_nested_too_deep_to_read_become_an_empty_input_on_messages(shop: Shop, provider: FakeProvider):
    answer = completion("", {"prompt_tokens": 8, "completion_tokens": 2})
    call = {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": DEEP_JSON.decode()}}
    answer["choices"][0]["message"] = {"role": "assistant", "content": None, "tool_calls": [call]}
    answer["choices"][0]["finish_reason"] = "tool_calls"
    provider.answer(answer)
    tools = [{"name": "weather", "input_schema": {"type": "object", "properties": {}}}]

    response = messages_post(shop, {"model": shop.model.public_id, "max_tokens": 16, "messages": HI, "tools": tools})

    assert response.status_code == 200
    (block,) = [b for b in response.json()["content"] if b["type"] == "tool_use"]
    assert (block["name"], block["input"]) == ("weather", {})


def test_request_bodies_are_read_by_the_fast_reader_and_wide_integers_stay_exact(monkeypatch):
    calls = []
    strict = chat._strict_json_load
    monkeypatch.setattr(chat, "_strict_json_load", lambda raw: calls.append(raw) or strict(raw))
    assert chat._json_load(b'{"model": "m", "seed": 7}') == {"model": "m", "seed": 7}
    assert calls == []
    assert chat._json_load(b'{"seed": 123456789012345678901234567890}') == {"seed": 123456789012345678901234567890}
    assert len(calls) == 1
    with pytest.raises(Exception, match="not valid JSON"):
        chat._json_load(b'{"temperature": NaN}')
