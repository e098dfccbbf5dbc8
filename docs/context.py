"""Everything a docs page shows that is not prose, built in one place.

Numbers come from settings, the API's code and the live catalog, never retyped in the pages: a page
is a Django template that renders to Markdown, and this module is its only context.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from decimal import Decimal
from html import escape
from typing import Any

from django.conf import settings
from django.http import HttpRequest

from billing.models import Price
from billing.money import Usage, cost_for
from completions.errors import ApiError
from completions.pipeline import TOPUP_HINT, rate_limit_message
from completions.ratelimit import WINDOW_MS
from completions.routing import CatalogEntry, catalog_entry, sellable_models
from completions.settlement import DEFAULT_COMPLETION_CAP, worst_case_cost
from completions.surfaces.chat import MAX_TOKENS_LIMIT, ROLES, ChatRequest, parse_chat_request
from core.usd import decimal_text

from .errors import API_ERRORS
from .pages import PAGES, docs_url

# Shown when the docs are rendered outside a request and no public URL is configured.
FALLBACK_BASE_URL = "https://api.ml-router.su"
# The request-body ranges the validator (completions/surfaces/chat.py) enforces; tests/docs checks them against it.
PARAM_RANGES: dict[str, tuple[int, int]] = {
    "temperature": (0, 2),
    "top_p": (0, 1),
    "presence_penalty": (-2, 2),
    "frequency_penalty": (-2, 2),
    "n": (1, 128),
    "max_tokens": (1, MAX_TOKENS_LIMIT),
    "max_completion_tokens": (1, MAX_TOKENS_LIMIT),
}
# The sizes of the worked examples: a short chat turn, a longer one, and a ~2 KB request body.
SAMPLE_USAGE = Usage(12, 8)
WORKED_USAGE = Usage(1200, 350)
HOLD_BODY_BYTES = 2000
HOLD_MAX_TOKENS = 500


def money_text(amount: Decimal) -> str:
    """A USD amount as `$0.10`, `$2.50` or `$0.0000066`: exact, with at least cents."""
    whole, _, fraction = decimal_text(amount).partition(".")
    return f"${whole}.{fraction.ljust(2, '0')}"


def seconds_text(value: float) -> str:
    """Seconds as `5` or `0.5`."""
    return f"{value:g}"


def size_text(size: int, lang: str) -> str:
    """A byte count the way people read it: `4 MiB` / `4 МиБ`, else KiB, else bytes."""
    units = [(1024 * 1024, "MiB", "МиБ"), (1024, "KiB", "КиБ")]
    for unit, en, ru in units:
        if size >= unit and size % unit == 0:
            return f"{size // unit} {ru if lang == 'ru' else en}"
    return f"{size} {'байт' if lang == 'ru' else 'bytes'}"


@dataclass(frozen=True, slots=True)
class ModelRow:
    """A sellable model as the price table shows it; `name` is already escaped for Markdown."""

    id: str
    name: str
    context_length: int
    max_output_tokens: int
    prompt: str
    completion: str
    cached_prompt: str
    cache_write_prompt: str
    request: str
    entry: CatalogEntry
    embeddings: bool = False  # an embedding model (its output modality): served at /v1/embeddings only

    @property
    def price(self) -> Price:
        return self.entry.price


def catalog_rows() -> list[ModelRow]:
    """Every model on sale, with the price in force now."""
    rows = []
    for model in sellable_models():
        entry = catalog_entry(model.public_id)
        if entry is None:
            continue
        price = entry.price
        rows.append(
            ModelRow(
                id=entry.public_id,
                name=escape(model.name).replace("|", "&#124;"),
                context_length=entry.context_length,
                max_output_tokens=entry.max_output_tokens,
                prompt=money_text(price.prompt),
                completion=money_text(price.completion),
                cached_prompt="—" if price.cached_prompt is None else money_text(price.cached_prompt),
                cache_write_prompt="—" if price.cache_write_prompt is None else money_text(price.cache_write_prompt),
                request=money_text(price.request) if price.request else "—",
                entry=entry,
                embeddings="embeddings" in (model.output_modalities or ()),
            )
        )
    return rows


def example_row(rows: list[ModelRow]) -> ModelRow | None:
    """The model the chat examples use: the cheapest chat model on sale (on the demo, a `demo/…` model)."""
    rows = [row for row in rows if not row.embeddings]
    if not rows:
        return None
    return min(rows, key=lambda row: (row.price.prompt + row.price.completion, row.id))


def example_embedding_row(rows: list[ModelRow]) -> ModelRow | None:
    """The model the embeddings examples use: the cheapest embedding model on sale."""
    rows = [row for row in rows if row.embeddings]
    return min(rows, key=lambda row: (row.price.prompt, row.id)) if rows else None


def _anthropic_model(rows: list[ModelRow]) -> str | None:
    """The model the Claude Code page uses: the cheapest whose first route speaks Anthropic's API."""
    native = [row for row in rows if row.entry.routes and row.entry.routes[0].api == "anthropic-messages"]
    return min(native, key=lambda row: (row.price.prompt + row.price.completion, row.id)).id if native else None


def _sample_chat(max_tokens: int | None) -> ChatRequest:
    """A request whose body is exactly HOLD_BODY_BYTES long, as the API would parse it."""
    body: dict[str, Any] = {"model": "m", "messages": [{"role": "user", "content": ""}]}
    if max_tokens is not None:
        body["max_tokens"] = max_tokens
    body["messages"][0]["content"] = "x" * (HOLD_BODY_BYTES - len(json.dumps(body).encode()))
    return parse_chat_request(json.dumps(body).encode())


