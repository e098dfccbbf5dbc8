"""The stream pump (completions/pump.py) relays a chat stream's middle chunks for its green thread: the client gets
the same bytes and the stream counts the same characters as when the green thread relays every chunk itself,
whatever the provider sends, however its bytes are cut, and whatever the client does."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from completions.relay import StreamRelay
from completions.surfaces.chat import SURFACE
from completions.surfaces.messages import SURFACE as MESSAGES
from completions.upstreams.anthropic_messages import PASSTHROUGH
from completions.upstreams.anthropic_messages import UPSTREAM as ANTHROPIC
from completions.upstreams.openai_chat import UPSTREAM

HARNESS = Path(__file__).with_name("pump_streams.py")
TEXTS = ["Hel", "lo", " world", 'say "hi"', "back\\slash", "naïve", "日本語", "", " ", "🎉", "a\nb", "x" * 40]


def _chunk(created: int, delta: dict, finish: str | None = None) -> dict:
    return {
        "id": "chatcmpl-up",
        "object": "chat.completion.chunk",
        "created": created,
        "model": "up-model",
        "system_fingerprint": "fp_1",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }


def _event(obj: dict | str) -> bytes:
    data = obj if isinstance(obj, str) else json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
    return b"data: " + data.encode() + b"\n\n"


def _http(data: bytes) -> bytes:
    return b"%x\r\n%b\r\n" % (len(data), data)


def _events(rng: random.Random, middles: int, text=None) -> list[bytes]:
    created = 1764000000
    events = [_event(_chunk(created, {"role": "assistant", "content": ""}))]
    for _ in range(middles):
        if rng.random() < 0.08:
            created += 1  # a new second: the chunk's bytes change outside its text
        content = text(rng) if text else rng.choice(TEXTS)
        events.append(_event(_chunk(created, {"content": content})))
    events.append(_event(_chunk(created, {}, "stop")))
    usage = {"prompt_tokens": 7, "completion_tokens": middles, "total_tokens": 7 + middles}
    events.append(_event({**_chunk(created, {}), "choices": [], "usage": usage}))
    events.append(_event("[DONE]"))
    return events


def _frame(kind: str, data: dict) -> bytes:
    data_bytes = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()  # compact, as Anthropic's
    return b"event: " + kind.encode() + b"\ndata: " + data_bytes + b"\n\n"


def _anthropic(rng: random.Random, deltas: int, text=None) -> list[bytes]:
    """A Messages stream as Anthropic writes it: start, a text block of `deltas` deltas, a ping, the end."""
    message = {"id": "msg_up", "type": "message", "role": "assistant", "model": "up-claude", "content": []}
    events = [
        _frame("message_start", {"type": "message_start", "message": {**message, "usage": {"input_tokens": 9}}}),
        _frame("content_block_start", {"type": "content_block_start", "index": 0, "content_block": {"type": "text"}}),
    ]
    for i in range(deltas):
        if i == deltas // 2:
            events.append(_frame("ping", {"type": "ping"}))
        content = text(rng) if text else rng.choice(TEXTS)
        delta = {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": content}}
        events.append(_frame("content_block_delta", delta))
    events.append(_frame("content_block_stop", {"type": "content_block_stop", "index": 0}))
    usage = {"output_tokens": deltas}
    events.append(
        _frame("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": usage})
    )
    events.append(_frame("message_stop", {"type": "message_stop"}))
    return events


def _writes(rng: random.Random, events: list[bytes], *, end: bool = True) -> list[list]:
    """The provider's writes: an event per HTTP chunk, sometimes two; chunks sometimes written together, a write
    sometimes cut in two."""
    chunks: list[bytes] = []
    i = 0
    while i < len(events):
        take = 2 if rng.random() < 0.15 and i + 1 < len(events) else 1
        chunks.append(_http(b"".join(events[i : i + take])))
        i += take
    writes: list[bytes] = []
    for chunk in chunks:
        if writes and rng.random() < 0.2:
            writes[-1] += chunk
        else:
            writes.append(chunk)
    if end:
        writes[-1] += b"0\r\n\r\n"
    cut: list[bytes] = []
    for write in writes:
        if len(write) > 2 and rng.random() < 0.1:
            at = rng.randrange(1, len(write))
            cut += [write[:at], write[at:]]
        else:
            cut.append(write)
    return [[rng.uniform(0.002, 0.004), write.decode("latin-1")] for write in cut]


def _run(scenarios: list[dict], **env: str) -> dict:
    done = subprocess.run(
        [sys.executable, str(HARNESS)],
        input=json.dumps(scenarios),
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **env},
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


def _payloads(raw: bytes) -> list[bytes]:
    """The payloads of a body of whole HTTP chunks."""
    payloads, at = [], 0
    while at < len(raw):
        line_end = raw.index(b"\r\n", at)
        size = int(raw[at:line_end], 16)
        payloads.append(raw[line_end + 2 : line_end + 2 + size])
        at = line_end + 2 + size + 2
    return payloads


def _body(client: str) -> str:
    """The client's body without its HTTP chunk framing: events that arrive within a tick of each other may
    share a chunk, or not, as the reads fall (the events, their order and their bytes are what must match)."""
    return b"".join(_payloads(client.encode("latin-1"))).decode("utf-8")


def _seen(result: dict) -> dict:
    """What the client and the bill saw (not how many reads the pump relayed)."""
    return {**{k: v for k, v in result.items() if k != "pumped_reads"}, "client": _body(result["client"])}


def _without_keepalives(client: str) -> str:
    return _body(client).replace(SURFACE.stream_keepalive.decode(), "")


@pytest.fixture(scope="module")
def relayed() -> tuple[list[dict], dict]:
    rng = random.Random(16)
    scenarios = [{"writes": _writes(rng, _events(rng, rng.randrange(20, 60)))} for _ in range(8)]
    # Most chunks of a usual stream are middle chunks of one shape: these the pump relays.
    plain = lambda r: r.choice(["Hel", "lo", " world", "naïve", "日本語", "🎉"])  # noqa: E731
    scenarios.append({"writes": _writes(rng, _events(rng, 200, plain)), "name": "plain"})
    # Messages passed through: its text deltas read from their bytes.
    scenarios += [
        {"writes": _writes(rng, _anthropic(rng, rng.randrange(20, 60))), "kind": "anthropic"} for _ in range(3)
    ]
    scenarios.append({"writes": _writes(rng, _anthropic(rng, 200, plain)), "kind": "anthropic", "name": "plain"})
    # A client that reads slowly through a small buffer, chunks of a few KiB: the pump's send comes back short.
    big = lambda r: "".join(r.choice("abcdefgh ") for _ in range(3000))  # noqa: E731
    scenarios.append({"writes": _writes(rng, _events(rng, 30, big)), "client_slow": True, "name": "slow"})
    # The provider drops the connection mid-stream.
    events = _events(rng, 40)
    scenarios.append({"writes": _writes(rng, events[:25], end=False), "drop": True, "name": "drop"})
    # The client leaves mid-stream: the stream is drained for its usage and settled as cancelled.
    scenarios.append({"writes": _writes(rng, _events(rng, 60)), "client_reads": 3000, "name": "gone"})
    # The provider falls silent mid-stream for longer than the keep-alive interval.
    writes = _writes(rng, _events(rng, 40))
    writes[len(writes) // 2][0] = 0.5
    scenarios.append({"writes": writes, "name": "silent"})
    return scenarios, _run(scenarios, STREAM_KEEPALIVE_SECONDS="0.3")


def test_the_client_gets_the_same_bytes_and_the_bill_the_same_characters(relayed):
    scenarios, out = relayed
    for scenario, alone, pumped in zip(scenarios, out["alone"], out["pumped"], strict=True):
        if scenario.get("name") in ("gone", "silent"):
            continue
        assert _seen(pumped) == _seen(alone), scenario.get("name")
        assert alone["failure"] == ""
    for i in (0, next(i for i, s in enumerate(scenarios) if s.get("kind") == "anthropic")):
        assert out["alone"][i]["settled"] == ["completed", True, ""]
        assert out["alone"][i]["usage"]["completion_tokens"] > 0
        assert out["alone"][i]["chars"] > 0


def test_most_middle_chunks_went_through_the_pump(relayed):
    scenarios, out = relayed
    assert out["alone_relayed_reads"] == 0
    assert out["pumped_relayed_reads"] == sum(result["pumped_reads"] for result in out["pumped"])
    for scenario, result in zip(scenarios, out["pumped"], strict=True):
        if scenario.get("name") == "plain":  # middle events of one shape but a few: most reads went through it
            assert result["pumped_reads"] > len(scenario["writes"]) / 3, scenario.get("kind")
    assert all(r["pumped_reads"] for s, r in zip(scenarios, out["pumped"], strict=True) if s.get("kind"))
    assert out["pumped_left_in_pump"] == 0


def test_a_provider_dropping_mid_stream_ends_it_with_the_same_error(relayed):
    scenarios, out = relayed
    i = next(i for i, s in enumerate(scenarios) if s.get("name") == "drop")
    assert _seen(out["pumped"][i]) == _seen(out["alone"][i])
    assert out["pumped"][i]["settled"][0] == "failed"
    assert "dropped" in out["pumped"][i]["settled"][2]


def test_a_client_gone_mid_stream_is_drained_and_settled_as_cancelled(relayed):
    scenarios, out = relayed
    i = next(i for i, s in enumerate(scenarios) if s.get("name") == "gone")
    alone, pumped = out["alone"][i], out["pumped"][i]
    assert pumped["settled"] == alone["settled"]
    assert pumped["settled"][0] == "cancelled"
    # Drained to the end: every character generated is counted, and the usage read.
    assert (pumped["chars"], pumped["usage"]) == (alone["chars"], alone["usage"])
    assert pumped["usage"] is not None


def test_a_silent_provider_gets_the_client_a_keepalive_and_the_stream_goes_on(relayed):
    scenarios, out = relayed
    i = next(i for i, s in enumerate(scenarios) if s.get("name") == "silent")
    alone, pumped = out["alone"][i], out["pumped"][i]
    keepalive = SURFACE.stream_keepalive.decode("latin-1")
    assert keepalive in pumped["client"]
    assert _without_keepalives(pumped["client"]) == _without_keepalives(alone["client"])
    assert (pumped["chars"], pumped["settled"]) == (alone["chars"], alone["settled"])
    assert pumped["settled"][0] == "completed"


# pumped_read alone: whatever a read holds, it relays exactly what the green thread would, or nothing.


def _new_relay(surface, upstream, passthrough=None) -> StreamRelay:
    started = SimpleNamespace(
        generation_id="gen-00000001",
        surface=surface,
        clock=0.0,
        entry=SimpleNamespace(public_id="test/model"),
        request=SimpleNamespace(wants_usage=True, reasoning_exclude=False),
    )
    response = SimpleNamespace(chunked=False, headers={})
    call = SimpleNamespace(response=response, upstream=upstream, passthrough=passthrough, route=None)
    return StreamRelay(started, call, {})


def _relay() -> StreamRelay:
    relay = _new_relay(SURFACE, UPSTREAM)
    learn = [_event(_chunk(1764000000, {"content": text})) for text in ("", "Hi", " there", "!")]
    relay._take_chunks([event[6:-2] for event in learn])
    assert relay.shape is not None
    return relay


def _green(relay: StreamRelay, data: bytes) -> bytes | None:
    """What the green thread relays for `data`, when it is whole HTTP chunks of one-line `data: ` events."""
    return relay._take_chunks([event[6:] for body in _payloads(data) for event in body[:-2].split(b"\n\n")])


def _mutated(data_bytes: bytes, data: st.DataObject) -> tuple[bytes, bool]:
    """`data_bytes`, or (drawn so) with one byte changed anywhere: a frame, a key, the text."""
    if not data.draw(st.booleans()):
        return data_bytes, False
    at = data.draw(st.integers(0, len(data_bytes) - 1))
    return data_bytes[:at] + bytes([data.draw(st.integers(0, 255))]) + data_bytes[at + 1 :], True


_text = st.text(st.characters(codec="utf-8"), max_size=12)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(_text, min_size=1, max_size=3), min_size=1, max_size=4), st.integers(0, 3), st.data())
def test_pumped_read_relays_what_the_green_thread_would_or_leaves_the_read_alone(groups, created_bump, data):
    data_bytes = b"".join(
        _http(b"".join(_event(_chunk(1764000000 + created_bump, {"content": text})) for text in group))
        for group in groups
    )
    data_bytes, mutate = _mutated(data_bytes, data)
    pumped, green = _relay(), _relay()
    got = pumped.pumped_read(data_bytes)
    if got is None:
        # Nothing counted: the green thread reads it next.
        assert pumped.outcome.completion_chars == green.outcome.completion_chars
        # Whole chunks of the learned shape, with texts JSON writes without an escape, are always relayed.
        assert mutate or created_bump or not all(_plain(text) for group in groups for text in group)
        return
    assert got == _green(green, data_bytes)
    assert pumped.outcome.completion_chars == green.outcome.completion_chars


def _plain(text: str) -> bool:
    written = json.dumps(text, ensure_ascii=False)[1:-1]
    return '"' not in written and "\\" not in written


def _native_relay() -> StreamRelay:
    relay = _new_relay(MESSAGES, ANTHROPIC, PASSTHROUGH)
    learn = _anthropic(random.Random(1), 3, lambda r: "Hi")
    relay._take_native([event[:-2] for event in learn[:5]])
    assert relay.native is not None and relay.native.in_middle()
    return relay


def _delta(text: str) -> bytes:
    return _frame(
        "content_block_delta",
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text}},
    )


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(_text, min_size=1, max_size=3), min_size=1, max_size=4), st.data())
def test_pumped_read_of_a_native_stream_relays_what_the_green_thread_would_or_leaves_the_read_alone(groups, data):
    data_bytes = b"".join(_http(b"".join(_delta(text) for text in group)) for group in groups)
    data_bytes, mutate = _mutated(data_bytes, data)
    pumped, green = _native_relay(), _native_relay()
    got = pumped.pumped_read(data_bytes)
    if got is None:
        assert pumped.outcome.completion_chars == green.outcome.completion_chars
        assert mutate or not all(_plain(text) for group in groups for text in group)
        return
    assert got == green._take_native([frame for body in _payloads(data_bytes) for frame in body[:-2].split(b"\n\n")])
    assert pumped.outcome.completion_chars == green.outcome.completion_chars


# The pump's own guards, on gevent sockets in this process: what happens to a stream it holds.


class _Relay:
    """A relay whose every read is relayed as it came (or raises, or is refused)."""

    def __init__(self, refuse: bytes = b"") -> None:
        self.refuse = refuse
        self.started = SimpleNamespace(generation_id="gen-test")

    def pumped_read(self, data: bytes) -> bytes | None:
        if self.refuse and self.refuse in data:
            return None
        if b"boom" in data:
            raise RuntimeError("a bug")
        return data


def _held(relay: _Relay | None = None):
    from gevent import socket as green

    from completions.pump import Pump

    provider, upstream = green.socketpair()
    ours, client = green.socketpair()
    watchdog = SimpleNamespace(sock=upstream, pushback=None, heard=False, pumped=None)
    pump = Pump(0.001)
    return pump, relay or _Relay(), watchdog, provider, ours, client


def _chunks(sock, want: int) -> bytes:
    got = b""
    while len(got) < want:
        got += sock.recv(65536)
    return got


def test_the_pump_relays_what_the_provider_sends_and_hands_back_what_it_refuses():
    import gevent

    pump, relay, watchdog, provider, ours, client = _held(_Relay(refuse=b"end"))
    waiting = gevent.spawn(pump.relay, relay, watchdog, ours)
    provider.sendall(b"one")
    assert _chunks(client, 8) == b"3\r\none\r\n"
    provider.sendall(b"the end")
    waiting.get(timeout=5)  # handed back: its green thread goes on
    assert watchdog.pushback == b"the end"  # unrelayed: the green thread reads it next
    assert watchdog.heard and not pump.streams and pump.relayed == 1


def test_the_providers_end_or_a_failed_read_goes_back_to_be_read_there():
    import gevent

    pump, relay, watchdog, provider, ours, _client = _held()
    waiting = gevent.spawn(pump.relay, relay, watchdog, ours)
    gevent.sleep(0.01)
    provider.close()
    waiting.get(timeout=5)
    assert watchdog.pushback == b""  # the end: the green thread's read raises "ended prematurely"
    assert not pump.streams


def test_a_bug_in_a_read_hands_the_stream_back_with_the_read():
    import gevent

    pump, relay, watchdog, provider, ours, _client = _held()
    waiting = gevent.spawn(pump.relay, relay, watchdog, ours)
    provider.sendall(b"boom")
    waiting.get(timeout=5)
    assert watchdog.pushback == b"boom"


def test_a_client_gone_raises_in_the_streams_green_thread():
    import gevent

    pump, relay, watchdog, provider, ours, client = _held()
    client.close()
    waiting = gevent.spawn(pump.relay, relay, watchdog, ours)
    provider.sendall(b"one")
    with pytest.raises(OSError):
        waiting.get(timeout=5)
    assert not pump.streams


def test_a_silent_provider_is_handed_back_by_its_watchdog():
    import gevent

    pump, relay, watchdog, _provider, ours, _client = _held()  # both ends kept open: the provider only falls silent
    waiting = gevent.spawn(pump.relay, relay, watchdog, ours)
    gevent.sleep(0.01)
    assert watchdog.pumped is not None
    watchdog.pumped()  # what the watchdog's tick does when it finds the pumped stream silent
    waiting.get(timeout=5)
    assert watchdog.pushback is None and watchdog.pumped is None and not pump.streams


def test_a_killed_green_thread_takes_its_stream_out_and_a_stopped_pump_hands_every_stream_back():
    import gevent

    pump, relay, watchdog, provider, ours, _client = _held()
    waiting = gevent.spawn(pump.relay, relay, watchdog, ours)
    gevent.sleep(0.01)
    waiting.kill()
    assert not pump.streams
    provider.sendall(b"after")  # nobody relays it now: it stays for the green thread's own read
    gevent.sleep(0.01)
    assert pump.relayed == 0

    pump, relay, watchdog, provider, ours, _client = _held()
    waiting = gevent.spawn(pump.relay, relay, watchdog, ours)
    gevent.sleep(0.01)
    pump.runner.kill()
    waiting.get(timeout=5)
    assert not pump.streams and pump.runner is None


def test_a_socket_closed_before_the_pump_takes_it_stays_with_its_green_thread():
    pump, relay, watchdog, _provider, ours, _client = _held()
    watchdog.sock.close()
    pump.relay(relay, watchdog, ours)  # returns at once: nothing to watch
    assert not pump.streams and pump.runner is None
