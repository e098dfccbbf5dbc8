"""Every way a request can end is settled exactly once, for the amount the README's charging table says.

Amounts are computed here from the documented arithmetic: the emulator's token counts (3 + Σ (3 + words)
for the prompt, one token per word of the answer) or, where the router estimates, one token per four bytes
of the request and per four characters the upstream generated.
"""

from __future__ import annotations

import json
import socket
import struct
import time
from decimal import Decimal
from urllib.parse import urlsplit

import pytest
import requests
from django.db import IntegrityError
from django.test import RequestFactory
from django.urls import resolve

from billing.models import Hold
from completions import settlement
from completions.models import Generation

from .conftest import (
    Shop,
    assert_settled_once,
    chat,
    cost_of,
    emulated_prompt_tokens,
    estimated_tokens,
    free_port,
    generation_settled,
    make_shop,
)

HELLO = [{"role": "user", "content": "Hello there"}]
PROMPT = emulated_prompt_tokens(HELLO)  # 8


def body_for(shop: Shop, *, stream: bool = False, **emulator) -> dict:
    return {"model": shop.model.public_id, "messages": HELLO, "stream": stream, "emulator": emulator}


def decimal_json(text: str | bytes) -> dict:
    return json.loads(text, parse_float=Decimal)


def read_stream(response: requests.Response) -> list[dict | str]:
    """The data events of an SSE response: parsed JSON, or the text `[DONE]`."""
    return [
        line[6:].decode() if line == b"data: [DONE]" else decimal_json(line[6:])
        for line in response.iter_lines()
        if line.startswith(b"data: ")
    ]


def streamed_text(events: list) -> str:
    return "".join(
        e["choices"][0]["delta"].get("content") or "" for e in events if isinstance(e, dict) and e.get("choices")
    )


# ---- completed ------------------------------------------------------------------------------------------


def test_a_plain_answer_is_sent_before_its_charge_is_written_and_charged_once_after(shop: Shop, caplog):
    # In-process, so that the moment between the answer and the WSGI server's close() can be looked at.
    request = RequestFactory().post(
        "/v1/chat/completions",
        data=json.dumps(body_for(shop, completion_tokens=5)),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {shop.key}",
    )
    response = resolve("/v1/chat/completions").func(request)
    assert response.status_code == 200
    usage = decimal_json(response.content)["usage"]
    assert usage["cost"] == cost_of(PROMPT, 5)
    generation_id = response["X-Generation-Id"]
    assert Generation.objects.get(pk=generation_id).status == Generation.Status.PENDING
    assert Hold.objects.get(reference=generation_id).status == Hold.Status.OPEN

    response.close()
    response.close()  # a second close (some servers call it twice) writes nothing more
    assert_settled_once(Generation.objects.get(pk=generation_id), usage["cost"])


def test_a_charge_that_cannot_be_written_after_sending_is_logged_and_left_to_reconciliation(
    shop: Shop, caplog, monkeypatch
):
    request = RequestFactory().post(
        "/v1/chat/completions",
        data=json.dumps(body_for(shop)),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {shop.key}",
    )
    response = resolve("/v1/chat/completions").func(request)
    generation_id = response["X-Generation-Id"]

    def broken(**kwargs):
        # Not the database being unreachable (that is spooled: tests/completions/test_spool.py), a fault.
        raise IntegrityError("a constraint the charge broke")

    monkeypatch.setattr(settlement, "hold_settle", broken)
    response.close()
    assert f"settling {generation_id} failed" in caplog.text
    assert Hold.objects.get(reference=generation_id).status == Hold.Status.OPEN


def test_a_completed_plain_request_is_charged_its_reported_usage_once(router: str, shop: Shop):
    response = chat(router, shop.key, body_for(shop, completion_tokens=7))
    assert response.status_code == 200
    usage = decimal_json(response.text)["usage"]
    assert (usage["prompt_tokens"], usage["completion_tokens"], usage["cost"]) == (PROMPT, 7, cost_of(PROMPT, 7))
    generation = generation_settled(response.headers["X-Generation-Id"])
    assert (generation.status, generation.usage_source) == ("completed", "upstream")
    assert_settled_once(generation, cost_of(PROMPT, 7))


