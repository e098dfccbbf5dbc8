"""POST /v1/chat/completions in-process: Django's test client, a scripted provider on a local port, real
PostgreSQL and Redis. The end-to-end suite (tests/e2e/) proves the same path under gunicorn and the
emulator; these tests prove the view's contract in milliseconds.

Everything goes through the URL; only the database is read directly, to check the money. A plain answer
settles when the test client closes the response, in the test's own transaction (`db`); a stream is read
and settled by a thread of its own, which sees committed rows only, so stream tests use
`transaction=True` (emptying the database after each is most of this module's run time).
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from django.db import OperationalError
from django.test import Client

from accounts.models import Account
from billing.models import Hold, LedgerEntry
from billing.services import price_set
from completions import relay, settlement, spool
from completions.models import Generation, Model
from core.after_response import wait_for
from tests.factories import ModelFactory, ProviderFactory, RouteFactory, funded_account, key_for

pytestmark = pytest.mark.django_db

URL = "/v1/chat/completions"
FUNDS = Decimal("10.00")
PROVIDER_KEY = "sk-provider-secret-0123456789abcdef"
UPSTREAM_MODEL = "fake-upstream-model"
HI = [{"role": "user", "content": "hi"}]

# --- The scripted provider ------------------------------------------------------------------------------

# A reply is built from the body the provider received: (status, content type, payload).
Reply = Callable[[dict[str, Any]], tuple[int, str, bytes]]


@dataclass(frozen=True)
class Received:
    """One request the provider received."""

    path: str
    headers: dict[str, str]  # names lower-cased
    body: dict[str, Any]


@dataclass
class FakeProvider:
    """An OpenAI-compatible provider on 127.0.0.1: each POST gets the next scripted reply and is recorded."""

    url: str = ""
    replies: deque[Reply] = field(default_factory=deque)
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def reset(self) -> None:
        with self.lock:
            self.replies.clear()
            self.received.clear()

    def answer(self, body: dict[str, Any], status: int = 200) -> None:
        """Answer the next request with a JSON body."""
        self.replies.append(lambda _: (status, "application/json", json.dumps(body).encode()))

    def stream(self, texts: list[str], *, usage: dict[str, int] | None = None) -> None:
        """Answer the next request with an SSE stream of `texts`, as OpenAI does: the usage chunk (and
        `usage: null` on every other chunk) only when the request asked for `stream_options.include_usage`."""
        self.replies.append(lambda body: (200, "text/event-stream", sse_stream(body, texts, usage)))

    def events(self, chunks: list[dict[str, Any]], *, done: bool = True) -> None:
        """Answer the next request with exactly these chunks, then `[DONE]` (or, `done=False`, the end of
        the connection: an upstream that broke off)."""
        payload = b"".join(b"data: " + json.dumps(each).encode() + b"\n\n" for each in chunks)
        payload += b"data: [DONE]\n\n" if done else b""
        self.replies.append(lambda _: (200, "text/event-stream", payload))

    def pieces(self, pieces: list[bytes]) -> None:
        """Answer the next request with this event stream, one HTTP chunk per piece, sent apart."""
        self.replies.append(lambda _: (200, "text/event-stream", pieces))

    def handle(self, received: Received) -> tuple[int, str, bytes]:
        with self.lock:
            self.received.append(received)
            reply = self.replies.popleft() if self.replies else None
        if reply is None:
            # A status the router passes on as the client's error, so an unscripted call shows in the test.
            return 418, "application/json", b'{"error": {"message": "unscripted request to the fake provider"}}'
        return reply(received.body)


def chunk(delta: dict[str, Any], finish_reason: str | None = None, index: int = 0) -> dict[str, Any]:
    return {
        "id": "chatcmpl-upstream-1",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": UPSTREAM_MODEL,
        "choices": [{"index": index, "delta": delta, "finish_reason": finish_reason}],
    }


def sse_stream(body: dict[str, Any], texts: list[str], usage: dict[str, int] | None) -> bytes:
    chunks = [chunk({"role": "assistant", "content": ""})]
    chunks += [chunk({"content": text}) for text in texts]
    chunks.append(chunk({}, finish_reason="stop"))
    asked = bool((body.get("stream_options") or {}).get("include_usage"))
    if asked:
        for each in chunks:
            each["usage"] = None
        if usage is not None:
            chunks.append({**chunk({}), "choices": [], "usage": {**usage, "total_tokens": sum(usage.values())}})
    events = [b"data: " + json.dumps(each).encode() + b"\n\n" for each in chunks]
    return b"".join(events) + b"data: [DONE]\n\n"


def completion(content: str, usage: dict[str, int]) -> dict[str, Any]:
    """A provider's plain chat completion."""
    return {
        "id": "chatcmpl-upstream-1",
        "object": "chat.completion",
        "created": 1700000000,
        "model": UPSTREAM_MODEL,
        "system_fingerprint": "fp_fake",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"},
        ],
        "usage": {**usage, "total_tokens": sum(usage.values())},
    }


