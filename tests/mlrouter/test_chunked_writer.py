"""Under gunicorn's gevent worker a streamed response's pieces after the first are sent as one HTTP chunk each."""

from __future__ import annotations

import gevent
import pytest
from django.http import HttpResponse, StreamingHttpResponse
from gevent import socket

from mlrouter.handlers import ChunkedWriter, _writes_chunked


def _environ(sock: object, **extra: str) -> dict:
    return {"gunicorn.socket": sock, "SERVER_PROTOCOL": "HTTP/1.1", "REQUEST_METHOD": "POST", **extra}


def _read_all(sock: socket.socket) -> bytes:
    got = b""
    while data := sock.recv(65536):
        got += data
    return got


def test_it_yields_the_first_piece_to_gunicorn_and_frames_the_rest_itself():
    ours, theirs = socket.socketpair()
    with ours, theirs:
        writer = ChunkedWriter(StreamingHttpResponse(iter([b"", b"data: 1\n\n", b"", b"data: 22\n\n"])), ours)
        yielded = list(writer)
        ours.shutdown(socket.SHUT_WR)
        sent = _read_all(theirs)
    assert yielded == [b"data: 1\n\n"]  # gunicorn sends it with the headers
    # Empty pieces are skipped: an empty chunk would end the body.
    assert sent == b"A\r\ndata: 22\n\n\r\n"


def test_it_waits_for_a_full_socket_buffer_and_sends_every_byte():
    ours, theirs = socket.socketpair()
    with ours, theirs:
        ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        big = [bytes([65 + i % 26]) * 300_000 for i in range(4)]
        reader = gevent.spawn(_read_all, theirs)
        writer = ChunkedWriter(StreamingHttpResponse(iter([b"first", *big])), ours)
        assert list(writer) == [b"first"]
        ours.shutdown(socket.SHUT_WR)
        sent = reader.get(timeout=10)
    assert sent == b"".join(b"%X\r\n%b\r\n" % (len(piece), piece) for piece in big)


def test_a_client_gone_raises_from_the_write_and_the_response_is_closed():
    ours, theirs = socket.socketpair()
    closed = []
    response = StreamingHttpResponse(iter([b"one", b"two", b"three"]))
    response._resource_closers.append(lambda: closed.append(True))
    theirs.close()
    with ours:
        writer = ChunkedWriter(response, ours)
        pieces = iter(writer)
        assert next(pieces) == b"one"
        with pytest.raises(OSError):
            next(pieces)
            next(pieces)
        writer.close()
    assert closed == [True]


@pytest.mark.parametrize(
    "extra",
    [{"SERVER_PROTOCOL": "HTTP/1.0"}, {"REQUEST_METHOD": "HEAD"}],
)
def test_it_leaves_to_gunicorn_what_gunicorn_does_not_chunk(extra):
    ours, theirs = socket.socketpair()
    with ours, theirs:
        assert _writes_chunked(_environ(ours), StreamingHttpResponse(iter([b"x"])))
        assert not _writes_chunked(_environ(ours, **extra), StreamingHttpResponse(iter([b"x"])))


def test_it_is_not_used_outside_gunicorns_gevent_worker_or_for_a_sized_body():
    import socket as plain_socket

    ours, theirs = plain_socket.socketpair()
    with ours, theirs:
        assert not _writes_chunked(_environ(ours), StreamingHttpResponse(iter([b"x"])))
    assert not _writes_chunked({"SERVER_PROTOCOL": "HTTP/1.1"}, StreamingHttpResponse(iter([b"x"])))
    sized = StreamingHttpResponse(iter([b"x"]))
    sized["Content-Length"] = "1"
    gsock, other = socket.socketpair()
    with gsock, other:
        assert not _writes_chunked(_environ(gsock), sized)
        assert not _writes_chunked(_environ(gsock), HttpResponse(status=304))


def test_a_tls_socket_keeps_gunicorns_writes():
    """A TLS socket (gevent's `SSLSocket` is a subclass of its socket) encrypts in its own `send`: the bytes must not
    go to the OS socket under it, so its response is written by gunicorn."""
    from gevent.ssl import SSLSocket

    assert issubclass(SSLSocket, socket.socket)
    tls = object.__new__(SSLSocket)  # what gunicorn's TLS listener hands the worker, without a handshake
    assert not _writes_chunked(_environ(tls), StreamingHttpResponse(iter([b"x"])))
