"""The bytes of an upstream call (completions/upstreams/wire.py): prebuilt request heads, one write per request."""

from __future__ import annotations

import email.parser
import http.client
import io
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import pytest
import urllib3
from hypothesis import given, settings
from hypothesis import strategies as st
from urllib3.util import Retry

from completions.routing import RouteInfo
from completions.upstreams import anthropic_messages, openai_chat, wire
from completions.upstreams.base import Outgoing

PLAIN_ANSWER = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"


@dataclass
class RawProvider:
    """A provider on a raw socket: what each request was, byte for byte, and the answers it gives."""

    url: str
    answers: list[bytes]
    requests: list[bytes] = field(default_factory=list)

    def head(self, index: int = -1) -> tuple[str, list[tuple[str, str]], bytes]:
        """A request's line, its header lines (name, value) as sent, and its body."""
        head, body = self.requests[index].split(b"\r\n\r\n", 1)
        line, *fields = head.decode("latin-1").split("\r\n")
        return line, [tuple(part.strip() for part in f.split(":", 1)) for f in fields], body


def _read_request(conn: socket.socket, buffer: bytes) -> tuple[bytes, bytes] | None:
    while b"\r\n\r\n" not in buffer:
        data = conn.recv(65536)
        if not data:
            return None
        buffer += data
    head, rest = buffer.split(b"\r\n\r\n", 1)
    length = next(int(h.split(b":")[1]) for h in head.split(b"\r\n") if h.lower().startswith(b"content-length:"))
    while len(rest) < length:
        rest += conn.recv(65536)
    return head + b"\r\n\r\n" + rest[:length], rest[length:]


@contextmanager
def raw_provider(*answers: bytes) -> Iterator[RawProvider]:
    """Serve `answers` in turn (the last one again after that), one connection after another."""
    listener = socket.create_server(("127.0.0.1", 0))
    provider = RawProvider(f"http://127.0.0.1:{listener.getsockname()[1]}/v1", list(answers))

    def serve() -> None:
        served = 0
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            buffer = b""
            with conn:
                while (got := _read_request(conn, buffer)) is not None:
                    request, buffer = got
                    provider.requests.append(request)
                    answer = provider.answers[min(served, len(provider.answers) - 1)]
                    served += 1
                    conn.sendall(answer)
                    if not answer or b"Connection: close" in answer:
                        break

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield provider
    finally:
        listener.close()


def route_to(url: str, **fields) -> RouteInfo:
    values = {
        "provider_id": 1,
        "provider_name": "raw",
        "base_url": url,
        "api_key": "sk-provider",
        "extra_headers": {"X-Org": "acme"},
        "connect_timeout_s": 5.0,
        "read_timeout_s": 5.0,
        "upstream_model": "m",
    }
    return RouteInfo(**(values | fields))


def call(route: RouteInfo, outgoing: Outgoing) -> tuple[int, bytes]:
    response = openai_chat._request(route, outgoing)
    body = response.read()
    response.release_conn()
    return response.status, body


def test_a_request_is_written_to_the_socket_once(monkeypatch):
    writes: list[bytes] = []
    send = openai_chat._Connection.send

    def counted(self, data):
        writes.append(bytes(data))
        return send(self, data)

    monkeypatch.setattr(openai_chat._Connection, "send", counted)
    with raw_provider(PLAIN_ANSWER) as provider:
        route = route_to(provider.url)
        assert call(route, Outgoing(openai_chat.UPSTREAM, b'{"model":"m"}')) == (200, b"{}")
        assert call(route, Outgoing(openai_chat.UPSTREAM, b'{"model":"n"}')) == (200, b"{}")
    assert writes == provider.requests
    assert len(writes) == 2


def test_the_prebuilt_head_says_what_urllib3_would_have_said():
    with raw_provider(PLAIN_ANSWER) as provider:
        route = route_to(provider.url)
        call(route, Outgoing(openai_chat.UPSTREAM, b'{"model":"m"}'))
        pool = openai_chat._pool.connection_from_url(provider.url)
        pool.urlopen(
            "POST",
            "/v1/chat/completions",
            body=b'{"model":"m"}',
            headers=openai_chat._target(route, openai_chat.UPSTREAM).headers.merged(),
            retries=False,
        )
        ours, urllib3s = provider.head(0), provider.head(1)
    assert ours[0] == urllib3s[0] == "POST /v1/chat/completions HTTP/1.1"
    assert sorted(ours[1]) == sorted(urllib3s[1])
    assert ours[2] == urllib3s[2] == b'{"model":"m"}'
    assert dict(ours[1])["Authorization"] == "Bearer sk-provider"
    assert dict(ours[1])["Content-Length"] == "13"


def test_a_calls_own_header_replaces_the_routes_and_is_sent_once():
    with raw_provider(PLAIN_ANSWER) as provider:
        route = route_to(provider.url, api="anthropic-messages")
        own = {"anthropic-version": "2099-01-01", "anthropic-beta": "tools"}
        call(route, Outgoing(anthropic_messages.UPSTREAM, b"{}", own))
        call(route, Outgoing(anthropic_messages.UPSTREAM, b"{}"))
        _, with_own, _ = provider.head(0)
        _, without, _ = provider.head(1)
    names = [name.lower() for name, _ in with_own]
    assert names.count("anthropic-version") == 1
    assert dict(with_own)["anthropic-version"] == "2099-01-01"
    assert dict(with_own)["anthropic-beta"] == "tools"
    assert dict(with_own)["x-api-key"] == "sk-provider"
    assert dict(without)["anthropic-version"] == anthropic_messages.VERSION
    assert "anthropic-beta" not in dict(without)


