"""OpenRouter's request fields that steer routing: `models`, `provider`, `reasoning`, `route`, `transforms`,
`usage`. Validated here (a 400 names the field, e.g. `provider.order`) and never forwarded upstream.

What each field does is in the docs (docs/content/*/routing.md); what is accepted and ignored is listed
there too, and in IGNORED_PROVIDER_FIELDS below.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from .errors import invalid

# Never sent to a provider: they are instructions to the router.
ROUTER_FIELDS = frozenset({"models", "provider", "reasoning", "route", "transforms", "usage"})

MAX_MODELS = 10
SORTS = frozenset({"price", "throughput", "latency"})
EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh")
# OpenRouter's provider fields that are accepted and ignored here: the catalog does not record them.
IGNORED_PROVIDER_FIELDS = frozenset(
    {"quantizations", "enforce_distillable_text", "preferred_min_throughput", "preferred_max_latency"}
)
_PROVIDER_FIELDS = frozenset(
    {"order", "only", "ignore", "allow_fallbacks", "sort", "max_price", "require_parameters", "data_collection", "zdr"}
)
_MAX_PRICE_FIELDS = ("prompt", "completion", "request")
_MAX_PRICE_IGNORED = frozenset({"image", "audio"})


@dataclass(frozen=True, slots=True)
class MaxPrice:
    """The most the client will pay: USD per 1M prompt / completion tokens, USD per request (None: no cap)."""

    prompt: Decimal | None = None
    completion: Decimal | None = None
    request: Decimal | None = None


@dataclass(frozen=True, slots=True)
class ProviderPreferences:
    """The request's `provider` object. Provider names are compared in lower case."""

    order: tuple[str, ...] = ()
    only: frozenset[str] | None = None
    ignore: frozenset[str] = frozenset()
    allow_fallbacks: bool = True
    sort: str | None = None
    max_price: MaxPrice | None = None
    require_parameters: bool = False
    data_collection: str = "allow"

    @property
    def filters_routes(self) -> bool:
        """Whether anything here may drop, reorder or cut a model's routes (the common answer, no, is one
        identity check: provider_parse() answers the defaults with DEFAULT_PROVIDER itself)."""
        return self is not DEFAULT_PROVIDER and self != DEFAULT_PROVIDER


DEFAULT_PROVIDER = ProviderPreferences()


@dataclass(frozen=True, slots=True)
class Reasoning:
    """The request's `reasoning` object, as OpenAI-style routes take it (`reasoning_effort`)."""

    effort: str | None
    exclude: bool


def models_parse(body: dict[str, Any]) -> tuple[str, ...]:
    """The models to try, in order: `model` (when given) and then `models`, each once."""
    model = body.get("model")
    listed = body.get("models")
    names: list[str] = []
    if model is not None:
        if not _is_model_id(model):
            raise invalid("'model' must be a model id from GET /v1/models.", "model")
        names.append(model)
    if listed is not None:
        if not isinstance(listed, list) or not listed:
            raise invalid("'models' must be a non-empty array of model ids.", "models")
        if len(listed) > MAX_MODELS:
            raise invalid(f"'models' lists at most {MAX_MODELS} model ids.", "models")
        for i, name in enumerate(listed):
            if not _is_model_id(name):
                raise invalid(f"'models[{i}]' must be a model id from GET /v1/models.", f"models[{i}]")
            if name not in names:
                names.append(name)
    if not names:
        raise invalid("'model' is required: a model id from GET /v1/models (or 'models', a list of them).", "model")
    return tuple(names)


def _is_model_id(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip()) and value.isprintable()


