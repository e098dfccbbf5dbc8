"""Every way a Responses request can end is settled exactly once, for the amount the README's charging table
says, and its last event (or body) carries that amount as `usage.cost`; storing the answer never touches it."""

from __future__ import annotations

import json

import pytest
import requests
from django.test import RequestFactory
from django.urls import resolve

from billing.models import Hold
from completions import stored_responses
from completions.models import Generation, StoredResponse

from .conftest import (
    Shop,
    assert_settled_once,
    cost_of,
    emulated_prompt_tokens,
    estimated_tokens,
    generation_settled,
    make_shop,
)
from .test_endings import decimal_json, hang_up_after

PROMPT = emulated_prompt_tokens([{"role": "user", "content": "Hello there"}])  # 8


def body_for(shop: Shop, *, stream: bool = False, **extra) -> dict:
    emulator = extra.pop("emulator", {})
    return {"model": shop.model.public_id, "input": "Hello there", "stream": stream, "emulator": emulator, **extra}


def post(router: str, key: str, body: dict, **kwargs) -> requests.Response:
    return requests.post(
        f"{router}/responses",
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        timeout=20,
        **kwargs,
    )


def events_of(response: requests.Response) -> list[dict]:
    """The typed events of a Responses stream, parsed (amounts as Decimals)."""
    events, kind = [], None
    for line in response.iter_lines():
        if line.startswith(b"event: "):
            kind = line[7:].decode()
        elif line.startswith(b"data: "):
            event = decimal_json(line[6:])
            assert event["type"] == kind
            events.append(event)
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    return events


def text_of(events: list[dict]) -> str:
    return "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")


def test_a_completed_stream_is_charged_its_reported_usage_once(router: str, shop: Shop):
    response = post(router, shop.key, body_for(shop, stream=True, emulator={"completion_tokens": 6}), stream=True)
    final = events_of(response)[-1]
    assert (final["type"], final["response"]["status"]) == ("response.completed", "completed")
    assert final["response"]["usage"]["cost"] == cost_of(PROMPT, 6)
    generation = generation_settled(response.headers["X-Generation-Id"])
    assert (generation.surface, generation.status, generation.usage_source) == ("responses", "completed", "upstream")
    assert_settled_once(generation, cost_of(PROMPT, 6))


@pytest.mark.parametrize("stream", [False, True])
def test_an_answer_cut_at_max_output_tokens_is_incomplete_and_charged_once(router: str, shop: Shop, stream: bool):
    response = post(router, shop.key, body_for(shop, stream=stream, max_output_tokens=3), stream=stream)
    if stream:
        final = events_of(response)[-1]
        assert final["type"] == "response.incomplete"
        answer = final["response"]
    else:
        answer = decimal_json(response.text)
    assert (answer["status"], answer["incomplete_details"]) == ("incomplete", {"reason": "max_output_tokens"})
    assert answer["output"][0]["status"] == "incomplete"
    assert answer["usage"]["cost"] == cost_of(PROMPT, 3)
    generation = generation_settled(answer["id"])
    assert (generation.status, generation.finish_reason) == ("completed", "length")
    assert_settled_once(generation, cost_of(PROMPT, 3))


@pytest.mark.parametrize("stream", [False, True])
def test_a_request_no_route_answered_is_not_charged_and_answers_openais_error(
    router, emulator_url, transactional_db, stream
):
    shop = make_shop(emulator_url, routes=[emulator_url.replace("/v1", "/fail/500/v1")])
    before = shop.balance()
    response = post(router, shop.key, body_for(shop, stream=stream))
    assert response.status_code == 502
    assert response.json()["error"]["code"] == "upstream_error"
    generation = Generation.objects.get(account_id=shop.account_id)
    assert (generation.surface, generation.status) == ("responses", "failed")
    assert_settled_once(generation, None)
    assert shop.balance() == before


@pytest.mark.parametrize("fail", ["drop_mid_stream", "error_mid_stream"])
def test_a_stream_the_upstream_broke_ends_with_response_failed_carrying_the_charged_estimate(
    router: str, shop: Shop, fail: str
):
    body = body_for(shop, stream=True, emulator={"completion_tokens": 10, "fail": fail})
    response = post(router, shop.key, body, stream=True)
    events = events_of(response)
    text = text_of(events)
    assert text == "This is the ML Router"  # the first half of the answer, then the failure
    expected = cost_of(estimated_tokens(len(json.dumps(body).encode())), estimated_tokens(len(text)))
    final = events[-1]
    assert (final["type"], final["response"]["status"]) == ("response.failed", "failed")
    assert final["response"]["error"]["code"] == "server_error"
    assert final["response"]["usage"]["cost"] == expected
    generation = generation_settled(response.headers["X-Generation-Id"])
    assert (generation.status, generation.usage_source) == ("failed", "estimated")
    assert_settled_once(generation, expected)
    # Stored as OpenAI stores a failed response: with its status, error and charged usage.
    assert decimal_json(StoredResponse.objects.get(pk=generation.id).body)["usage"]["cost"] == expected


def test_a_client_that_hangs_up_is_charged_the_usage_the_drained_upstream_reports(router: str, shop: Shop):
    body = body_for(shop, stream=True, emulator={"completion_tokens": 30, "chunk_delay_ms": 20})
    generation = generation_settled(hang_up_after(router, shop.key, body, 3, path="responses"))
    assert (generation.surface, generation.status, generation.usage_source) == ("responses", "cancelled", "upstream")
    assert_settled_once(generation, cost_of(PROMPT, 30))


def test_a_response_that_cannot_be_stored_after_its_charge_keeps_the_charge(shop: Shop, caplog, monkeypatch):
    # In-process, so that storing can be made to fail between the charge and the store.
    request = RequestFactory().post(
        "/v1/responses",
        data=json.dumps(body_for(shop, emulator={"completion_tokens": 5})),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {shop.key}",
    )

    def broken(*args, **kwargs):
        raise RuntimeError("the store went away")

    monkeypatch.setattr(stored_responses, "response_store", broken)
    response = resolve("/v1/responses").func(request)
    assert response.status_code == 200
    generation_id = response["X-Generation-Id"]
    assert Hold.objects.get(reference=generation_id).status == Hold.Status.OPEN  # charged after sending
    response.close()

    assert f"after settling {generation_id}, the responses surface failed" in caplog.text
    assert_settled_once(Generation.objects.get(pk=generation_id), cost_of(PROMPT, 5))
    assert not StoredResponse.objects.filter(pk=generation_id).exists()
