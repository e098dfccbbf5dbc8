"""What the stream writers cost, in-process: a recorded chat stream through each surface's writer.

The relay (completions/relay.py) parses every upstream chunk, hands it to the surface's writer, and at the end
hands the held-back finishing chunk to `stream_final` with the charge. This replays that for one stream of
chat chunks shaped as the emulator sends them (a role chunk, one chunk per word, the finishing chunk), on
each surface that takes chat chunks: chat completions (the baseline), Messages and Responses translated.
No server, no database: only the surfaces' own CPU, so a change to a writer can be measured in seconds.

    .venv/bin/python bench/writers.py              # 12 words, as P6 asks for
    .venv/bin/python bench/writers.py --words 200  # a longer answer
    .venv/bin/python bench/writers.py --check      # print each surface's stream once, then time it

Prints, per surface, the microseconds of CPU per stream and per chunk (best of five runs) and the
difference from chat completions.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import UTC, datetime
from decimal import Decimal
from functools import partial
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parent.parent
WORDS = 'The quick brown fox jumps over the lazy dog while the emulator answers "quoted" text'.split()


def _chunks(words: int) -> list[bytes]:
    """The upstream's payloads (the `data:` of each event), as the emulator streams a chat answer."""
    head = {
        "id": "chatcmpl-emulator",
        "object": "chat.completion.chunk",
        "created": 1764000000,
        "model": "emulator-small",
        "system_fingerprint": "fp_emulator",
    }
    pieces = [("" if i == 0 else " ") + WORDS[i % len(WORDS)] for i in range(words)]
    steps = [({"role": "assistant", "content": ""}, None), *(({"content": p}, None) for p in pieces)]
    steps.append(({}, "stop"))
    out = []
    for delta, finish in steps:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        chunk = {**head, "choices": [choice], "usage": None}
        out.append(json.dumps(chunk, separators=(",", ":")).encode())
    return out


def _setup() -> None:
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mlrouter.settings")
    import django

    django.setup()


def _surfaces() -> dict[str, tuple[object, bytes]]:
    """Each surface and the request body a client of it sends (P6's request, streamed)."""
    from completions.surfaces import chat, messages, responses

    system, user = "You are terse.", "Say twelve words."
    return {
        "chat": (
            chat.SURFACE,
            json.dumps(
                {
                    "model": "bench/emulator",
                    "messages": [{"role": "system", "content": system}, {"role": "user", "content": user}],
                    "max_tokens": 64,
                    "stream": True,
                }
            ).encode(),
        ),
        "messages": (
            messages.SURFACE,
            json.dumps(
                {
                    "model": "bench/emulator",
                    "system": system,
                    "messages": [{"role": "user", "content": user}],
                    "max_tokens": 64,
                    "stream": True,
                }
            ).encode(),
        ),
        "responses": (
            responses.SURFACE,
            json.dumps(
                {
                    "model": "bench/emulator",
                    "instructions": system,
                    "input": user,
                    "max_output_tokens": 64,
                    "store": False,
                    "stream": True,
                }
            ).encode(),
        ),
    }


def _started(request):
    """What the writers read of a started generation."""
    return SimpleNamespace(
        generation_id="gen-0123456789abcdef0123456789abcdef",
        entry=SimpleNamespace(public_id="bench/emulator"),
        price=SimpleNamespace(cached_prompt=None, cache_write_prompt=None, request=Decimal(0)),
        request=request,
        started_at=datetime(2026, 12, 3, tzinfo=UTC),
    )


def _one_stream(surface, request, payloads: list[bytes]) -> bytes:
    """One stream as the relay writes it: rewrite every parsed chunk, hold the finishing one, end it."""
    from billing.money import Cost, Usage
    from completions.settlement import Finished
    from completions.surfaces.base import StreamEnd

    started = _started(request)
    out = []
    rewrite = None
    held = None
    for data in payloads:
        chunk = json.loads(data)
        if rewrite is None:
            rewrite = surface.stream_rewriter(chunk, started)
        if chunk["choices"][0].get("finish_reason"):
            held = (data, chunk)
        else:
            out.append(surface.stream_event(rewrite.apply(data, chunk)))
    cost = Decimal("0.0000126")
    breakdown = Cost(Decimal("0.000003"), Decimal(0), Decimal("0.0000096"), Decimal(0), cost)
    finished = Finished(cost=cost, usage=Usage(20, 16), usage_source="upstream", breakdown=breakdown)
    end = StreamEnd(
        last=held[0],
        last_chunk=held[1],
        rewrite=rewrite,
        usage_chunk=None,
        usage=None,
        finished=finished,
        created=1764000000,
    )
    out.append(surface.stream_final(started, end))
    out.append(surface.stream_end)
    return b"".join(out)


def _best(call, times: int) -> float:
    """CPU µs per call, best of five runs of `times` calls."""
    best = float("inf")
    for _ in range(5):
        began = time.process_time()
        for _ in range(times):
            call()
        best = min(best, (time.process_time() - began) / times * 1e6)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--words", type=int, default=12, help="words in the answer (one chunk each)")
    parser.add_argument("--streams", type=int, default=2000, help="streams per timed run")
    parser.add_argument("--check", action="store_true", help="print each surface's stream first")
    args = parser.parse_args()
    _setup()
    payloads = _chunks(args.words)
    streams, parses = {}, {}
    for name, (surface, raw) in _surfaces().items():
        if args.check:
            print(f"--- {name}\n{_one_stream(surface, surface.parse(raw), payloads).decode()}")
        _one_stream(surface, surface.parse(raw), payloads)  # warm
        # A stream's writer keeps state on the request (Responses' answer): each stream gets its own.
        requests = iter([surface.parse(raw) for _ in range(5 * args.streams)])
        streams[name] = _best(partial(lambda s, r: _one_stream(s, next(r), payloads), surface, requests), args.streams)
        parses[name] = _best(partial(surface.parse, raw), args.streams)
    chunks = len(payloads)
    print(f"{chunks} chunks per stream ({args.words} words), best of 5 × {args.streams}, CPU time")
    print(f"{'surface':<10} {'parse µs':>9} {'stream µs':>10} {'µs/chunk':>9} {'stream − chat µs':>17}")
    for name, us in streams.items():
        print(f"{name:<10} {parses[name]:>9.1f} {us:>10.1f} {us / chunks:>9.2f} {us - streams['chat']:>17.1f}")


if __name__ == "__main__":
    main()
