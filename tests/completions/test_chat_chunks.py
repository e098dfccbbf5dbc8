"""Reading a middle chunk from its bytes: the characters it generated, exactly as parsing it counts them."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from completions.chat_chunks import MiddleShape, middle_chunk_chars, translated_chunk
from completions.upstreams.openai_chat import completion_chars


def compact(chunk: dict, *, ascii_only: bool = False) -> bytes:
    return json.dumps(chunk, separators=(",", ":"), ensure_ascii=ascii_only).encode()


def middle(delta: dict, **extra) -> dict:
    choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": None}
    return {"id": "chatcmpl-1", "object": "chat.completion.chunk", "model": "m", "choices": [choice], **extra}


@given(text=st.text(), ascii_only=st.booleans(), usage_null=st.booleans())
def test_a_middle_chunk_counts_what_parsing_counts_or_asks_to_be_parsed(text, ascii_only, usage_null):
    chunk = middle({"content": text}, **({"usage": None} if usage_null else {}))
    data = compact(chunk, ascii_only=ascii_only)
    counted = middle_chunk_chars(data)
    assert counted in (None, completion_chars(json.loads(data)["choices"], "delta"))
    # A text that reads like a key the scan looks for ("reasoning…", "error", "tool_calls") is left to parsing.
    looks_like_a_key = text.startswith("reasoning") or text in ("error", "tool_calls")
    plain = '"' not in text and "\\" not in text and text.isprintable() and (text.isascii() or not ascii_only)
    if plain and not looks_like_a_key:
        assert counted == len(text)


def test_text_in_any_script_is_counted_in_characters_not_bytes():
    assert middle_chunk_chars(compact(middle({"content": "Привет, 世界"}))) == 10


def test_a_role_chunk_and_an_empty_delta_generate_nothing():
    assert middle_chunk_chars(compact(middle({"role": "assistant", "content": ""}))) == 0
    assert middle_chunk_chars(compact(middle({"role": "assistant", "content": None}))) == 0
    assert middle_chunk_chars(compact(middle({}))) == 0


def test_every_chunk_settlement_reads_is_left_to_parsing():
    finish = middle({})
    finish["choices"][0]["finish_reason"] = "stop"
    usage = {**middle({}), "choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 2}}
    with_usage = middle({"content": "x"}, usage={"prompt_tokens": 1})
    error = {"error": {"message": "boom"}}
    for chunk in (finish, usage, with_usage, error):
        assert middle_chunk_chars(compact(chunk)) is None
    assert middle_chunk_chars(b"[DONE]") is None


def test_chunks_that_generate_more_than_content_are_left_to_parsing():
    tool = middle({"tool_calls": [{"index": 0, "function": {"arguments": "{}"}}]})
    refusal = middle({"refusal": "no"})
    reasoning = middle({"reasoning_content": "hmm", "content": "x"})
    logprobs = middle({"content": "x"})
    logprobs["choices"][0]["logprobs"] = {"content": [{"token": "x", "logprob": -0.1}]}
    two = {**middle({"content": "a"}), "choices": [middle({"content": "a"})["choices"][0]] * 2}
    for chunk in (tool, refusal, reasoning, logprobs, two):
        assert middle_chunk_chars(compact(chunk)) is None


def test_a_spaced_or_escaped_or_cut_chunk_is_left_to_parsing():
    assert middle_chunk_chars(json.dumps(middle({"content": "hi"})).encode()) is None
    assert middle_chunk_chars(compact(middle({"content": 'say "hi"'}))) is None
    assert middle_chunk_chars(compact(middle({"content": "hi"}))[:-3]) is None


def test_the_chunks_a_translating_kind_writes_are_read_from_their_bytes():
    # Anthropic's and Responses' streams become chat chunks written by `translated_chunk`: compact, so that
    # the relay counts and rewrites their middle chunks as bytes instead of parsing what was just written.
    head = {"id": "msg_1", "object": "chat.completion.chunk", "created": 1, "model": "claude"}
    assert middle_chunk_chars(translated_chunk(head, {"content": "Привет, world"})) == 13
    assert middle_chunk_chars(translated_chunk(head, {"role": "assistant", "content": ""})) == 0
    assert middle_chunk_chars(translated_chunk(head, {"content": ""}, "stop")) is None  # the end is parsed
    assert json.loads(translated_chunk(head, {"content": "hi"})) == {
        **head,
        "choices": [{"index": 0, "delta": {"content": "hi"}, "finish_reason": None}],
    }


def _upstream_chunk(text: str | None, *, created: int, finish: str | None, ascii_only: bool) -> bytes:
    delta = {} if text is None else {"content": text}
    choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
    chunk = {"id": "chatcmpl-9", "object": "chat.completion.chunk", "created": created, "model": "up-1"}
    return compact({**chunk, "choices": [choice], "usage": None}, ascii_only=ascii_only)


_chunks = st.lists(
    st.tuples(
        st.one_of(st.none(), st.text(max_size=12), st.sampled_from(["a", " b", "é", '"', "\\", "x\ny"])),
        st.integers(1_700_000_000, 1_700_000_002),
        st.sampled_from([None, None, None, None, "stop"]),
        st.booleans(),
    ),
    min_size=1,
    max_size=30,
)


@given(chunks=_chunks, wants_usage=st.booleans())
def test_a_learned_shape_relays_and_counts_every_chunk_it_takes_exactly_as_the_long_way(chunks, wants_usage):
    from completions.surfaces.chat import Rewrite, sse

    first = _upstream_chunk("", created=1_700_000_000, finish=None, ascii_only=False)
    rewrite = Rewrite.for_first(json.loads(first), "gen-1-abc", "demo/chat-small", wants_usage)

    def write(data: bytes) -> bytes | None:
        relayed = rewrite.apply_bytes(data)
        return None if relayed is None else sse(relayed)

    shape = None
    for text, created, finish, ascii_only in chunks:
        data = _upstream_chunk(text, created=created, finish=finish, ascii_only=ascii_only)
        long_chars, long_event = middle_chunk_chars(data), write(data)
        fast = None if shape is None else shape.relay(data)
        if fast is not None:
            # Whatever the shape takes, the long way reads and writes the same.
            assert fast == (long_event, long_chars)
            assert long_chars == completion_chars(json.loads(data)["choices"], "delta")
        elif long_chars and long_event is not None:
            shape = MiddleShape.learn(data, long_event, write) or shape


def test_a_shape_learned_from_one_chunk_takes_the_next_with_another_text_and_no_other():
    from completions.surfaces.chat import Rewrite, sse

    one = _upstream_chunk("Hello", created=1, finish=None, ascii_only=False)
    rewrite = Rewrite.for_first(json.loads(one), "gen-1-abc", "demo/chat-small", False)

    def write(data: bytes) -> bytes | None:
        return sse(rewrite.apply_bytes(data) or b"")

    shape = MiddleShape.learn(one, write(one), write)
    assert shape is not None
    two = _upstream_chunk(" wörld", created=1, finish=None, ascii_only=False)
    assert shape.relay(two) == (write(two), 6)
    assert b'"id":"gen-1-abc"' in shape.relay(two)[0] and b'"usage"' not in shape.relay(two)[0]
    for other in (
        _upstream_chunk("x", created=2, finish=None, ascii_only=False),  # a new second
        _upstream_chunk("x", created=1, finish="stop", ascii_only=False),  # the end
        _upstream_chunk('say "hi"', created=1, finish=None, ascii_only=False),  # an escape in the text
        _upstream_chunk(None, created=1, finish=None, ascii_only=False),  # no text
    ):
        assert shape.relay(other) is None
