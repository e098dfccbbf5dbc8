"""A stream relayed on learned middle-chunk shapes is the long way's, byte for byte, however its bytes are cut."""

# ruff: noqa: F811  (pytest fixtures imported from another module are parameters here)

from __future__ import annotations

import json
import random
from decimal import Decimal
from itertools import pairwise

import pytest

from completions.models import Generation
from tests.completions.test_chat_view import (  # noqa: F401  (fixtures)
    HI,
    UPSTREAM_MODEL,
    FakeProvider,
    Shop,
    assert_settled_once,
    compact_stream,
    provider,
    provider_server,
    shop,
    sse_data,
)

_TEXTS = ["a", " b", "é", '"q"', "\\n", "Привет", "x\ty", "", " the", "世界", "ok."]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("seed", range(12))
def test_a_stream_cut_anywhere_is_relayed_and_counted_as_the_long_way_does(
    shop: Shop, provider: FakeProvider, seed: int
):
    # Each seed: its own texts (with quotes, escapes and other scripts among plain ones) and cut points.
    rng = random.Random(seed)
    texts = [rng.choice(_TEXTS) for _ in range(rng.randint(1, 40))]
    cuts = [rng.random() for _ in range(rng.randint(0, 30))]
    with_usage = seed % 2 == 0
    events = compact_stream(texts, usage={"prompt_tokens": 9, "completion_tokens": 8} if with_usage else None)
    sent = b"".join(events)
    edges = sorted({0, len(sent), *(int(c * len(sent)) for c in cuts)})
    provider.pieces([sent[a:b] for a, b in pairwise(edges) if b > a])

    body = {"model": shop.model.public_id, "messages": HI, "stream": True, "stream_options": {"include_usage": True}}
    raw = json.dumps(body).encode()
    response = shop.post(raw)
    got = sse_data(b"".join(response.streaming_content))
    generation_id = response["X-Generation-Id"]

    # Every chunk before the finish is the provider's own bytes with our id and model: the long way's output.
    for upstream, relayed in zip(events[: 1 + len(texts)], got[: 1 + len(texts)], strict=True):
        ours = upstream.removeprefix(b"data: ").removesuffix(b"\n\n")
        ours = ours.replace(b'"chatcmpl-upstream-1"', json.dumps(generation_id).encode())
        assert relayed == ours.replace(json.dumps(UPSTREAM_MODEL).encode(), json.dumps(shop.model.public_id).encode())
    assert got[-1] == b"[DONE]"
    if with_usage:
        prompt, completion_tokens = 9, 8
    else:  # estimated: the request's bytes / 4, the generated characters / 4 (completions/settlement.py)
        prompt, completion_tokens = -(-len(raw) // 4), -(-sum(len(t) for t in texts) // 4)
    cost = (prompt * Decimal("0.15") + completion_tokens * Decimal("0.60")) / 1_000_000
    assert json.loads(got[-2])["usage"]["completion_tokens"] == completion_tokens
    assert_settled_once(shop, generation_id, cost)
    assert Generation.objects.get(pk=generation_id).usage_source == ("upstream" if with_usage else "estimated")
