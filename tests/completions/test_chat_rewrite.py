"""Rewriting upstream stream chunks: our id and model, never a provider's usage on a chunk with choices."""

from __future__ import annotations

import json

from completions.surfaces.chat import Rewrite


def _first(raw: bytes, wants_usage: bool = False) -> Rewrite:
    return Rewrite.for_first(json.loads(raw), "gen-1-abc", "demo/chat-small", wants_usage)


def test_a_compact_chunk_is_rewritten_on_its_bytes():
    raw = b'{"id":"chatcmpl-9","object":"chat.completion.chunk","model":"gpt-x","choices":[{"delta":{"content":"hi"}}]}'
    out = _first(raw).apply(raw, json.loads(raw))
    assert out == raw.replace(b"chatcmpl-9", b"gen-1-abc").replace(b'"gpt-x"', b'"demo/chat-small"')


def test_a_spaced_chunk_is_reserialized_with_the_same_result():
    raw = b'{"id": "chatcmpl-9", "model": "gpt-x", "choices": [{"delta": {"content": "hi"}}]}'
    out = json.loads(_first(raw).apply(raw, json.loads(raw)))
    assert out == {"id": "gen-1-abc", "model": "demo/chat-small", "choices": [{"delta": {"content": "hi"}}]}


def test_content_that_looks_like_the_model_name_is_left_alone():
    raw = b'{"id":"c","model":"gpt-x","choices":[{"delta":{"content":"gpt-x"}}]}'
    out = json.loads(_first(raw).apply(raw, json.loads(raw)))
    assert (out["model"], out["choices"][0]["delta"]["content"]) == ("demo/chat-small", "gpt-x")


def test_a_providers_usage_on_a_chunk_with_choices_is_dropped():
    raw = b'{"id":"c","model":"m","choices":[{"delta":{}}],"usage":{"prompt_tokens":5,"cost":0.01}}'
    assert "usage" not in json.loads(_first(raw).apply(raw, json.loads(raw)))
    assert json.loads(_first(raw, wants_usage=True).apply(raw, json.loads(raw)))["usage"] is None


def test_usage_null_is_kept_only_when_the_client_asked_for_usage():
    raw = b'{"id":"c","model":"m","choices":[{"delta":{"content":"x"}}],"usage":null}'
    assert json.loads(_first(raw, wants_usage=True).apply(raw, json.loads(raw)))["usage"] is None
    assert "usage" not in json.loads(_first(raw).apply(raw, json.loads(raw)))


def test_the_usage_null_the_client_did_not_ask_for_is_cut_from_the_bytes():
    # On the bytes, not re-serialized: the upstream's own escape (\u00e9) stays as it was.
    raw = b'{"id":"c","object":"chat.completion.chunk","model":"m","choices":[{"delta":{"content":"\\u00e9"}}],'
    raw += b'"usage":null}'
    out = _first(raw).apply(raw, json.loads(raw))
    expected = b'{"id":"gen-1-abc","object":"chat.completion.chunk","model":"demo/chat-small","choices":[{"delta":'
    assert out == expected + b'{"content":"\\u00e9"}}]}'


def test_only_the_top_level_usage_null_is_cut():
    # A nested `usage: null` is the provider's content, not its usage mark: left as it is.
    raw = b'{"usage":null,"id":"c","model":"m","choices":[{"delta":{"content":"x"},"x":{"a":1,"usage":null}}]}'
    out = json.loads(_first(raw).apply(raw, json.loads(raw)))
    assert out == {
        "id": "gen-1-abc",
        "model": "demo/chat-small",
        "choices": [{"delta": {"content": "x"}, "x": {"a": 1, "usage": None}}],
    }
    text = b'{"id":"c","model":"m","choices":[{"delta":{"content":",\\"usage\\":null}"}}],"usage":null}'
    out = json.loads(_first(text).apply(text, json.loads(text)))
    assert out["choices"][0]["delta"]["content"] == ',"usage":null}' and "usage" not in out