def example_figures(row: ModelRow | None) -> dict[str, Any]:
    """Costs and holds of the worked examples, computed by the same functions that charge."""
    if row is None:
        return {}
    price = row.price
    sample = cost_for(SAMPLE_USAGE, price)
    worked = cost_for(WORKED_USAGE, price)
    return {
        "prompt_price": money_text(price.prompt)[1:],
        "completion_price": money_text(price.completion)[1:],
        "request_fee": money_text(price.request)[1:] if price.request else "",
        "sample_prompt_tokens": SAMPLE_USAGE.prompt_tokens,
        "sample_completion_tokens": SAMPLE_USAGE.completion_tokens,
        "sample_total_tokens": SAMPLE_USAGE.prompt_tokens + SAMPLE_USAGE.completion_tokens,
        "sample_cost": decimal_text(sample.total),
        "worked_prompt_tokens": WORKED_USAGE.prompt_tokens,
        "worked_completion_tokens": WORKED_USAGE.completion_tokens,
        "worked_prompt_cost": decimal_text(worked.prompt),
        "worked_completion_cost": decimal_text(worked.completion),
        "worked_cost": decimal_text(worked.total),
        "hold_body_bytes": HOLD_BODY_BYTES,
        "hold_max_output": row.max_output_tokens or DEFAULT_COMPLETION_CAP,
        "hold_full": decimal_text(worst_case_cost(_sample_chat(None), row.entry, price).total),
        "hold_max_tokens": HOLD_MAX_TOKENS,
        "hold_small": decimal_text(worst_case_cost(_sample_chat(HOLD_MAX_TOKENS), row.entry, price).total),
    }


def _base_url(request: HttpRequest | None) -> str:
    public = getattr(settings, "PUBLIC_BASE_URL", "")
    if public:
        return public.rstrip("/")
    if request is not None:
        return request.build_absolute_uri("/").rstrip("/")
    return FALLBACK_BASE_URL


def _bot_username() -> str:
    found = re.search(r"@(\w+)", TOPUP_HINT)
    return found.group(1) if found else "ML_Router_bot"


def _invalid_request_example() -> str:
    """The body the API answers a request with an out-of-range `temperature`, produced by the validator itself."""
    body = {"model": "any", "messages": [{"role": "user", "content": "Hi"}], "temperature": 3}
    try:
        parse_chat_request(json.dumps(body).encode())
    except ApiError as error:
        return json.dumps(error.body(), ensure_ascii=False, indent=2)
    raise AssertionError("the validator accepted an out-of-range temperature")


def _rate_limit_example() -> str:
    docs = docs_url("rate-limits#rate_limit")
    error = ApiError(429, rate_limit_message(settings.DEFAULT_KEY_RPM, 42, docs), code="rate_limit")
    return json.dumps(error.body(), ensure_ascii=False, indent=2)


def _stream_error_example() -> str:
    error = ApiError(502, "Stream interrupted: the upstream connection dropped mid-stream.", code="upstream_error")
    return json.dumps(error.body(), ensure_ascii=False, indent=2)


def docs_context(*, lang: str, request: HttpRequest | None = None) -> dict[str, Any]:
    """The context every page source is rendered with."""
    rows = catalog_rows()
    example = example_row(rows)
    embedding = example_embedding_row(rows)
    bot = _bot_username()
    return {
        "lang": lang,
        "api_base": _base_url(request) + "/v1",
        "bot": f"@{bot}",
        "bot_url": f"https://t.me/{bot}",
        "min_balance": money_text(settings.MIN_BALANCE_USD),
        "low_balance_threshold": money_text(settings.LOW_BALANCE_THRESHOLD_USD),
        "default_rpm": settings.DEFAULT_KEY_RPM,
        "account_rpm": settings.ACCOUNT_RPM,
        "auth_cache_seconds": seconds_text(settings.AUTH_CACHE_SECONDS),
        "catalog_cache_seconds": seconds_text(settings.CATALOG_CACHE_SECONDS),
        "keepalive_seconds": seconds_text(settings.STREAM_KEEPALIVE_SECONDS),
        "drain_seconds": seconds_text(settings.STREAM_DRAIN_SECONDS),
        "responses_retention_days": settings.RESPONSES_RETENTION_DAYS,
        "max_request_bytes": settings.MAX_REQUEST_BYTES,
        "request_body_timeout": f"{settings.REQUEST_BODY_TIMEOUT_SECONDS:g}",
        "max_request_size": size_text(settings.MAX_REQUEST_BYTES, lang),
        "rate_window_seconds": WINDOW_MS // 1000,
        "default_completion_cap": DEFAULT_COMPLETION_CAP,
        "roles": ", ".join(f"`{role}`" for role in sorted(ROLES)),
        "params": {name: f"[{low}, {high}]" for name, (low, high) in PARAM_RANGES.items()},
        "models": rows,
        "example_model": example.id if example else "<model-id>",
        "example_embedding_model": embedding.id if embedding else "<embedding-model-id>",
        "anthropic_model": _anthropic_model(rows) or (example.id if example else "<model-id>"),
        "example": example_figures(example),
        "errors": API_ERRORS,
        "stream_error_example": _stream_error_example(),
        "invalid_request_example": _invalid_request_example(),
        "rate_limit_example": _rate_limit_example(),
        "links": {page.slug.replace("-", "_"): docs_url(page.slug, lang) for page in PAGES},
    }