def test_a_completed_stream_is_charged_its_reported_usage_once(router: str, shop: Shop):
    response = chat(router, shop.key, body_for(shop, stream=True, completion_tokens=6), stream=True)
    events = read_stream(response)
    assert events[-1] == "[DONE]"
    usage = events[-2]["usage"]
    assert (usage["prompt_tokens"], usage["completion_tokens"], usage["cost"]) == (PROMPT, 6, cost_of(PROMPT, 6))
    generation = generation_settled(response.headers["X-Generation-Id"])
    assert (generation.status, generation.usage_source) == ("completed", "upstream")
    assert_settled_once(generation, cost_of(PROMPT, 6))


# ---- usage missing, negative or absurd: the estimate ----------------------------------------------------


@pytest.mark.parametrize("fail", ["no_usage", "negative_usage", "absurd_usage"])
def test_an_answer_without_believable_usage_is_charged_the_estimate(router: str, shop: Shop, fail: str):
    body = body_for(shop, completion_tokens=9, fail=fail)
    response = chat(router, shop.key, body)
    assert response.status_code == 200
    answer = decimal_json(response.text)
    prompt = estimated_tokens(len(json.dumps(body).encode()))
    completion = estimated_tokens(len(answer["choices"][0]["message"]["content"]))
    expected = cost_of(prompt, completion)
    assert (answer["usage"]["prompt_tokens"], answer["usage"]["completion_tokens"]) == (prompt, completion)
    assert answer["usage"]["cost"] == expected
    generation = generation_settled(answer["id"])
    assert (generation.status, generation.usage_source) == ("completed", "estimated")
    assert (generation.prompt_tokens, generation.completion_tokens) == (prompt, completion)
    assert_settled_once(generation, expected)

    body = body_for(shop, stream=True, completion_tokens=9, fail=fail)
    events = read_stream(chat(router, shop.key, body, stream=True))
    text = streamed_text(events)
    assert len(text.split()) == 9
    expected = cost_of(estimated_tokens(len(json.dumps(body).encode())), estimated_tokens(len(text)))
    assert events[-2]["usage"]["cost"] == expected
    assert events[-1] == "[DONE]"
    generation = generation_settled(events[-2]["id"])
    assert (generation.status, generation.usage_source) == ("completed", "estimated")
    assert_settled_once(generation, expected)


# ---- the upstream failed before the first byte: never charged -------------------------------------------


def refused_url() -> str:
    return f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there


@pytest.mark.parametrize(
    ("route", "status", "code"),
    [
        ("/fail/500/v1", 502, "upstream_error"),
        ("/fail/503/v1", 502, "upstream_error"),
        ("/fail/401/v1", 502, "upstream_error"),
        ("/fail/429/v1", 503, "upstream_rate_limited"),
        ("refused", 503, "upstream_unavailable"),
        ("/fail/timeout/v1", 504, "upstream_timeout"),
        ("/fail/400/v1", 400, "upstream_invalid_request"),
    ],
)
def test_a_request_no_route_answered_is_not_charged_and_its_hold_released(
    router, emulator_url, transactional_db, route, status, code
):
    base = refused_url() if route == "refused" else emulator_url.replace("/v1", route)
    shop = make_shop(emulator_url, routes=[base], read_timeout="0.5")
    before = shop.balance()
    for stream in (False, True):
        response = chat(router, shop.key, body_for(shop, stream=stream))
        assert response.status_code == status
        assert response.headers["Content-Type"] == "application/json"
        assert response.json()["error"]["code"] == code
        # Nothing was charged: the SDKs may retry where another try can succeed, not a rejected request.
        assert response.headers["x-should-retry"] == ("true" if status >= 500 else "false")
        generation = Generation.objects.filter(account_id=shop.account_id).order_by("started_at").last()
        assert (generation.stream, generation.status, generation.usage_source) == (stream, "failed", "none")
        assert generation.provider_id is None
        assert_settled_once(generation, None)
    assert shop.balance() == before


@pytest.mark.parametrize("first", ["/fail/500/v1", "/fail/429/v1", "/fail/timeout/v1", "refused"])
def test_a_failed_route_falls_back_and_the_route_that_answered_is_charged_once(
    router, emulator_url, transactional_db, first
):
    base = refused_url() if first == "refused" else emulator_url.replace("/v1", first)
    shop = make_shop(emulator_url, routes=[base, emulator_url], read_timeout="1")
    before = shop.balance()
    response = chat(router, shop.key, body_for(shop, completion_tokens=4))
    assert response.status_code == 200, response.text
    assert decimal_json(response.text)["usage"]["cost"] == cost_of(PROMPT, 4)
    generation = generation_settled(response.json()["id"])
    assert generation.provider.base_url == emulator_url
    assert_settled_once(generation, cost_of(PROMPT, 4))
    assert before - shop.balance() == cost_of(PROMPT, 4)