def provider_handler(fake: FakeProvider) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the router's pooled connections expect

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            headers = {name.lower(): value for name, value in self.headers.items()}
            status, content_type, payload = fake.handle(Received(self.path, headers, json.loads(raw)))
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            if isinstance(payload, list):  # HTTP chunks, sent apart, as a provider streams
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                for piece in payload:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                    self.wfile.flush()
                    time.sleep(0.02)
                self.wfile.write(b"0\r\n\r\n")
                return
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture(scope="module")
def provider_server() -> Iterator[FakeProvider]:
    fake = FakeProvider()
    server = ThreadingHTTPServer(("127.0.0.1", 0), provider_handler(fake))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def provider(provider_server: FakeProvider) -> Iterator[FakeProvider]:
    provider_server.reset()
    yield provider_server
    provider_server.reset()


# --- A priced model routed to it, and a funded customer ---------------------------------------------------


@dataclass
class Shop:
    """A priced model routed to the fake provider, and a customer with a key."""

    model: Model
    account: Account
    key: str

    def post(self, body: Any, *, key: str | None = None) -> Any:
        """POST `body` (a dict as JSON, or raw bytes) with the customer's key (or `key`: "" sends none)."""
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        key = self.key if key is None else key
        headers = {"HTTP_AUTHORIZATION": f"Bearer {key}"} if key else {}
        return Client().post(URL, raw, content_type="application/json", **headers)

    def charges(self) -> list[tuple[str, str, Decimal]]:
        """The account's ledger entries other than its funding: (kind, idempotency key, amount)."""
        entries = LedgerEntry.objects.filter(account=self.account).exclude(kind=LedgerEntry.Kind.TOPUP)
        return [(e.kind, e.idempotency_key, e.amount) for e in entries.order_by("id")]

    def money(self) -> tuple[Decimal, Decimal]:
        """(balance, held) once the after-response settlement of this account is done."""
        wait_for(self.account.pk)
        account = Account.objects.get(pk=self.account.pk)
        return account.balance, account.held


@pytest.fixture
def shop(provider: FakeProvider) -> Shop:
    """A model priced $0.15 / $0.60 per 1M prompt / completion tokens, routed to the fake provider."""
    model = ModelFactory(max_output_tokens=4096)
    upstream = ProviderFactory(base_url=f"{provider.url}/v1", api_key=PROVIDER_KEY)
    RouteFactory(model=model, provider=upstream, upstream_model=UPSTREAM_MODEL)
    price_set(
        model_id=model.pk, prompt="0.15", completion="0.60", effective_from=model.created_at - timedelta(seconds=5)
    )
    account = funded_account(str(FUNDS))
    return Shop(model=model, account=account, key=key_for(account, rpm_limit=1000))


def decimal_json(raw: bytes) -> Any:
    return json.loads(raw, parse_float=Decimal)


def sse_data(raw: bytes) -> list[bytes]:
    """The `data` payloads of a relayed event stream, in order (keep-alive comments skipped)."""
    assert raw.endswith(b"\n\n")
    events = raw[:-2].split(b"\n\n")
    assert all(e.startswith((b"data: ", b":")) for e in events), raw
    return [e.removeprefix(b"data: ") for e in events if e.startswith(b"data: ")]


