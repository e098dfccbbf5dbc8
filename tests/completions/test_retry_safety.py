"""Retry safety: the official OpenAI SDK, with its default retries, never pays twice for one request.

The SDKs retry 408, 409, 429 and 5xx answers (twice by default) unless the answer's `x-should-retry` says
otherwise. A fault after the provider answered may leave the request charged (a stream's reader keeps
reading and settles what the provider generated), so its 500 says `false`; a fault before it answered
charges nothing, so its 500 says `true`.

The SDK drives the WSGI application itself (`mlrouter.wsgi.application`, through httpx's WSGITransport),
so the error path is the production one (`mlrouter/handlers.py` ViewHandler), and faults are injected
with monkeypatch: no knob for them exists outside the tests. The provider is test_chat_view's scripted one.
"""

# ruff: noqa: F811 (test_chat_view's fixtures are imported, then named by the tests' parameters)

from __future__ import annotations

import time
from decimal import Decimal

import httpx
import openai
import pytest

from billing.models import Hold
from completions import pipeline, relay
from completions.models import Generation
from mlrouter.wsgi import application
from tests.completions.test_chat_view import (  # noqa: F401 (fixtures)
    HI,
    FakeProvider,
    Shop,
    assert_settled_once,
    completion,
    provider,
    provider_server,
    shop,
)

# Stream settlement may run in a thread of its own (a client gone), which sees committed rows only.
pytestmark = pytest.mark.django_db(transaction=True)


def sdk(shop: Shop) -> openai.OpenAI:
    """The official client as a customer runs it: default retries, pointed at the router's WSGI application."""
    client = openai.OpenAI(
        base_url="http://localhost/v1",
        api_key=shop.key,
        http_client=httpx.Client(transport=httpx.WSGITransport(app=application)),
    )
    assert client.max_retries == 2  # the SDK's default
    return client


def settled(generation_id: str, timeout: float = 10) -> Generation:
    deadline = time.monotonic() + timeout
    while (generation := Generation.objects.get(pk=generation_id)).status == Generation.Status.PENDING:
        assert time.monotonic() < deadline, f"{generation_id} still pending"
        time.sleep(0.02)
    return generation


def fault(*args, **kwargs):
    raise RuntimeError("a fault injected by the test")


def test_a_fault_after_a_stream_began_is_not_retried_and_charged_exactly_once(
    shop: Shop, provider: FakeProvider, monkeypatch
):
    # The reader is relaying (and will settle) when the response is being put together: it fails there.
    monkeypatch.setattr(relay, "response_headers", fault)
    provider.stream(["Hel", "lo"], usage={"prompt_tokens": 9, "completion_tokens": 4})

    with pytest.raises(openai.InternalServerError) as raised:
        sdk(shop).chat.completions.create(model=shop.model.public_id, messages=HI, stream=True)

    headers = raised.value.response.headers
    assert headers["x-should-retry"] == "false"
    assert raised.value.code == "internal_error"
    generation_id = headers["X-Generation-Id"]
    assert f"GET /v1/generation?id={generation_id}" in raised.value.message
    assert len(provider.received) == 1  # not retried
    # The provider's answer was read to its end and charged, once.
    assert settled(generation_id).status == Generation.Status.COMPLETED
    assert_settled_once(shop, generation_id, Decimal("0.00000375"))  # 9 × $0.15 / 1M + 4 × $0.60 / 1M
    assert Generation.objects.filter(account=shop.account).count() == 1


def test_a_fault_after_a_plain_answer_was_priced_is_not_retried_and_charged_at_most_once(
    shop: Shop, provider: FakeProvider, monkeypatch
):
    monkeypatch.setattr(relay, "response_headers", fault)
    provider.answer(completion("Hello", {"prompt_tokens": 13, "completion_tokens": 7}))

    with pytest.raises(openai.InternalServerError) as raised:
        sdk(shop).chat.completions.create(model=shop.model.public_id, messages=HI)

    assert raised.value.response.headers["x-should-retry"] == "false"
    assert len(provider.received) == 1
    (generation,) = Generation.objects.filter(account=shop.account)
    # The answer was never sent, so never charged: the hold waits for reconciliation, which releases it.
    assert shop.charges() == []
    assert Hold.objects.get(reference=generation.pk).status == Hold.Status.OPEN


@pytest.mark.parametrize("where", ["candidates_select", "release_db"], ids=["before-the-hold", "after-the-hold"])
def test_a_fault_before_the_provider_answered_is_retried_and_charges_nothing(
    shop: Shop, provider: FakeProvider, monkeypatch, where: str
):
    calls = []

    def failing(*args, **kwargs):
        calls.append(where)
        raise RuntimeError("a fault injected by the test")

    monkeypatch.setattr(pipeline, where, failing)

    with pytest.raises(openai.InternalServerError) as raised:
        sdk(shop).chat.completions.create(model=shop.model.public_id, messages=HI)

    assert raised.value.response.headers["x-should-retry"] == "true"
    assert "X-Generation-Id" not in raised.value.response.headers
    assert len(calls) == 3  # the first try and the SDK's two retries
    assert provider.received == []
    assert shop.charges() == []
    holds = Hold.objects.filter(account=shop.account)
    assert holds.count() == (3 if where == "release_db" else 0)
    assert all(hold.status == Hold.Status.OPEN and hold.ledger_entry_id is None for hold in holds)


@pytest.mark.parametrize(
    ("upstream", "status", "retry"),
    [(500, 502, "true"), (429, 503, "true"), (400, 400, "false"), (404, 404, "false"), (422, 422, "false")],
)
def test_no_route_answering_invites_a_retry_and_a_rejected_request_does_not(
    shop: Shop, provider: FakeProvider, upstream: int, status: int, retry: str
):
    provider.answer({"error": {"message": "no"}}, status=upstream)

    with pytest.raises(openai.APIStatusError) as raised:
        sdk(shop).with_options(max_retries=0).chat.completions.create(model=shop.model.public_id, messages=HI)

    assert (raised.value.status_code, raised.value.response.headers["x-should-retry"]) == (status, retry)
    assert shop.charges() == []


def test_a_stream_whose_response_is_closed_before_it_was_read_is_read_out_and_charged_once(
    shop: Shop, provider: FakeProvider
):
    # The server closes a response it never iterated when the client is gone before the headers left.
    provider.stream(["Hel", "lo"], usage={"prompt_tokens": 9, "completion_tokens": 4})
    response = shop.post(
        {"model": shop.model.public_id, "messages": HI, "stream": True, "stream_options": {"include_usage": True}}
    )
    generation_id = response["X-Generation-Id"]
    response.close()

    generation = settled(generation_id)
    assert (generation.status, generation.error) == (Generation.Status.CANCELLED, "client disconnected")
    assert_settled_once(shop, generation_id, Decimal("0.00000375"))  # the usage the provider reported