# ---- the upstream failed mid-stream: charged for what it generated, estimated ----------------------------


@pytest.mark.parametrize("fail", ["drop_mid_stream", "error_mid_stream"])
def test_a_stream_the_upstream_broke_is_charged_for_the_relayed_text_and_ends_with_an_error_event(
    router: str, shop: Shop, fail: str
):
    body = body_for(shop, stream=True, completion_tokens=10, fail=fail)
    response = chat(router, shop.key, body, stream=True)
    events = read_stream(response)
    text = streamed_text(events)
    assert text == "This is the ML Router"  # the first half of the answer, then the failure
    expected = cost_of(estimated_tokens(len(json.dumps(body).encode())), estimated_tokens(len(text)))
    *_, usage_chunk, error_event, done = events
    assert usage_chunk["usage"]["cost"] == expected
    # No include_usage and no chunk that finished: one with an empty delta carries the cost.
    assert usage_chunk["choices"] == [{"index": 0, "delta": {}, "finish_reason": None}]
    assert error_event["error"]["code"] == "upstream_error"
    assert set(error_event["error"]) == {"message", "type", "param", "code"}
    assert done == "[DONE]"
    generation = generation_settled(response.headers["X-Generation-Id"])
    assert (generation.status, generation.usage_source) == ("failed", "estimated")
    assert_settled_once(generation, expected)


def test_a_plain_answer_nested_too_deep_to_read_is_a_502_and_not_charged(router: str, shop: Shop):
    before = shop.balance()
    response = chat(router, shop.key, body_for(shop, fail="deep_json"))
    assert (response.status_code, response.json()["error"]["code"]) == (502, "upstream_error")
    assert response.headers["x-should-retry"] == "true"
    generation = Generation.objects.get(account_id=shop.account_id)
    assert (generation.status, generation.error) == ("failed", "upstream sent an invalid response")
    assert_settled_once(generation, None)
    assert shop.balance() == before


def test_a_stream_event_nested_too_deep_to_read_ends_the_stream_with_an_error_event(router: str, shop: Shop):
    body = body_for(shop, stream=True, completion_tokens=10, fail="deep_json")
    response = chat(router, shop.key, body, stream=True)
    events = read_stream(response)
    text = streamed_text(events)
    assert text == "This is the ML Router upstream"  # what came before the event, and nothing after it
    expected = cost_of(estimated_tokens(len(json.dumps(body).encode())), estimated_tokens(len(text)))
    *_, usage_chunk, error_event, done = events
    assert usage_chunk["usage"]["cost"] == expected
    assert (error_event["error"]["code"], done) == ("upstream_error", "[DONE]")
    generation = generation_settled(response.headers["X-Generation-Id"])
    assert (generation.status, generation.usage_source) == ("failed", "estimated")
    assert_settled_once(generation, expected)


def test_a_stream_that_breaks_before_generating_anything_is_not_charged(router: str, shop: Shop):
    response = chat(
        router, shop.key, body_for(shop, stream=True, completion_tokens=1, fail="drop_mid_stream"), stream=True
    )
    events = read_stream(response)
    assert streamed_text(events) == ""
    assert events[-2]["error"]["code"] == "upstream_error"
    assert events[-1] == "[DONE]"
    generation = generation_settled(response.headers["X-Generation-Id"])
    assert generation.status == "failed"
    assert_settled_once(generation, None)


# ---- the client hung up mid-stream: cancelled, the upstream is drained ----------------------------------


def hang_up_after(router: str, key: str, body: dict, events: int, path: str = "chat/completions") -> str:
    """Read `events` data events of a stream, then drop the connection (RST); return the generation id."""
    url = urlsplit(router)
    raw = json.dumps(body).encode()
    request = (
        f"POST {url.path}/{path} HTTP/1.1\r\nHost: {url.netloc}\r\nAuthorization: Bearer {key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(raw)}\r\n\r\n"
    ).encode()
    sock = socket.create_connection((url.hostname, url.port), timeout=10)
    try:
        sock.sendall(request + raw)
        received = b""
        while received.count(b"data: ") < events:
            chunk = sock.recv(65536)
            assert chunk, received
            received += chunk
    finally:
        # Linger 0: close with a reset, so the router's next write fails at once.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
    head = received.split(b"\r\n\r\n", 1)[0].decode()
    return next(
        line.split(":", 1)[1].strip() for line in head.split("\r\n") if line.lower().startswith("x-generation-id:")
    )


