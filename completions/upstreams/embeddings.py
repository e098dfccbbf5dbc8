"""The `openai-embeddings` upstream kind: providers speaking OpenAI's Embeddings API (POST /embeddings).

The transport is openai_chat's (the same pooled urllib3 client and cached targets), at another path.
Embeddings are never streamed and generate no completion tokens: a plain answer is settled on its
`usage.prompt_tokens` alone.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..candidates import Candidate
from .base import Upstream, UpstreamCall
from .openai_chat import sse_events, upstream_open

ENDPOINT = "/embeddings"


def embeddings_open(candidates: tuple[Candidate, ...], body_for: Callable[[Candidate], bytes]) -> UpstreamCall:
    """openai_chat's fallback from route to route, at the routes' `/embeddings`."""
    return upstream_open(candidates, body_for, ENDPOINT)


def answer_ok(body: dict) -> bool:
    """Whether a plain answer is an embedding list: `data` is an array."""
    return isinstance(body.get("data"), list)


def no_completion(choices: Any, key: str) -> int:
    """An embedding generates no text."""
    return 0


UPSTREAM = Upstream(
    kind="openai-embeddings",
    open=embeddings_open,
    events=sse_events,  # unused: the embeddings surface refuses `stream`
    completion_chars=no_completion,
    answer_ok=answer_ok,
)
