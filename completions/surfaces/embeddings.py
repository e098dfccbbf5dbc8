"""The OpenAI Embeddings surface (POST /v1/embeddings): request validation, the body sent upstream, and
the upstream's embedding list rewritten as ours with the exact cost.

An embedding is priced per 1M input tokens at the model's `prompt` price; it has no completion. The
request is held like a chat request with no completion at all (`max_tokens` 0, `n` 0: settlement's
completion cap is 0), so the hold is the prompt's upper bound, one token per byte of the request.
Embeddings are never streamed: a `stream` field is a 400.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from core import exactjson

from ..errors import invalid
from ..preferences import DEFAULT_PROVIDER, ROUTER_FIELDS, ProviderPreferences, models_parse, provider_parse
from .base import StreamEnd, Surface, openapi_operation
from .chat import _forward_json, _json_load, sse, stream_error
from .fields import int_check, is_int

if TYPE_CHECKING:
    from completions.routing import RouteInfo
    from completions.settlement import Finished, Started

MAX_INPUTS = 2048  # OpenAI's limit on the items of one request
ENCODINGS = ("float", "base64")
MAX_DIMENSIONS = 65536
MAX_TOKEN_ID = 2**31 - 1  # far above any vocabulary; a bigger id is a mistake, not a token


@dataclass
class EmbeddingsRequest:
    """A validated embeddings request: what the router needs from it, and the body every route gets."""

    raw_size: int
    model: str
    user: str
    forward: bytes  # the upstream body but for `model`
    models: tuple[str, ...] = ()
    provider: ProviderPreferences = DEFAULT_PROVIDER
    stream: bool = False
    max_tokens: int | None = 0
    n: int = 0  # no completion: settlement.completion_cap is 0
    wants_usage: bool = True
    reasoning_exclude: bool = False

    @property
    def parameters(self) -> frozenset[str]:
        """Routes' declared `supported_parameters` name chat parameters; an embedding asks for none."""
        return frozenset()

    @property
    def prompt_tokens_upper_bound(self) -> int:
        """At most this many input tokens: a token (a word, or a token id in an array) takes a byte or more."""
        return self.raw_size

    @property
    def prompt_tokens_estimate(self) -> int:
        """Our estimate when the upstream does not say: one token per four bytes of the request."""
        return math.ceil(self.raw_size / 4)


def _is_token(value: Any) -> bool:
    return is_int(value) and 0 <= value <= MAX_TOKEN_ID


def _check_input(value: Any) -> None:
    """A string, an array of strings, an array of token ids, or an array of token-id arrays; none empty."""
    if isinstance(value, str):
        if not value:
            raise invalid("'input' must not be an empty string.", "input")
        return
    if not isinstance(value, list) or not value:
        raise invalid(
            "'input' is required: a string, an array of strings, an array of token ids or an array of token-id arrays.",
            "input",
        )
    if len(value) > MAX_INPUTS:
        raise invalid(f"'input' may hold at most {MAX_INPUTS} items.", "input")
    if all(_is_token(token) for token in value):
        return
    for i, item in enumerate(value):
        if isinstance(item, str):
            if not item:
                raise invalid(f"'input[{i}]' must not be an empty string.", f"input[{i}]")
        elif isinstance(item, list):
            if not item or not all(_is_token(token) for token in item):
                raise invalid(f"'input[{i}]' must be a non-empty array of token ids.", f"input[{i}]")
        else:
            raise invalid(f"'input[{i}]' must be a string or an array of token ids.", f"input[{i}]")
    kinds = {isinstance(item, str) for item in value}
    if len(kinds) > 1:
        raise invalid("'input' must hold only strings or only token-id arrays.", "input")