def assert_settled_once(shop: Shop, generation_id: str, cost: Decimal) -> None:
    """One charge of exactly `cost`, its hold settled by it, the balance down by exactly that."""
    assert shop.money() == (FUNDS - cost, Decimal(0))
    assert shop.charges() == [("charge", f"charge:{generation_id}", -cost)]
    hold = Hold.objects.get(reference=generation_id)
    assert hold.status == Hold.Status.SETTLED
    assert hold.ledger_entry.amount == -cost
    assert Generation.objects.get(pk=generation_id).cost == cost


def assert_nothing_moved(shop: Shop) -> None:
    assert shop.money() == (FUNDS, Decimal(0))
    assert shop.charges() == []


# --- Answers --------------------------------------------------------------------------------------------

TOOLS = [{"type": "function", "function": {"name": "weather", "parameters": {"type": "object", "properties": {}}}}]
CLIENT_PARAMS = {
    "temperature": 0.2,
    "tools": TOOLS,
    "tool_choice": "auto",
    "response_format": {"type": "json_object"},
    "user": "customer-42",
    "top_k": 40,  # not ours to check: forwarded as sent
}


@pytest.mark.usefixtures("money_path")
def test_a_plain_answer_is_relayed_with_its_exact_cost_and_charged_once(shop: Shop, provider: FakeProvider):
    provider.answer(completion("Hello there", {"prompt_tokens": 13, "completion_tokens": 7}))

    response = shop.post({"model": shop.model.public_id, "messages": HI, **CLIENT_PARAMS})

    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    body = decimal_json(response.content)
    generation_id = response["X-Generation-Id"]
    assert (body["id"], body["model"]) == (generation_id, shop.model.public_id)
    assert body["choices"][0]["message"] == {"role": "assistant", "content": "Hello there"}
    assert body["system_fingerprint"] == "fp_fake"
    # 13 × $0.15 / 1M + 7 × $0.60 / 1M
    cost = Decimal("0.00000615")
    assert body["usage"] == {"prompt_tokens": 13, "completion_tokens": 7, "total_tokens": 20, "cost": cost}
    assert response["x-should-retry"] == "false"
    assert_settled_once(shop, generation_id, cost)
    generation = Generation.objects.get(pk=generation_id)
    assert (generation.status, generation.usage_source) == (Generation.Status.COMPLETED, "upstream")
    assert (generation.prompt_tokens, generation.completion_tokens) == (13, 7)


def test_the_provider_gets_the_clients_body_with_its_own_model_name_and_key(shop: Shop, provider: FakeProvider):
    provider.answer(completion("ok", {"prompt_tokens": 1, "completion_tokens": 1}))

    assert shop.post({"model": shop.model.public_id, "messages": HI, **CLIENT_PARAMS}).status_code == 200

    (sent,) = provider.received
    assert sent.path == "/v1/chat/completions"
    assert sent.body == {"model": UPSTREAM_MODEL, "messages": HI, **CLIENT_PARAMS}
    assert sent.headers["authorization"] == f"Bearer {PROVIDER_KEY}"
    assert sent.headers["content-type"] == "application/json"
    assert shop.key not in json.dumps(sent.headers) + json.dumps(sent.body)


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("money_path")
def test_a_stream_is_relayed_in_order_and_its_finish_chunk_carries_the_exact_cost(shop: Shop, provider: FakeProvider):
    provider.stream(["Hel", "lo", "!"], usage={"prompt_tokens": 9, "completion_tokens": 4})

    response = shop.post({"model": shop.model.public_id, "messages": HI, "stream": True, "temperature": 0.5})
    raw = b"".join(response.streaming_content)

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/event-stream")
    generation_id = response["X-Generation-Id"]
    *chunks, done = sse_data(raw)
    assert raw.endswith(b"data: [DONE]\n\n") and done == b"[DONE]"
    relayed = [decimal_json(c) for c in chunks]
    # The client did not ask for usage: as at OpenAI, every chunk has choices (the docs' loop reads
    # `chunk.choices[0]`), none says `usage: null`, and the cost rides on the last one, with the finish_reason.
    assert [c["choices"][0]["delta"].get("content") for c in relayed] == ["", "Hel", "lo", "!", None]
    assert [c["choices"][0]["finish_reason"] for c in relayed] == [None, None, None, None, "stop"]
    assert {(c["id"], c["model"]) for c in relayed} == {(generation_id, shop.model.public_id)}
    assert not any("usage" in c for c in relayed[:-1])
    cost = Decimal("0.00000375")  # 9 × $0.15 / 1M + 4 × $0.60 / 1M
    assert relayed[-1]["usage"] == {"prompt_tokens": 9, "completion_tokens": 4, "total_tokens": 13, "cost": cost}
    assert_settled_once(shop, generation_id, cost)

    (sent,) = provider.received
    assert sent.body == {
        "model": UPSTREAM_MODEL,
        "messages": HI,
        "stream": True,
        "temperature": 0.5,
        "stream_options": {"include_usage": True},
    }


