"""A pass-through stream's deltas read as bytes: relayed and counted exactly as parsing them does, or parsed."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from completions.upstreams import anthropic_messages
from completions.upstreams.event_shapes import EventShape
from completions.upstreams.openai_responses import native as responses_native

STARTED = SimpleNamespace(
    generation_id="gen-1",
    entry=SimpleNamespace(public_id="acme/model"),
    request=SimpleNamespace(previous_response_id=None, store=False),
)
# A stand-in for any text in a frame, replaced by arbitrary bytes.
HOLE = "HOLE-7f3a"


def compact(data: dict, *, ascii_only: bool = False) -> str:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=ascii_only)


def anthropic_frame(delta: dict, *, index: int = 0, ascii_only: bool = False) -> bytes:
    data = {"type": "content_block_delta", "index": index, "delta": delta}
    return b"event: content_block_delta\ndata: " + compact(data, ascii_only=ascii_only).encode()


def responses_frame(delta: str, sequence: int, *, obfuscation: str | None = None, ascii_only: bool = False) -> bytes:
    data = {
        "type": "response.output_text.delta",
        "item_id": "msg_abc",
        "output_index": 0,
        "content_index": 0,
        "delta": delta,
        "logprobs": [],
        "sequence_number": sequence,
    }
    if obfuscation is not None:
        data["obfuscation"] = obfuscation
    return b"event: response.output_text.delta\ndata: " + compact(data, ascii_only=ascii_only).encode()


def the_long_way(reader_class, frame: bytes) -> tuple[tuple[bytes, int], int | None]:
    """What a new reader, which has learned nothing, relays and counts for `frame`, and its sequence number."""
    reader = reader_class(STARTED)
    return reader.feed(frame), getattr(reader, "sequence", None)


texts = st.text() | st.sampled_from(["", '"', "\\", "\\n", 'a"b', "é", "世界", "\n", "\x00", '"text":"x'])
frame_bytes = st.binary().filter(lambda raw: b"\n\n" not in raw and b"\r" not in raw)
anthropic_deltas = st.one_of(
    st.builds(lambda text: {"type": "text_delta", "text": text}, texts),
    st.builds(lambda text: {"type": "thinking_delta", "thinking": text}, texts),
    st.builds(lambda text: {"type": "input_json_delta", "partial_json": text}, texts),
    st.builds(lambda text: {"type": "signature_delta", "signature": text}, texts),
)


@given(events=st.lists(st.tuples(anthropic_deltas, st.integers(0, 2), st.booleans()), min_size=1, max_size=30))
def test_anthropic_deltas_are_relayed_and_counted_as_the_long_way_does(events):
    reader = anthropic_messages.NativeEvents(STARTED)
    frames = [anthropic_frame({"type": "text_delta", "text": "Hello"})]
    frames += [anthropic_frame(delta, index=index, ascii_only=ascii_only) for delta, index, ascii_only in events]
    for frame in frames:
        assert reader.feed(frame) == the_long_way(anthropic_messages.NativeEvents, frame)[0]


@given(piece=frame_bytes, kind=st.sampled_from(["text_delta", "thinking_delta"]))
def test_any_bytes_where_a_learned_anthropic_text_goes_are_read_as_the_long_way_reads_them(piece, kind):
    # A raw control character, a quote, an escape, bytes that are not UTF-8: whatever a provider might write.
    key = "text" if kind == "text_delta" else "thinking"
    template = anthropic_frame({"type": kind, key: HOLE})
    reader = anthropic_messages.NativeEvents(STARTED)
    reader.feed(template.replace(HOLE.encode(), b"Hello"))
    frame = template.replace(HOLE.encode(), piece)
    assert reader.feed(frame) == the_long_way(anthropic_messages.NativeEvents, frame)[0]


@given(events=st.lists(st.tuples(texts, st.integers(0, 10**20), st.none() | texts, st.booleans()), max_size=30))
def test_responses_deltas_are_relayed_counted_and_numbered_as_the_long_way_does(events):
    reader = responses_native.NativeEvents(STARTED)
    frames = [responses_frame("Hello", 3, obfuscation="abc"), responses_frame(" world", 4)]
    frames += [responses_frame(t, n, obfuscation=o, ascii_only=a) for t, n, o, a in events]
    sequence = -1
    for frame in frames:
        relayed, number = the_long_way(responses_native.NativeEvents, frame)
        sequence = sequence if number == -1 else number
        assert reader.feed(frame) == relayed
        assert reader.sequence == sequence


# What a number may look like, beside any bytes: JSON does not take a leading zero, a sign or a fraction here.
numbers = st.sampled_from([b"05", b"00", b"0", b"-1", b"1.0", b"1e3", b""]) | st.integers(0).map(str).map(str.encode)
responses_keys = st.sampled_from([b'"delta":"', b'"sequence_number":', b'"obfuscation":"', b'"item_id":"'])


@given(piece=frame_bytes | numbers, where=responses_keys)
def test_any_bytes_where_a_learned_responses_value_goes_are_read_as_the_long_way_reads_them(piece, where):
    clean = responses_frame("Hello", 12345, obfuscation="pad")
    reader = responses_native.NativeEvents(STARTED)
    reader.feed(clean)
    at = clean.index(where) + len(where)
    end = at + 5 if where == b'"sequence_number":' else clean.index(b'"', at)
    frame = clean[:at] + piece + clean[end:]
    long_way = responses_native.NativeEvents(STARTED)
    long_way.sequence = 12345  # where the clean event left it
    assert reader.feed(frame) == long_way.feed(frame)
    assert reader.sequence == long_way.sequence


def test_a_text_delta_after_the_first_of_its_block_is_not_parsed(monkeypatch):
    parsed = []
    parse = anthropic_messages.frame_data
    monkeypatch.setattr(anthropic_messages, "frame_data", lambda frame: parsed.append(frame) or parse(frame))
    reader = anthropic_messages.NativeEvents(STARTED)
    words = ["The", " quick", " brown", " fox", " é", " 世界"]
    frames = [anthropic_frame({"type": "text_delta", "text": word}) for word in words]

    counts = [reader.feed(frame)[1] for frame in frames]

    assert counts == [3, 6, 6, 4, 2, 3]
    # The first is parsed (and the shape learned from it checked against parsing); the others are not.
    assert frames[0] in parsed
    assert not set(frames[1:]) & set(parsed)
    # A delta that is not plain text (an escape) is parsed again, and counted as parsing counts it.
    quoted = anthropic_frame({"type": "text_delta", "text": ' "hi"'})
    assert reader.feed(quoted) == (quoted + b"\n\n", 5)
    assert quoted in parsed


def test_a_responses_text_delta_after_the_first_is_not_parsed_and_keeps_its_sequence_number(monkeypatch):
    parsed = []
    parse = responses_native.frame_data
    monkeypatch.setattr(responses_native, "frame_data", lambda frame: parsed.append(frame) or parse(frame))
    reader = responses_native.NativeEvents(STARTED)
    frames = [responses_frame(word, n, obfuscation="x" * n) for n, word in enumerate(["Hi", " there", " 世界"], 7)]

    counts = [reader.feed(frame)[1] for frame in frames]

    assert counts == [2, 6, 3]
    assert reader.sequence == 9
    assert frames[0] in parsed
    assert not set(frames[1:]) & set(parsed)


@pytest.mark.parametrize(
    "frame",
    [
        b'data: {"a":"x","a":"y"}',  # the key twice: which one counts is parsing's business
        b'data: {"a":"x\\"y"}',  # an escape in the value
        b'data: {"a":"\xff"}',  # not UTF-8
        b'data: {"b":05}',  # not a JSON number
    ],
)
def test_a_shape_is_not_learned_where_a_value_is_not_plain_or_not_alone(frame):
    assert EventShape.learn(frame, (b'"a":"', b'"b":')) is None


def test_a_shape_hands_back_its_values_in_the_order_of_its_keys_and_writes_them_back():
    learned = EventShape.learn(b'data: {"n":12,"t":"ab","o":"zz"}', (b'"t":"', b'"n":', b'"o":"', b'"none":"'))
    assert learned is not None
    shape, values = learned
    assert values == [b"ab", b"12", b"zz", b""]
    assert shape.match(b'data: {"n":7,"t":"","o":"q"}') == [b"", b"7", b"q", b""]
    assert shape.match(b'data: {"n":7,"t":"","o":"q"} ') is None
    assert shape.match(b'data: {"n":-7,"t":"","o":"q"}') is None
    assert shape.write([b"c", b"3", b"", b""]) == b'data: {"n":3,"t":"c","o":""}'