def test_a_call_that_sets_its_own_framing_is_written_by_urllib3():
    with raw_provider(PLAIN_ANSWER) as provider:
        route = route_to(provider.url)
        call(route, Outgoing(openai_chat.UPSTREAM, b'{"a":1}', {"Content-Length": "7"}))
        _, fields, body = provider.head(0)
    assert [name for name, _ in fields].count("Content-Length") == 1
    assert body == b'{"a":1}'


def test_a_header_value_that_would_split_the_request_is_refused():
    with raw_provider(PLAIN_ANSWER) as provider:
        route = route_to(provider.url)
        with pytest.raises(ValueError):
            call(route, Outgoing(openai_chat.UPSTREAM, b"{}", {"anthropic-beta": "x\r\nInjected: 1"}))


def test_a_call_builds_no_retry_policy_of_its_own(monkeypatch):
    built = []
    init = Retry.__init__

    def counted(self, *args, **kwargs):
        built.append(args)
        init(self, *args, **kwargs)

    with raw_provider(PLAIN_ANSWER) as provider:
        route = route_to(provider.url)
        call(route, Outgoing(openai_chat.UPSTREAM, b"{}"))  # the route's pool and target are built
        monkeypatch.setattr(Retry, "__init__", counted)
        assert call(route, Outgoing(openai_chat.UPSTREAM, b"{}")) == (200, b"{}")
    assert built == []


def test_a_provider_that_drops_the_connection_is_not_asked_again():
    with raw_provider(b"") as provider:  # reads the request, answers nothing, closes
        route = route_to(provider.url)
        with pytest.raises(urllib3.exceptions.ProtocolError):
            call(route, Outgoing(openai_chat.UPSTREAM, b"{}"))
    assert len(provider.requests) == 1


def _read(parse, block: bytes) -> dict:
    """Everything the parsed message holds (its defects by kind and text: they compare by identity)."""
    message = vars(parse(io.BytesIO(block))).copy()
    message["defects"] = [(type(defect), str(defect)) for defect in message["defects"]]
    return message


FIELD_NAME = st.text(st.sampled_from("!#$%&'*+-.^_`|~09AZaz:; "), min_size=0, max_size=8)
FIELD_VALUE = st.text(st.sampled_from(" \t\r\n\x00\x7fabc:;,=/é\u00ff"), max_size=10)
LINE_END = st.sampled_from(["\r\n", "\n"])


@settings(max_examples=500, deadline=None)
@given(st.lists(st.tuples(FIELD_NAME, FIELD_VALUE, LINE_END), max_size=6), st.sampled_from(["\r\n", "\n", ""]))
def test_header_blocks_read_as_the_standard_parser_reads_them(fields, end):
    block = ("".join(f"{name}:{value}{line_end}" for name, value, line_end in fields) + end).encode("latin-1")
    assert _read(wire.parse_headers, block) == _read(http.client.parse_headers, block)


@pytest.mark.parametrize(
    "block",
    [
        b"X-Folded: one\r\n two\r\n\r\n",
        b"X-Latin: caf\xe9\r\n\r\n",
        b"X-Cr: a\rb\r\n\r\n",
        b": nameless\r\n\r\n",
        b"From someone\r\nX: y\r\n\r\n",
        b"X: a\r\nX: b\r\nx: c\r\n\r\n",
        b"Content-Length: 3\r\nContent-Length:  4 \r\n\r\n",
        b"X: a\r\n",
    ],
)
def test_odd_header_blocks_read_as_the_standard_parser_reads_them(block):
    assert _read(wire.parse_headers, block) == _read(http.client.parse_headers, block)


def test_plain_headers_skip_the_email_parser(monkeypatch):
    monkeypatch.setattr(email.parser, "Parser", None)
    message = wire.parse_headers(io.BytesIO(b"Content-Type: text/event-stream\r\nX-Request-Id: 7\r\n\r\n"))
    assert message.items() == [("Content-Type", "text/event-stream"), ("X-Request-Id", "7")]


CHUNKED_ANSWER = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
    b'X-Dup: a\r\nX-Dup: b\r\n\r\n3\r\n{"a\r\n4\r\n":1}\r\n0\r\n\r\n'
)
ODD_ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Folded: one\r\n two\r\nX-Latin: caf\xe9\r\n\r\n{}"
CLOSING_ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}"


def test_answers_are_framed_and_kept_alive_as_before():
    with raw_provider(CHUNKED_ANSWER, ODD_ANSWER, PLAIN_ANSWER, CLOSING_ANSWER, PLAIN_ANSWER) as provider:
        route = route_to(provider.url)
        outgoing = Outgoing(openai_chat.UPSTREAM, b"{}")
        response = openai_chat._request(route, outgoing)
        assert isinstance(response._original_response, wire.Response)
        assert response.chunked
        assert response.headers.getlist("X-Dup") == ["a", "b"]
        assert response.read() == b'{"a":1}'
        response.release_conn()
        response = openai_chat._request(route, outgoing)
        assert response.headers["X-Folded"] == "one\r\n two"
        assert response.headers["X-Latin"] == "café"
        assert response.read() == b"{}"
        response.release_conn()
        assert call(route, outgoing) == (200, b"{}")
        response = openai_chat._request(route, outgoing)
        assert response._original_response.will_close
        assert response.read() == b"{}"
        response.release_conn()
        assert call(route, outgoing) == (200, b"{}")  # on a new connection
        assert len(provider.requests) == 5
