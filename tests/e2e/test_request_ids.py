"""Request ids under gunicorn + gevent: the SDK reads ours, a client's own is echoed, the generation stores
it, `/v1/generation` shows it, and the router's log line of an error names it."""

from __future__ import annotations

import re
import time
import uuid

import openai
import pytest
import requests
from openai import OpenAI

from .conftest import ROUTER_LOGS, Shop, chat, generation_settled

OURS = re.compile(r"req_[0-9a-f]{32}")
HI = [{"role": "user", "content": "hi"}]


def chat_as(router: str, key: str, body: dict, request_id: str) -> requests.Response:
    """POST a chat completion sending our own X-Request-Id."""
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json", "X-Request-Id": request_id}
    return requests.post(f"{router}/chat/completions", json=body, headers=headers, timeout=20)


def test_the_sdk_reads_our_request_id_and_the_generation_stores_it(router: str, shop: Shop):
    client = OpenAI(base_url=router, api_key=shop.key, max_retries=0)
    completion = client.chat.completions.create(model=shop.model.public_id, messages=HI)
    assert OURS.fullmatch(completion._request_id)
    assert generation_settled(completion.id).request_id == completion._request_id

    stream = client.chat.completions.create(model=shop.model.public_id, messages=HI, stream=True)
    chunks = list(stream)
    streamed = stream.response.headers["x-request-id"]
    assert OURS.fullmatch(streamed) and streamed != completion._request_id
    assert generation_settled(chunks[0].id).request_id == streamed

    looked_up = requests.get(
        f"{router}/generation",
        params={"id": completion.id},
        headers={"Authorization": f"Bearer {shop.key}"},
        timeout=10,
    )
    assert looked_up.json()["data"]["request_id"] == completion._request_id
    assert OURS.fullmatch(looked_up.headers["x-request-id"])
    assert looked_up.headers["x-request-id"] != completion._request_id


def test_a_clients_own_id_is_echoed_and_stored_and_an_insane_one_replaced(router: str, shop: Shop):
    body = {"model": shop.model.public_id, "messages": HI}
    mine = f"trace-{uuid.uuid4().hex}:span.1"
    answer = chat_as(router, shop.key, body, mine)
    assert answer.status_code == 200
    assert answer.headers["x-request-id"] == mine
    assert generation_settled(answer.json()["id"]).request_id == mine

    answer = chat_as(router, shop.key, {**body, "stream": True}, "x" * 129)
    assert answer.status_code == 200
    ours = answer.headers["x-request-id"]
    assert OURS.fullmatch(ours)
    generation_id = answer.headers["X-Generation-Id"]
    assert generation_settled(generation_id).request_id == ours


def test_openais_rate_limit_headers_come_beside_ours(router: str, shop: Shop):
    answer = chat(router, shop.key, {"model": shop.model.public_id, "messages": HI})
    headers = answer.headers
    assert headers["x-ratelimit-limit-requests"] == headers["X-RateLimit-Limit"] == "1000"
    assert headers["x-ratelimit-remaining-requests"] == headers["X-RateLimit-Remaining"]
    assert re.fullmatch(r"\d+(\.\d{1,3})?s|\d+ms|1m0s", headers["x-ratelimit-reset-requests"])


def test_the_routers_log_line_of_an_error_names_its_request(router: str, shop: Shop):
    probes = {
        f"probe-400-{uuid.uuid4().hex}": lambda rid: chat_as(router, shop.key, {}, rid),
        f"probe-401-{uuid.uuid4().hex}": lambda rid: chat_as(
            router, "orb_live_wrong", {"model": shop.model.public_id, "messages": HI}, rid
        ),
        f"probe-404-{uuid.uuid4().hex}": lambda rid: requests.get(
            f"{router}/no-such-path", headers={"X-Request-Id": rid}, timeout=10
        ),
        f"probe-model-{uuid.uuid4().hex}": lambda rid: chat_as(
            router, shop.key, {"model": "x/none", "messages": HI}, rid
        ),
    }
    for request_id, send in probes.items():
        answer = send(request_id)
        assert answer.status_code in (400, 401, 404)
        assert answer.headers["x-request-id"] == request_id
    deadline = time.monotonic() + 5
    while True:
        lines = ROUTER_LOGS[router].read_text().splitlines()
        found = {rid: [line for line in lines if f"[{rid}]" in line] for rid in probes}
        if all(found.values()) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    [bad] = found[next(rid for rid in probes if rid.startswith("probe-400"))]
    assert "WARNING django.request" in bad and "Bad Request: /v1/chat/completions" in bad
    [unauthorized] = found[next(rid for rid in probes if rid.startswith("probe-401"))]
    assert "Unauthorized: /v1/chat/completions" in unauthorized
    [not_found] = found[next(rid for rid in probes if rid.startswith("probe-404"))]
    assert "Not Found: /v1/no-such-path" in not_found
    [no_model] = found[next(rid for rid in probes if rid.startswith("probe-model"))]
    assert "Not Found: /v1/chat/completions" in no_model


def test_the_sdk_reports_the_request_id_of_an_error(router: str, shop: Shop):
    refused = OpenAI(base_url=router, api_key="orb_live_wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as caught:
        refused.chat.completions.create(model=shop.model.public_id, messages=HI)
    assert OURS.fullmatch(caught.value.request_id)
    client = OpenAI(base_url=router, api_key=shop.key, max_retries=0)
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="x/none", messages=HI)
    assert OURS.fullmatch(caught.value.request_id)
