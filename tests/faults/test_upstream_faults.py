"""An upstream that hangs, resets the connection, or sends garbage: the client gets a prompt 5xx (or its
stream an error event), nothing generated is never charged, and what was generated is charged once."""

from __future__ import annotations

import json
import socket
import struct
import time
from http.server import BaseHTTPRequestHandler

import openai

from billing.models import LedgerEntry
from completions.models import Generation
from tests.e2e.conftest import local_http_server, make_shop

from .books import audit
from .conftest import sdk_call

READ_TIMEOUT_S = 1
# The provider's read timeout plus plenty of room for a slow shared box.
PROMPT_S = READ_TIMEOUT_S + 4

CHUNK = {
    "id": "chatcmpl-fault",
    "object": "chat.completion.chunk",
    "created": 0,
    "model": "emulator-small",
    "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Half an answer"}, "finish_reason": None}],
}


class Faulty(BaseHTTPRequestHandler):
    """/<mode>/v1/chat/completions: `hang`, `reset` (before answering), `garbage` (a 200 that is not JSON),
    `garbage-stream` (an event stream of nonsense, then closed), `reset-mid-stream` (one chunk, then reset)."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        pass

    def _reset(self) -> None:
        # SO_LINGER 0: close() sends a TCP RST instead of a FIN.
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.connection.close()
        self.close_connection = True

    def _head(self, content_type: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Connection", "close")
        self.end_headers()

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        mode = self.path.split("/")[1]
        if mode == "hang":
            time.sleep(READ_TIMEOUT_S + 5)
            self.close_connection = True
        elif mode == "reset":
            self._reset()
        elif mode == "garbage":
            self._head("application/json")
            self.wfile.write(b"<html>\x00\xff not json")
            self.close_connection = True
        elif mode == "garbage-stream":
            self._head("text/event-stream")
            self.wfile.write(b"data: {not json\n\ndata: \xff\xfe\n\n: nonsense\n\n")
            self.wfile.flush()
            self.close_connection = True
        elif mode == "reset-mid-stream":
            self._head("text/event-stream")
            self.wfile.write(b"data: " + json.dumps(CHUNK).encode() + b"\n\n")
            self.wfile.flush()
            time.sleep(0.2)
            self._reset()


def test_an_upstream_that_hangs_resets_or_sends_garbage_is_answered_promptly_and_charged_per_the_readme(
    launch, emulator_url
):
    router, _ = launch()
    with local_http_server(Faulty) as base:
        seen = {}
        for mode, stream in [
            ("hang", False),
            ("hang", True),
            ("reset", False),
            ("garbage", False),
            ("garbage-stream", True),
            ("reset-mid-stream", True),
        ]:
            shop = make_shop(emulator_url, routes=[f"{base}/{mode}/v1"], read_timeout=str(READ_TIMEOUT_S))
            with openai.OpenAI(base_url=router, api_key=shop.key, max_retries=0, timeout=30) as client:
                seen[mode, stream] = sdk_call(client, shop.model.public_id, stream=stream)

    for key, call in seen.items():
        assert call.seconds < PROMPT_S, (key, call)
        assert call.cost is None, (key, call)  # no complete answer was delivered
    assert (seen["hang", False].status, seen["hang", False].code) == (504, "upstream_timeout")
    assert (seen["hang", True].status, seen["hang", True].code) == (504, "upstream_timeout")
    assert (seen["reset", False].status, seen["reset", False].code) == (503, "upstream_unavailable")
    assert (seen["garbage", False].status, seen["garbage", False].code) == (502, "upstream_error")
    # A stream that started answers 200; its end is an error event, which the SDK raises.
    for mode in ("garbage-stream", "reset-mid-stream"):
        assert seen[mode, True].status == 200 and "APIError" in seen[mode, True].error, seen[mode, True]

    generations = {g.pk: g for g in Generation.objects.all()}
    charged = dict(LedgerEntry.objects.filter(kind="charge").values_list("reference", "amount"))
    for key, call in seen.items():
        generation = generations.get(call.generation_id)
        if key == ("reset-mid-stream", True):
            # What was generated before the reset is charged, once, on the README's estimate.
            assert (generation.status, generation.usage_source) == ("failed", "estimated")
            assert charged[generation.pk] == -generation.cost < 0
        elif generation is not None:
            assert generation.pk not in charged and generation.cost == 0, key
    assert audit({}) == []
    print(
        "\nupstream faults: "
        + ", ".join(f"{m}{' stream' * s}: {c.status} in {c.seconds:.2f} s" for (m, s), c in seen.items())
    )
