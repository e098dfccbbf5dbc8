"""Reading a provider's event stream raw: chunk framing cut anywhere, events that arrive together, the end."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest
import urllib3
from urllib3.exceptions import ProtocolError, ReadTimeoutError

from completions.upstreams.openai_chat import sse_batches
from completions.upstreams.sse import body_pieces, frame_batches, frames

HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"


def chunked(*events: bytes) -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(event), event) for event in events) + b"0\r\n\r\n"


class RawServer:
    """Answers each request on a connection with the next script: byte pieces sent apart, a number of
    seconds of silence, `None` closes."""

    def __init__(self, scripts: list[list[bytes | float | None]]) -> None:
        self.scripts = scripts
        self.connections = 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while self.scripts:
            conn, _ = self.listener.accept()
            self.connections += 1
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with conn:
            while self.scripts:
                request = b""
                while b"\r\n\r\n" not in request:
                    data = conn.recv(65536)
                    if not data:
                        return
                    request += data
                for piece in self.scripts.pop(0):
                    if piece is None:
                        return
                    if isinstance(piece, float):
                        time.sleep(piece)
                        continue
                    conn.sendall(piece)
                    time.sleep(0.02)  # apart, so that the client reads each piece on its own


@pytest.fixture
def pool() -> Iterator[urllib3.PoolManager]:
    manager = urllib3.PoolManager(retries=False)
    yield manager
    manager.clear()


def stream(pool: urllib3.PoolManager, server: RawServer, read_timeout: float = 5.0) -> urllib3.BaseHTTPResponse:
    return pool.request(
        "POST",
        f"http://127.0.0.1:{server.port}/v1/chat/completions",
        body=b"{}",
        preload_content=False,
        timeout=urllib3.Timeout(connect=2, read=read_timeout),
    )


def test_chunk_framing_cut_at_every_place_reads_back_the_same_body(pool):
    body = chunked(b"data: {}\n\n", b'data: {"a":1}\n\n', b"data: [DONE]\n\n")
    scripts = [[HEAD + body[:cut], body[cut:]] for cut in range(1, len(body))]
    server = RawServer(scripts)
    for cut in range(1, len(body)):
        response = stream(pool, server)
        assert b"".join(body_pieces(response)) == b'data: {}\n\ndata: {"a":1}\n\ndata: [DONE]\n\n', cut
        response.release_conn()
    assert server.connections == 1  # every stream read to its end: the connection went back to the pool


def test_events_that_arrive_together_come_as_one_batch_and_one_cut_in_two_comes_whole(pool):
    together = chunked(b'data: {"n":1}\n\n', b'data: {"n":2}\n\ndata: {"n":', b"3}\n\n", b"data: [DONE]\n\n")
    cut = together.index(b"3}")
    server = RawServer([[HEAD + together[:cut], together[cut:]]])
    response = stream(pool, server)
    assert list(sse_batches(response)) == [[b'{"n":1}', b'{"n":2}'], [b'{"n":3}', b"[DONE]"]]


def test_typed_events_that_arrive_together_come_as_one_batch_of_whole_frames(pool):
    start, ping = b'event: message_start\ndata: {"n":1}', b"event: ping\ndata: {}"
    delta, stop = b'event: content_block_delta\ndata: {"n":3}', b"event: message_stop\ndata: {}"
    together = chunked(start + b"\n\n", ping + b"\n\n" + delta[:20], delta[20:] + b"\n\n\n\n", stop + b"\n\n")
    cut = together.index(delta[20:])
    server = RawServer([[HEAD + together[:cut], together[cut:]], [HEAD + together[:cut], together[cut:]]])
    assert list(frame_batches(stream(pool, server))) == [[start, ping], [delta, stop]]
    # One by one, the same frames.
    assert list(frames(stream(pool, server))) == [start, ping, delta, stop]


def test_a_stream_cut_off_mid_chunk_raises_urllib3s_protocol_error(pool):
    server = RawServer([[HEAD + b'20\r\ndata: {"cut":', None]])
    response = stream(pool, server)
    with pytest.raises(ProtocolError):
        list(body_pieces(response))


def test_a_silent_stream_raises_urllib3s_read_timeout(pool):
    server = RawServer([[HEAD + b"a\r\ndata: {}\n\n\r\n", 1.0, None]])
    response = stream(pool, server, read_timeout=0.2)
    pieces = body_pieces(response)
    assert next(pieces) == b"data: {}\n\n"
    with pytest.raises(ReadTimeoutError):
        next(pieces)


def test_a_compressed_stream_is_read_through_urllib3(pool):
    import gzip

    compressed = gzip.compress(b"data: {}\n\n")
    head = HEAD.replace(b"\r\n\r\n", b"\r\nContent-Encoding: gzip\r\n\r\n")
    server = RawServer([[head + chunked(compressed)]])
    response = stream(pool, server)
    assert b"".join(body_pieces(response)) == b"data: {}\n\n"


def test_a_stream_whose_last_event_and_end_arrive_together_is_finished_when_that_event_is_read(pool):
    # The relay stops reading at `[DONE]`: nothing of the response may be left for urllib3's drain to wait for.
    server = RawServer([[HEAD + chunked(b"data: {}\n\n", b"data: [DONE]\n\n")]] * 2)
    response = stream(pool, server)
    for batch in sse_batches(response):
        if b"[DONE]" in batch:
            break
    assert response._original_response.isclosed()
    response.release_conn()
    again = stream(pool, server)
    assert list(sse_batches(again)) == [[b"{}", b"[DONE]"]]
    assert server.connections == 1


def test_events_with_crlf_line_ends_cut_between_a_cr_and_its_lf_stay_apart(pool):
    body = chunked(b'data: {"n":1}\r\n\r\ndata: {"n":2}\r\n\r\n', b"data: [DONE]\r\n\r\n")
    cut = body.index(b"\r\n\r\ndata") + 3  # after `\r\n\r`: the last LF comes with the next read
    server = RawServer([[HEAD + body[:cut], body[cut:]]])
    response = stream(pool, server)
    events = [event for batch in sse_batches(response) for event in batch]
    assert events == [b'{"n":1}', b'{"n":2}', b"[DONE]"]


def test_an_events_data_is_read_by_orjson_and_a_frame_without_an_object_is_none(monkeypatch):
    import orjson

    from completions.upstreams.sse import frame_data

    read = []
    real = orjson.loads
    monkeypatch.setattr(orjson, "loads", lambda data: read.append(data) or real(data))
    frame = b'event: content_block_delta\ndata: {"type":"content_block_delta","delta":{"text":"Hi"}}'
    assert frame_data(frame) == {"type": "content_block_delta", "delta": {"text": "Hi"}}
    assert read == [b'{"type":"content_block_delta","delta":{"text":"Hi"}}']
    assert [frame_data(f) for f in (b"data: [DONE]", b"event: ping", b"data: [1, 2]", b"data: {bad")] == [None] * 4