def test_a_client_that_hangs_up_is_charged_the_usage_the_drained_upstream_reports(router: str, shop: Shop):
    # The answer takes ~0.6 s, well within the routers' STREAM_DRAIN_SECONDS (1.5 s).
    generation_id = hang_up_after(
        router, shop.key, body_for(shop, stream=True, completion_tokens=30, chunk_delay_ms=20), 3
    )
    generation = generation_settled(generation_id)
    assert (generation.status, generation.usage_source) == ("cancelled", "upstream")
    assert (generation.prompt_tokens, generation.completion_tokens) == (PROMPT, 30)
    assert_settled_once(generation, cost_of(PROMPT, 30))


def test_a_client_that_hangs_up_on_a_long_answer_is_charged_the_estimate_after_the_drain_time(router: str, shop: Shop):
    # The answer would take ~4 s; the router stops reading 1.5 s (STREAM_DRAIN_SECONDS) after the hang-up.
    body = body_for(shop, stream=True, completion_tokens=400, chunk_delay_ms=10)
    started = time.monotonic()
    generation = generation_settled(hang_up_after(router, shop.key, body, 3))
    assert time.monotonic() - started < 3.5
    assert (generation.status, generation.usage_source) == ("cancelled", "estimated")
    assert generation.prompt_tokens == estimated_tokens(len(json.dumps(body).encode()))
    assert 0 < generation.completion_tokens < estimated_tokens(len(" ".join(["emulator"] * 400)))
    assert_settled_once(generation, cost_of(generation.prompt_tokens, generation.completion_tokens))


def test_a_client_that_hangs_up_while_the_upstream_is_silent_is_settled_after_the_drain_time(
    router, emulator_url, transactional_db
):
    # The upstream goes quiet for 10 s after the first words; the provider's read timeout is 8 s. The drain
    # time (1.5 s), not the read timeout, bounds how long the router waits once the client is gone.
    shop = make_shop(emulator_url, read_timeout="8")
    body = body_for(shop, stream=True, completion_tokens=5, pause_after=1, pause_ms=10_000)
    started = time.monotonic()
    generation = generation_settled(hang_up_after(router, shop.key, body, 2))
    assert time.monotonic() - started < 4
    assert (generation.status, generation.usage_source) == ("cancelled", "estimated")
    prompt = estimated_tokens(len(json.dumps(body).encode()))
    assert (generation.prompt_tokens, generation.completion_tokens) == (prompt, estimated_tokens(len("This")))
    assert_settled_once(generation, cost_of(prompt, 1))


# ---- a silent upstream --------------------------------------------------------------------------------


def test_a_silent_upstream_gets_keepalive_comments_and_the_stream_still_settles_once(router: str, shop: Shop):
    body = body_for(shop, stream=True, completion_tokens=4, pause_after=1, pause_ms=1500)
    response = chat(router, shop.key, body, stream=True)
    lines = [line for line in response.iter_lines() if line]
    keepalives = [i for i, line in enumerate(lines) if line == b": keepalive"]
    # Sent every 0.5 s (STREAM_KEEPALIVE_SECONDS) of the 1.5 s pause, between the first words and the rest.
    assert len(keepalives) >= 2
    assert lines[keepalives[0] - 1].startswith(b"data: {") and lines[keepalives[-1] + 1].startswith(b"data: {")
    usage = decimal_json(lines[-2][6:])["usage"]
    assert usage["cost"] == cost_of(PROMPT, 4)
    assert_settled_once(generation_settled(response.headers["X-Generation-Id"]), cost_of(PROMPT, 4))


# ---- the upstream's own cost figure --------------------------------------------------------------------


@pytest.mark.parametrize(("reported", "recorded"), [(0.0000123, Decimal("0.0000123")), (1e300, None), (-1e15, None)])
def test_the_upstreams_cost_figure_is_recorded_when_storable_and_never_changes_the_charge(
    router: str, shop: Shop, reported: float, recorded: Decimal | None
):
    for stream in (False, True):
        body = body_for(shop, stream=stream, completion_tokens=3, usage_cost=reported)
        response = chat(router, shop.key, body, stream=stream)
        assert response.status_code == 200
        usage_event = read_stream(response)[-2] if stream else decimal_json(response.text)
        assert usage_event["usage"]["cost"] == cost_of(PROMPT, 3)
        generation = generation_settled(response.headers["X-Generation-Id"])
        assert (generation.status, generation.upstream_cost) == ("completed", recorded)
        assert_settled_once(generation, cost_of(PROMPT, 3))