@pytest.mark.django_db(transaction=True)
def test_a_stream_that_asked_for_usage_ends_with_openais_usage_chunk(shop: Shop, provider: FakeProvider):
    provider.stream(["Hel", "lo"], usage={"prompt_tokens": 9, "completion_tokens": 3})

    response = shop.post(
        {"model": shop.model.public_id, "messages": HI, "stream": True, "stream_options": {"include_usage": True}}
    )
    *chunks, final, done = sse_data(b"".join(response.streaming_content))

    assert done == b"[DONE]"
    relayed = [json.loads(c) for c in chunks]
    assert [c["choices"][0]["delta"].get("content") for c in relayed] == ["", "Hel", "lo", None]
    assert relayed[-1]["choices"][0]["finish_reason"] == "stop"
    # As OpenAI does: `usage: null` on every chunk with choices, then one chunk with no choices and the usage.
    assert all(c["usage"] is None for c in relayed)
    last = decimal_json(final)
    generation_id = response["X-Generation-Id"]
    cost = Decimal("0.00000315")  # 9 × $0.15 / 1M + 3 × $0.60 / 1M
    assert (last["id"], last["model"], last["choices"]) == (generation_id, shop.model.public_id, [])
    assert last["usage"] == {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12, "cost": cost}
    assert_settled_once(shop, generation_id, cost)


