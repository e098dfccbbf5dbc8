"""A request body that stalls is answered 408 under gunicorn + gevent, instead of holding its connection.

The client speaks raw HTTP over a socket: it promises more body than it sends (or never ends a chunked
one) and waits. The router is started with a short `REQUEST_BODY_TIMEOUT_SECONDS`.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from .conftest import start_router, stop

# The router needs the test database set up; the tests themselves write nothing.
pytestmark = pytest.mark.django_db

BODY = b'{"model": "any/model", "messages": [{"role": "user", "content": "hi"}]}'


@pytest.fixture(scope="module")
def impatient_router(django_db_setup, django_db_blocker, tmp_path_factory) -> Iterator[str]:
    with django_db_blocker.unblock():
        url, process = start_router(tmp_path_factory.mktemp("impatient"), REQUEST_BODY_TIMEOUT_SECONDS="0.5")
    try:
        yield url
    finally:
        stop(process)


def exchange(router: str, head: str, body: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send `head` and `body` on a fresh connection, then read one response: (status, headers, body)."""
    address = urlsplit(router)
    with socket.create_connection((address.hostname, address.port), timeout=30) as sock:
        sock.sendall(head.replace("\n", "\r\n").encode() + b"\r\n" + body)
        received = b""
        while b"\r\n\r\n" not in received:
            received += sock.recv(65536) or pytest.fail(f"connection closed after {received!r}")
        top, rest = received.split(b"\r\n\r\n", 1)
        status_line, *lines = top.decode().split("\r\n")
        headers = {name.lower(): value.strip() for name, value in (line.split(":", 1) for line in lines)}
        if headers.get("transfer-encoding") != "chunked":
            while len(rest) < int(headers["content-length"]):
                rest += sock.recv(65536) or pytest.fail("connection closed mid-body")
            return int(status_line.split()[1]), headers, rest
        while not rest.endswith(b"0\r\n\r\n"):
            rest += sock.recv(65536) or pytest.fail("connection closed mid-body")
    body = b""
    while (size := int(rest.split(b"\r\n", 1)[0], 16)) > 0:
        rest = rest.split(b"\r\n", 1)[1]
        body, rest = body + rest[:size], rest[size + 2 :]
    return int(status_line.split()[1]), headers, body


HEAD = "POST /v1/chat/completions HTTP/1.1\nHost: 127.0.0.1\nAuthorization: Bearer orb_live_unknown\n"


@pytest.mark.parametrize(
    ("framing", "sent"),
    [
        (f"Content-Type: application/json\nContent-Length: {len(BODY) + 100}\n", BODY),
        ("Content-Type: application/json\nTransfer-Encoding: chunked\n", b"%x\r\n" % len(BODY) + BODY + b"\r\n"),
    ],
    ids=["shorter-than-content-length", "chunked-without-its-last-chunk"],
)
def test_a_body_that_stalls_gets_a_408_in_openais_shape(impatient_router: str, framing: str, sent: bytes):
    status, headers, body = exchange(impatient_router, HEAD + framing, sent)

    assert status == 408
    assert headers["x-should-retry"] == "true"  # nothing was charged: sending it again is safe
    error = json.loads(body)["error"]
    assert (error["type"], error["code"]) == ("invalid_request_error", "request_timeout")
    assert "0.5 s" in error["message"]


def test_a_whole_body_without_a_content_type_is_read(impatient_router: str):
    # Read and parsed, then refused for its unknown key: no 415, no 408.
    status, _, body = exchange(impatient_router, HEAD + f"Content-Length: {len(BODY)}\n", BODY)

    assert (status, json.loads(body)["error"]["code"]) == (401, "invalid_api_key")


def test_a_body_of_another_media_type_is_a_415(impatient_router: str):
    framing = f"Content-Type: text/plain\nContent-Length: {len(BODY)}\n"
    status, _, body = exchange(impatient_router, HEAD + framing, BODY)

    assert (status, json.loads(body)["error"]["code"]) == (415, "unsupported_media_type")
