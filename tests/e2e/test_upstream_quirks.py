"""Providers that are OpenAI-compatible with a difference: the client still gets our usage and cost, once."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from http.server import BaseHTTPRequestHandler

import pytest

from .conftest import assert_settled_once, chat, cost_of, generation_settled, local_http_server, make_shop

HEAD = {"id": "chatcmpl-quirk", "object": "chat.completion.chunk", "created": 1, "model": "quirk"}


def chunk(delta: dict, finish: str | None = None, **extra) -> dict:
    return {**HEAD, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra}


# Usage (with the provider's own price) on the last choice chunk, not on a chunk of its own.
USAGE_ON_LAST_CHOICE = [
    chunk({"role": "assistant", "content": ""}),
    chunk({"content": "Hello"}),
    chunk({"content": " world"}),
    chunk({}, "stop", usage={"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11, "cost": 0.0000042}),
]
# Running usage on every chunk (vLLM's continuous usage stats), each with the provider's cost so far.
USAGE_ON_EVERY_CHUNK = [
    chunk({"role": "assistant", "content": ""}, usage={"prompt_tokens": 9, "completion_tokens": 0, "cost": 0.1}),
    chunk({"content": "Hello"}, usage={"prompt_tokens": 9, "completion_tokens": 1, "cost": 0.2}),
    chunk({"content": " world"}, "stop", usage={"prompt_tokens": 9, "completion_tokens": 2, "cost": 0.3}),
]
SCRIPTS = {"last": USAGE_ON_LAST_CHOICE, "every": USAGE_ON_EVERY_CHUNK}


class ScriptedProvider(BaseHTTPRequestHandler):
    """Streams the script named by the path (/<name>/v1/chat/completions) with CRLF line ends."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        events = [json.dumps(c) for c in SCRIPTS[self.path.split("/")[1]]] + ["[DONE]"]
        body = "".join(f"data: {e}\r\n\r\n" for e in events).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def scripted_provider() -> Iterator[str]:
    with local_http_server(ScriptedProvider) as url:
        yield url


@pytest.mark.parametrize("script", ["last", "every"])
@pytest.mark.parametrize("include_usage", [True, False])
def test_a_stream_shows_only_our_usage_once_at_the_end_wherever_the_provider_puts_its_own(
    router, emulator_url, scripted_provider, transactional_db, script, include_usage
):
    shop = make_shop(emulator_url, routes=[f"{scripted_provider}/{script}/v1"])
    body = {"model": shop.model.public_id, "messages": [{"role": "user", "content": "hi"}], "stream": True}
    if include_usage:
        body["stream_options"] = {"include_usage": True}
    response = chat(router, shop.key, body, stream=True)
    events = [line[6:] for line in response.iter_lines() if line.startswith(b"data: ")]
    assert events[-1] == b"[DONE]"
    chunks = [json.loads(e, parse_float=Decimal) for e in events[:-1]]
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"]) == "Hello world"
    with_usage = [c for c in chunks if c.get("usage")]
    assert with_usage == [chunks[-1]]
    assert (chunks[-1]["usage"]["prompt_tokens"], chunks[-1]["usage"]["completion_tokens"]) == (9, 2)
    assert chunks[-1]["usage"]["cost"] == cost_of(9, 2)
    # As OpenAI does: with include_usage every other chunk says usage null; without, it says nothing.
    assert all(c.get("usage", "absent") == (None if include_usage else "absent") for c in chunks[:-1])
    generation = generation_settled(response.headers["X-Generation-Id"])
    assert (generation.usage_source, generation.completion_tokens) == ("upstream", 2)
    assert_settled_once(generation, cost_of(9, 2))
