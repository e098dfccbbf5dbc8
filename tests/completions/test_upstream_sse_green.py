"""Under gevent a stream's socket is read directly once the reader's buffer is empty: the body comes back the
same wherever the provider's bytes are cut, one read holding a whole chunk or not."""

from __future__ import annotations

from itertools import pairwise

import gevent
from gevent import socket
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from completions.upstreams.sse import _dechunked, _Watchdog

LINE = b"HTTP/1.1 200 OK\r\n"


class _Original:
    closed = False

    def _close_conn(self) -> None:
        self.closed = True


def _framed(events: list[bytes]) -> bytes:
    return b"".join(b"%x\r\n%b\r\n" % (len(event), event) for event in events) + b"0\r\n\r\n"


def _relayed(body: bytes, cuts: list[int], apart: float = 0.001) -> tuple[list[bytes], _Watchdog, _Original]:
    """What `_dechunked` yields when the provider writes `body` in pieces cut at `cuts`, each read on its own."""
    ours, theirs = socket.socketpair()
    ours.settimeout(5)
    edges = [0, *sorted(set(cuts)), len(body)]
    pieces = [body[a:b] for a, b in pairwise(edges) if b > a]

    def provider() -> None:
        theirs.sendall(LINE + pieces[0])
        for piece in pieces[1:]:
            gevent.sleep(apart)
            theirs.sendall(piece)

    writer = gevent.spawn(provider)
    with ours, theirs:
        reader = ours.makefile("rb")
        assert reader.readline() == LINE  # as http.client reads the head: the reader buffers what follows
        gevent.sleep(0.005)
        watchdog = _Watchdog(reader.raw, quiet_s=5.0)
        original = _Original()
        try:
            got = list(_dechunked(original, reader, watchdog))
        finally:
            watchdog.close()
        writer.get(timeout=5)
    return got, watchdog, original


_event = st.binary(min_size=1, max_size=40).map(lambda b: b"data: " + b.replace(b"\n", b" ") + b"\n\n")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_event, min_size=1, max_size=6), st.data())
def test_a_stream_cut_anywhere_reads_back_the_same_body(events, data):
    body = _framed(events)
    bounds = [len(_framed(events[:i])) - 5 for i in range(1, len(events))]  # some cuts on chunk boundaries
    cuts = data.draw(st.lists(st.integers(1, len(body) - 1) | st.sampled_from(bounds or [1]), max_size=8))
    got, watchdog, original = _relayed(body, cuts)
    assert b"".join(got) == b"".join(events)
    assert original.closed  # the end was read: the connection can serve the next call
    assert watchdog.direct  # after the reader's buffer, the socket was read directly


def test_a_read_of_exactly_one_chunk_is_yielded_as_that_event():
    events = [b'data: {"n":1}\n\n', b'data: {"n":22}\n\n', b"data: [DONE]\n\n"]
    body = _framed(events)
    cuts = [len(_framed(events[:i])) - 5 for i in (1, 2, 3)]
    got, _, _ = _relayed(body, cuts, apart=0.05)
    assert got == events


def test_a_chunk_with_an_extension_or_a_bad_size_is_read_by_the_full_path():
    got, _, _ = _relayed(b'f;x=1\r\ndata: {"a":1}\n\n\r\n0\r\n\r\n', [])
    assert got == [b'data: {"a":1}\n\n']


def test_a_silence_after_part_of_a_chunk_says_the_reader_holds_part_of_an_event():
    """What the stream pump reads before it takes a stream (completions/pump.py): `clean` is exact at every yield,
    a silence's too, so that the pump never reads the socket under a chunk begun but not finished."""
    first = b'data: {"n":1}\n\n'
    ours, theirs = socket.socketpair()
    with ours, theirs:
        theirs.sendall(LINE + b"%x\r\n%b\r\n" % (len(first), first))
        reader = ours.makefile("rb")
        assert reader.readline() == LINE
        watchdog = _Watchdog(reader.raw, quiet_s=0.2)
        try:
            pieces = _dechunked(_Original(), reader, watchdog)
            assert next(pieces) == first
            assert watchdog.clean
            theirs.sendall(b"1")  # the next chunk's size line, cut: nothing to yield yet
            assert next(pieces) == b""  # then a silence
            assert not watchdog.clean
            theirs.sendall(b"0\r\n" + b"x" * 16 + b"\r\n0\r\n\r\n")
            assert next(pieces) == b"x" * 16
        finally:
            watchdog.close()