def parse_embeddings_request(raw: bytes) -> EmbeddingsRequest:
    """Validate an embeddings body; unknown fields are kept and forwarded unchanged."""
    body = _json_load(raw)
    if not isinstance(body, dict):
        raise invalid("The request body must be a JSON object.")
    models = models_parse(body)
    _check_input(body.get("input"))
    if "stream" in body:
        raise invalid("Embeddings are not streamed: remove 'stream'.", "stream")
    encoding = body.get("encoding_format")
    if encoding is not None and encoding not in ENCODINGS:
        raise invalid("'encoding_format' must be 'float' or 'base64'.", "encoding_format")
    int_check(body, "dimensions", 1, MAX_DIMENSIONS)
    user = body.get("user", "")
    if user is not None and not isinstance(user, str):
        raise invalid("'user' must be a string.", "user")
    provider = provider_parse(body.get("provider"))
    rest = {name: value for name, value in body.items() if name != "model" and name not in ROUTER_FIELDS}
    return EmbeddingsRequest(
        raw_size=len(raw),
        model=models[0],
        user=(user or "").replace("\x00", "")[:256],  # PostgreSQL text cannot hold NUL
        forward=_forward_json(rest),
        models=models,
        provider=provider,
    )


def upstream_body(request: EmbeddingsRequest, route: RouteInfo) -> bytes:
    """The body sent upstream: the client's, with the route's model name and without the router's fields."""
    head = b'{"model":' + json.dumps(route.upstream_model, ensure_ascii=False).encode()
    return head + (b"}" if request.forward == b"{}" else b"," + request.forward[1:])


def plain_answer(body: dict[str, Any], started: Started, finished: Finished) -> bytes:
    """The upstream's embedding list as ours: our model, our usage with the exact cost (a Decimal)."""
    body["model"] = started.entry.public_id
    tokens = finished.usage.prompt_tokens
    body["usage"] = {"prompt_tokens": tokens, "total_tokens": tokens, "cost": finished.cost}
    return exactjson.dumps_bytes(body)


def _no_stream(*args: Any) -> Any:
    raise AssertionError("embeddings are never streamed (parse refuses `stream`)")


def _no_final(started: Started, end: StreamEnd) -> bytes:
    raise AssertionError("embeddings are never streamed (parse refuses `stream`)")


_TOKEN_IDS = {"type": "array", "minItems": 1, "items": {"type": "integer", "minimum": 0, "maximum": MAX_TOKEN_ID}}
# The body as parse_embeddings_request checks it; any other field is forwarded as sent.
REQUEST_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["input"],
    "anyOf": [{"required": ["model"]}, {"required": ["models"]}],
    "properties": {
        "model": {"type": "string", "minLength": 1, "description": "An embedding model id from GET /v1/models."},
        "models": {"type": "array", "items": {"type": "string", "minLength": 1}, "minItems": 1},
        "input": {
            "oneOf": [
                {"type": "string", "minLength": 1},
                {"type": "array", "minItems": 1, "maxItems": MAX_INPUTS, "items": {"type": "string", "minLength": 1}},
                _TOKEN_IDS,
                {"type": "array", "minItems": 1, "maxItems": MAX_INPUTS, "items": _TOKEN_IDS},
            ]
        },
        "encoding_format": {"type": "string", "enum": list(ENCODINGS), "nullable": True},
        "dimensions": {"type": "integer", "minimum": 1, "maximum": MAX_DIMENSIONS, "nullable": True},
        "user": {"type": "string", "nullable": True},
        "provider": {"type": "object", "nullable": True},
    },
    "additionalProperties": True,
}

OPENAPI = openapi_operation(
    request=REQUEST_SCHEMA,
    operation_id="embeddings_create",
    summary="Create embeddings",
    description="OpenAI-compatible: `input` as a string, an array of strings, an array of token ids or an "
    "array of token-id arrays; `encoding_format` (`float` or `base64`), `dimensions` and `user` are passed to "
    "the provider. Priced per 1M input tokens at the model's prompt price; `usage.cost` is what was charged "
    "(USD). Not streamed.",
    tag="embeddings",
    answer="The embedding list.",
    streams=False,
)


SURFACE = Surface(
    name="embeddings",
    path="embeddings",
    speaks="openai-embeddings",
    openapi=OPENAPI,
    parse=parse_embeddings_request,
    upstream_body=upstream_body,
    plain_answer=plain_answer,
    stream_rewriter=_no_stream,
    stream_event=sse,
    stream_final=_no_final,
    stream_error=stream_error,
    stream_end=b"data: [DONE]\n\n",
)