@pytest.mark.django_db(transaction=True)
def test_a_stream_without_usage_is_charged_the_documented_estimate(shop: Shop, provider: FakeProvider):
    provider.stream(["abcdefgh", "ij"])  # no usage chunk: 10 characters generated
    raw = json.dumps({"model": shop.model.public_id, "messages": HI, "stream": True}).encode()

    response = shop.post(raw)
    events = sse_data(b"".join(response.streaming_content))

    # One prompt token per four bytes of the request, one completion token per four characters.
    prompt, completion_tokens = -(-len(raw) // 4), 3
    cost = (prompt * Decimal("0.15") + completion_tokens * Decimal("0.60")) / 1_000_000
    assert decimal_json(events[-2])["usage"] == {
        "prompt_tokens": prompt,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt + completion_tokens,
        "cost": cost,
    }
    generation_id = response["X-Generation-Id"]
    assert_settled_once(shop, generation_id, cost)
    assert Generation.objects.get(pk=generation_id).usage_source == "estimated"


def compact_event(each: dict[str, Any]) -> bytes:
    """One event as OpenAI writes it: compact JSON, `usage: null` last on a chunk with choices."""
    return b"data: " + json.dumps(each, separators=(",", ":"), ensure_ascii=False).encode() + b"\n\n"


def compact_stream(texts: list[str], usage: dict[str, int] | None) -> list[bytes]:
    """The events of a compact stream: role, `texts`, finish, then the usage chunk if any, and [DONE]."""
    chunks = [chunk({"role": "assistant", "content": ""}), *(chunk({"content": t}) for t in texts)]
    chunks.append(chunk({}, finish_reason="stop"))
    events = [compact_event({**each, "usage": None}) for each in chunks]
    if usage is not None:
        total = {**usage, "total_tokens": sum(usage.values())}
        events.append(compact_event({**chunk({}), "choices": [], "usage": total}))
    return [*events, b"data: [DONE]\n\n"]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("include_usage", [False, True])
def test_a_compact_stream_is_relayed_as_the_providers_bytes_with_our_id_and_model_whatever_its_reads(
    shop: Shop, provider: FakeProvider, include_usage: bool
):
    texts = ["Hel", "lo", ", wor", "ld", " – ", "Привет"]
    events = compact_stream(texts, usage={"prompt_tokens": 9, "completion_tokens": 8})
    # Read as it comes: two events in one HTTP chunk, one event cut across two, the rest one a chunk.
    third = events[3]
    pieces = [events[0] + events[1], events[2] + third[:20], third[20:], *events[4:]]
    provider.pieces(pieces)

    body = {"model": shop.model.public_id, "messages": HI, "stream": True}
    if include_usage:
        body["stream_options"] = {"include_usage": True}
    response = shop.post(body)
    parts = list(response.streaming_content)
    data = sse_data(b"".join(parts))

    generation_id = response["X-Generation-Id"]
    relayed = [decimal_json(d) for d in data[:-1]]
    assert data[-1] == b"[DONE]"
    assert parts[0].count(b"data: ") == 2  # the two events that arrived together leave in one write
    assert {(c["id"], c["model"]) for c in relayed} == {(generation_id, shop.model.public_id)}
    assert [c["choices"][0]["delta"].get("content") for c in relayed if c["choices"]] == ["", *texts, None]
    # Every middle chunk is the provider's own bytes, its id and model replaced (and its `usage: null` cut
    # when the client did not ask for usage).
    for sent, got in zip(events[1 : 1 + len(texts)], data[1 : 1 + len(texts)], strict=True):
        ours = sent.removeprefix(b"data: ").removesuffix(b"\n\n")
        ours = ours.replace(b'"chatcmpl-upstream-1"', json.dumps(generation_id).encode())
        ours = ours.replace(json.dumps(UPSTREAM_MODEL).encode(), json.dumps(shop.model.public_id).encode())
        assert got == (ours if include_usage else ours.replace(b',"usage":null}', b"}"))
    cost = Decimal("0.00000615")  # 9 × $0.15 / 1M + 8 × $0.60 / 1M
    assert relayed[-1]["usage"] == {"prompt_tokens": 9, "completion_tokens": 8, "total_tokens": 17, "cost": cost}
    assert_settled_once(shop, generation_id, cost)


@pytest.mark.django_db(transaction=True)
def test_a_compact_stream_without_usage_is_estimated_from_the_same_characters_as_a_parsed_one(
    shop: Shop, provider: FakeProvider
):
    texts = ["Привет", ", мир", "! ", "ok"]  # 15 characters, 24 bytes: four tokens, not six
    provider.pieces(compact_stream(texts, usage=None))
    raw = json.dumps({"model": shop.model.public_id, "messages": HI, "stream": True}).encode()

    response = shop.post(raw)
    events = sse_data(b"".join(response.streaming_content))

    prompt, completion_tokens = -(-len(raw) // 4), 4
    cost = (prompt * Decimal("0.15") + completion_tokens * Decimal("0.60")) / 1_000_000
    assert decimal_json(events[-2])["usage"]["completion_tokens"] == completion_tokens
    assert_settled_once(shop, response["X-Generation-Id"], cost)


# --- Where the cost goes when a stream does not end as usual ----------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("include_usage", [False, True])
def test_a_stream_the_upstream_broke_off_says_its_cost_then_the_error(
    shop: Shop, provider: FakeProvider, include_usage: bool
):
    # No finish_reason and no [DONE]: the connection just ends after two words.
    words = [chunk({"role": "assistant", "content": ""}), chunk({"content": "Hel"}), chunk({"content": "lo"})]
    provider.events(words, done=False)
    body = {"model": shop.model.public_id, "messages": HI, "stream": True}
    if include_usage:
        body["stream_options"] = {"include_usage": True}
    raw = json.dumps(body).encode()

    response = shop.post(raw)
    events = sse_data(b"".join(response.streaming_content))
    assert events[-1] == b"[DONE]"
    *chunks, usage_event, error_event = [decimal_json(e) for e in events[:-1]]

    assert [c["choices"][0]["delta"]["content"] for c in chunks] == ["", "Hel", "lo"]
    assert error_event["error"]["code"] == "upstream_error"
    # Charged the documented estimate: the prompt's bytes / 4 and the 5 characters generated / 4.
    prompt = -(-len(raw) // 4)
    cost = (prompt * Decimal("0.15") + 2 * Decimal("0.60")) / 1_000_000
    assert usage_event["usage"] == {
        "prompt_tokens": prompt,
        "completion_tokens": 2,
        "total_tokens": prompt + 2,
        "cost": cost,
    }
    if include_usage:
        assert usage_event["choices"] == []
    else:
        # Nothing finished to carry the cost: one chunk with an empty delta does, so that every chunk has choices.
        assert usage_event["choices"] == [{"index": 0, "delta": {}, "finish_reason": None}]
    assert (usage_event["id"], usage_event["model"]) == (response["X-Generation-Id"], shop.model.public_id)
    assert_settled_once(shop, response["X-Generation-Id"], cost)
    assert Generation.objects.get(pk=response["X-Generation-Id"]).status == Generation.Status.FAILED


@pytest.mark.django_db(transaction=True)
def test_with_several_choices_every_chunk_arrives_in_order_and_the_cost_rides_on_the_last(
    shop: Shop, provider: FakeProvider
):
    script = [
        chunk({"role": "assistant", "content": "a"}, index=0),
        chunk({"role": "assistant", "content": "b"}, index=1),
        chunk({}, "stop", index=0),
        chunk({"content": "c"}, index=1),
        chunk({}, "length", index=1),
        {**chunk({}), "choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}},
    ]
    provider.events(script)

    response = shop.post({"model": shop.model.public_id, "messages": HI, "stream": True, "n": 2})
    *chunks, done = sse_data(b"".join(response.streaming_content))

    relayed = [decimal_json(c) for c in chunks]
    assert done == b"[DONE]"
    assert [c["choices"] for c in relayed] == [s["choices"] for s in script[:-1]]
    assert not any("usage" in c for c in relayed[:-1])
    cost = (5 * Decimal("0.15") + 3 * Decimal("0.60")) / 1_000_000
    assert relayed[-1]["usage"] == {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8, "cost": cost}
    assert_settled_once(shop, response["X-Generation-Id"], cost)


@pytest.mark.django_db(transaction=True)
def test_a_stream_that_could_not_be_settled_still_gets_its_last_words_then_an_error(
    shop: Shop, provider: FakeProvider, monkeypatch
):
    def broken(closing):
        raise RuntimeError("a fault while settling")  # not the database being unreachable: that is spooled

    monkeypatch.setattr(relay, "commit_or_spool", broken)
    provider.stream(["Hi"], usage={"prompt_tokens": 2, "completion_tokens": 1})

    response = shop.post({"model": shop.model.public_id, "messages": HI, "stream": True})
    *chunks, error, done = sse_data(b"".join(response.streaming_content))

    relayed = [json.loads(c) for c in chunks]
    assert [c["choices"][0]["delta"].get("content") for c in relayed] == ["", "Hi", None]
    assert relayed[-1]["choices"][0]["finish_reason"] == "stop"
    assert not any("usage" in c for c in relayed)  # nothing was charged yet: no cost to tell
    assert json.loads(error)["error"]["code"] == "upstream_error"
    assert done == b"[DONE]"
    assert Hold.objects.get(reference=response["X-Generation-Id"]).status == Hold.Status.OPEN  # reconciliation's


@pytest.mark.django_db(transaction=True)
def test_a_stream_whose_charge_the_database_refused_is_told_its_cost_and_charged_once_it_answers(
    shop: Shop, provider: FakeProvider, monkeypatch
):
    def unreachable(**kwargs):
        raise OperationalError("connection to server failed: Connection refused")

    provider.stream(["Hi"], usage={"prompt_tokens": 2, "completion_tokens": 1})
    with monkeypatch.context() as patch:
        patch.setattr(settlement, "hold_settle", unreachable)
        response = shop.post({"model": shop.model.public_id, "messages": HI, "stream": True})
        *chunks, done = sse_data(b"".join(response.streaming_content))

    cost = (2 * Decimal("0.15") + 1 * Decimal("0.60")) / 1_000_000
    assert json.loads(chunks[-1], parse_float=Decimal)["usage"]["cost"] == cost  # no error event: it is spooled
    assert done == b"[DONE]"
    generation_id = response["X-Generation-Id"]
    assert Hold.objects.get(reference=generation_id).status == Hold.Status.OPEN
    assert spool.spool_pending_count() == 1
    assert spool.spool_replay()
    assert_settled_once(shop, generation_id, cost)


# --- Refusals and failures --------------------------------------------------------------------------------


@pytest.mark.usefixtures("money_path")
def test_a_provider_500_is_a_502_upstream_error_and_releases_the_hold(shop: Shop, provider: FakeProvider):
    provider.answer({"error": {"message": "boom"}}, status=500)

    response = shop.post({"model": shop.model.public_id, "messages": HI})

    assert response.status_code == 502
    error = response.json()["error"]
    assert isinstance(error.pop("message"), str)
    assert error == {"type": "upstream_error", "param": None, "code": "upstream_error"}
    assert len(provider.received) == 1
    assert_nothing_moved(shop)
    generation = Generation.objects.get(model=shop.model)
    assert (generation.status, generation.cost) == (Generation.Status.FAILED, Decimal(0))
    assert Hold.objects.get(reference=generation.pk).status == Hold.Status.RELEASED


@pytest.mark.usefixtures("money_path")
def test_a_provider_400_passes_its_message_on_without_its_key_and_charges_nothing(shop: Shop, provider: FakeProvider):
    provider.answer({"error": {"message": f"bad tools for key {PROVIDER_KEY}"}}, status=400)

    response = shop.post({"model": shop.model.public_id, "messages": HI, "tools": TOOLS})

    assert response.status_code == 400
    assert response.json() == {
        "error": {
            "message": "bad tools for key [redacted]",
            "type": "invalid_request_error",
            "param": None,
            "code": "upstream_invalid_request",
        }
    }
    assert_nothing_moved(shop)
    assert Hold.objects.get(account=shop.account).status == Hold.Status.RELEASED


@pytest.mark.parametrize("key", ["", "orb_live_" + "x" * 40], ids=["missing", "unknown"])
def test_it_rejects_a_missing_or_unknown_key_in_openais_shape(shop: Shop, provider: FakeProvider, key: str):
    response = shop.post({"model": shop.model.public_id, "messages": HI}, key=key)

    assert response.status_code == 401
    error = response.json()["error"]
    assert isinstance(error.pop("message"), str)
    assert error == {"type": "authentication_error", "param": None, "code": "invalid_api_key"}
    assert provider.received == []
    assert not Generation.objects.filter(account=shop.account).exists()


def test_a_body_that_is_not_json_is_a_400_invalid_request(shop: Shop, provider: FakeProvider):
    response = shop.post(b'{"model": "x", "messages": [')

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["message"].startswith("The request body is not valid JSON")
    assert (error["type"], error["param"], error["code"]) == ("invalid_request_error", None, "invalid_request")
    assert provider.received == []
    assert not Generation.objects.filter(account=shop.account).exists()


def test_an_unknown_model_is_a_404_model_not_found(shop: Shop, provider: FakeProvider):
    response = shop.post({"model": "nobody/never-heard-of", "messages": HI})

    assert response.status_code == 404
    error = response.json()["error"]
    assert isinstance(error.pop("message"), str)
    assert error == {"type": "not_found_error", "param": "model", "code": "model_not_found"}
    assert provider.received == []
    assert not Generation.objects.filter(account=shop.account).exists()


@pytest.mark.usefixtures("money_path")
def test_a_balance_below_the_minimum_is_a_402_and_the_provider_is_never_called(
    shop: Shop, provider: FakeProvider, settings
):
    settings.MIN_BALANCE_USD = Decimal("0.10")
    account = funded_account("0.05")
    poor = Shop(model=shop.model, account=account, key=key_for(account, rpm_limit=1000))

    # max_tokens=1: the reservation itself is far below $0.05, only the minimum balance refuses it.
    response = poor.post({"model": shop.model.public_id, "messages": HI, "max_tokens": 1})

    assert response.status_code == 402
    error = response.json()["error"]
    assert error["message"].startswith(
        "Insufficient funds: your available balance is $0.0500, below the $0.1000 minimum."
    )
    assert (error["type"], error["param"], error["code"]) == ("insufficient_funds", None, "insufficient_funds")
    assert provider.received == []
    assert poor.money() == (Decimal("0.05"), Decimal(0))
    assert poor.charges() == []
    assert not Hold.objects.filter(account=account).exists()
    assert not Generation.objects.filter(account=account).exists()