def _names(value: Any, param: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise invalid(f"'{param}' must be an array of provider names.", param)
    return tuple(dict.fromkeys(v.strip().lower() for v in value))


def _flag(value: Any, param: str, default: bool) -> bool:
    if value is None:
        return default
    if not isinstance(value, bool):
        raise invalid(f"'{param}' must be a boolean.", param)
    return value


def _amount(value: Any, param: str) -> Decimal:
    """A price cap given as a number or a numeric string, as OpenRouter takes it."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise invalid(f"'{param}' must be a number (USD).", param)
    if isinstance(value, float) and not math.isfinite(value):
        raise invalid(f"'{param}' must be a non-negative number (USD).", param)
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        raise invalid(f"'{param}' must be a number (USD).", param)
    if not amount.is_finite() or amount < 0:
        raise invalid(f"'{param}' must be a non-negative number (USD).", param)
    return amount


def _max_price(value: Any) -> MaxPrice | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise invalid(
            "'provider.max_price' must be an object with 'prompt', 'completion' or 'request'.", "provider.max_price"
        )
    for name in value:
        if name not in _MAX_PRICE_FIELDS and name not in _MAX_PRICE_IGNORED:
            raise invalid(f"'provider.max_price.{name}' is not a price field.", f"provider.max_price.{name}")
    caps = {
        name: None if value.get(name) is None else _amount(value[name], f"provider.max_price.{name}")
        for name in _MAX_PRICE_FIELDS
    }
    cap = MaxPrice(**caps)
    return None if cap == MaxPrice() else cap


def _sort(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, dict):  # OpenRouter's {"by": ..., "partition": ...}; the partition is ours to choose
        by = value.get("by")
        if by not in SORTS:
            raise invalid("'provider.sort.by' must be one of latency, price, throughput.", "provider.sort.by")
        return by
    if value not in SORTS:
        raise invalid("'provider.sort' must be one of latency, price, throughput.", "provider.sort")
    return value


def provider_parse(value: Any) -> ProviderPreferences:
    """The request's `provider` object (absent or null: the defaults)."""
    if value is None:
        return DEFAULT_PROVIDER
    if not isinstance(value, dict):
        raise invalid("'provider' must be an object.", "provider")
    for name in value:
        if name not in _PROVIDER_FIELDS and name not in IGNORED_PROVIDER_FIELDS:
            raise invalid(f"'provider.{name}' is not a provider preference.", f"provider.{name}")
    if _flag(value.get("zdr"), "provider.zdr", False):
        raise invalid(
            "'provider.zdr' is not supported: no provider declares zero data retention here. "
            "Use 'provider.data_collection': 'deny'.",
            "provider.zdr",
        )
    data_collection = value.get("data_collection")
    if data_collection is not None and data_collection not in ("allow", "deny"):
        raise invalid("'provider.data_collection' must be 'allow' or 'deny'.", "provider.data_collection")
    only = value.get("only")
    preferences = ProviderPreferences(
        order=() if value.get("order") is None else _names(value["order"], "provider.order"),
        only=None if only is None else frozenset(_names(only, "provider.only")),
        ignore=frozenset() if value.get("ignore") is None else frozenset(_names(value["ignore"], "provider.ignore")),
        allow_fallbacks=_flag(value.get("allow_fallbacks"), "provider.allow_fallbacks", True),
        sort=_sort(value.get("sort")),
        max_price=_max_price(value.get("max_price")),
        require_parameters=_flag(value.get("require_parameters"), "provider.require_parameters", False),
        data_collection=data_collection or "allow",
    )
    return DEFAULT_PROVIDER if preferences == DEFAULT_PROVIDER else preferences


def reasoning_effort_for_budget(budget: int) -> str:
    """The `reasoning_effort` an OpenAI-style route gets for `reasoning.max_tokens` (a token budget).

    OpenAI-style routes take an effort, not a budget; the thresholds follow OpenRouter's effort shares
    (low ≈ 20 %, medium ≈ 50 %, high ≈ 80 % of a 16k-token answer).
    """
    if budget < 4096:
        return "low"
    if budget < 12288:
        return "medium"
    return "high"


def reasoning_parse(value: Any) -> Reasoning | None:
    """The request's `reasoning` object (absent or null: None, nothing asked)."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise invalid("'reasoning' must be an object.", "reasoning")
    for name in value:
        if name not in ("effort", "max_tokens", "exclude", "enabled"):
            raise invalid(f"'reasoning.{name}' is not a reasoning option.", f"reasoning.{name}")
    effort, budget = value.get("effort"), value.get("max_tokens")
    if effort is not None and budget is not None:
        raise invalid("Give one of 'reasoning.effort' and 'reasoning.max_tokens', not both.", "reasoning")
    if effort is not None and effort not in EFFORTS:
        raise invalid(f"'reasoning.effort' must be one of {', '.join(EFFORTS)}.", "reasoning.effort")
    if budget is not None and (not isinstance(budget, int) or isinstance(budget, bool) or not 0 <= budget < 2**31):
        raise invalid("'reasoning.max_tokens' must be an integer between 0 and 2147483647.", "reasoning.max_tokens")
    exclude = _flag(value.get("exclude"), "reasoning.exclude", False)
    enabled = _flag(value.get("enabled"), "reasoning.enabled", None)  # type: ignore[arg-type]
    if budget is not None:
        effort = "none" if budget == 0 else reasoning_effort_for_budget(budget)
    elif effort is None and enabled:
        effort = "medium"
    if enabled is False:
        effort = None  # off: ask for nothing, the route's default applies
    return Reasoning(effort=effort, exclude=exclude)


def router_fields_check(body: dict[str, Any]) -> None:
    """`route`, `transforms` and `usage` are accepted (and ignored) when well formed."""
    route = body.get("route")
    if route is not None and route != "fallback":
        raise invalid("'route' must be 'fallback'.", "route")
    transforms = body.get("transforms")
    if transforms is not None and (not isinstance(transforms, list) or not all(isinstance(t, str) for t in transforms)):
        raise invalid("'transforms' must be an array of strings.", "transforms")
    usage = body.get("usage")
    if usage is not None:
        if not isinstance(usage, dict):
            raise invalid("'usage' must be an object.", "usage")
        _flag(usage.get("include"), "usage.include", True)
