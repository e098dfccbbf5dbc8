"""The `openai-embeddings` upstream kind: providers speaking OpenAI's Embeddings API (POST /embeddings).

The transport is openai_chat's (the same pooled urllib3 client and cached targets), at another path.
Embeddings are never streamed and generate no completion tokens: a plain answer is settled on its
`usage.prompt_tokens` alone.
"""

from __future__ import annotations

from typing import Any

from .base import Upstream
from .openai_chat import bearer, sse_events


def answer_ok(body: dict) -> bool:
    """Whether a plain answer is an embedding list: `data` is an array."""
    return isinstance(body.get("data"), list)


def no_completion(choices: Any, key: str) -> int:
    """An embedding generates no text."""
    return 0


UPSTREAM = Upstream(
    kind="openai-embeddings",
    endpoint="/embeddings",
    auth=bearer,
    accepts=frozenset({"openai-embeddings"}),
    events=sse_events,  # unused: the embeddings surface refuses `stream`
    completion_chars=no_completion,
    answer_ok=answer_ok,
)
