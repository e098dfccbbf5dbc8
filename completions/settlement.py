"""Settlement: a generation's money. Hold funds and record it before the upstream call, settle it
exactly once after (the ledger itself is billing/services.py; the statements billing/statements.py).

Charging rules (README, "What a request costs"): a request is charged for the usage the upstream
reports when that usage is plausible, and otherwise for our estimate — prompt: one token per four
bytes of the request; completion: one token per four characters the upstream actually generated
(error texts excluded). A request on which no route answered is never charged. A charge never
exceeds the hold placed for the request's worst case.
"""

from __future__ import annotations

import base64
import logging
import math
import secrets
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.db.models import Case, DecimalField, Sum, When
from django.utils import timezone

from accounts.models import ApiKey
from accounts.principals import KeyPrincipal
from billing.models import Hold, Price
from billing.money import PER_MILLION, ZERO, Cost, Usage, cost_for, usd
from billing.services import hold_place, hold_release, hold_settle
from billing.statements import RowInsert, RowUpdate
from core.metrics import generation_observe, upstream_error_observe

from .models import Generation
from .routing import CatalogEntry, RouteInfo
from .surfaces.base import Surface, SurfaceRequest

log = logging.getLogger(__name__)

DEFAULT_COMPLETION_CAP = 4096
# Far above any real request's cost, and below what the column holds (10**10).
_UPSTREAM_COST_MAX = Decimal(10**9)
# The lengths of Generation.origin and Generation.app.
ORIGIN_MAX = 300
APP_MAX = 200


class SpendLimitReached(Exception):
    """The key's spend limit for its period would be exceeded by this request."""

    def __init__(self, *, limit: Decimal, spent: Decimal) -> None:
        super().__init__(f"spend limit {limit} USD reached ({spent} USD spent this period)")
        self.limit = limit
        self.spent = spent


def generation_id_new() -> str:
    """A new public generation id: gen-<unix time>-<20 random base32 characters (100 bits)>."""
    return f"gen-{int(time.time())}-{base64.b32encode(secrets.token_bytes(15)).decode().lower()[:20]}"


def completion_cap(request: SurfaceRequest, entry: CatalogEntry) -> int:
    """The most completion tokens the request can produce (all `n` choices together)."""
    cap = request.max_tokens or entry.max_output_tokens or DEFAULT_COMPLETION_CAP
    if entry.max_output_tokens:
        cap = min(cap, entry.max_output_tokens)
    return cap * request.n


def worst_case_cost(request: SurfaceRequest, entry: CatalogEntry, price: Price) -> Cost:
    """What the request can cost at most: the hold placed for it."""
    prompt = request.prompt_tokens_upper_bound
    # A prompt written to the cache may cost more than a plain one: the worst case is all of it written.
    written = prompt if price.cache_write_prompt is not None and price.cache_write_prompt > price.prompt else 0
    return cost_for(Usage(prompt, completion_cap(request, entry), cache_write_tokens=written), price)


def affordable_max_tokens(available: Decimal, request: SurfaceRequest, price: Price) -> int:
    """How many completion tokens (max_tokens) the available balance covers after the prompt."""
    prompt_cost = cost_for(Usage(request.prompt_tokens_upper_bound, 0), price).total
    room = available - prompt_cost
    if room <= ZERO:
        return 0
    if price.completion <= ZERO:
        return DEFAULT_COMPLETION_CAP
    return max(int(room * PER_MILLION / price.completion / max(request.n, 1)), 0)


def spend_period_start(period: str, now: datetime) -> datetime | None:
    """When the current spend period of a key began (None: the limit never resets)."""
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == ApiKey.SpendPeriod.DAILY:
        return day
    if period == ApiKey.SpendPeriod.WEEKLY:
        return day - timedelta(days=day.weekday())
    if period == ApiKey.SpendPeriod.MONTHLY:
        return day.replace(day=1)
    return None


def key_spent(*, key_id: int, since: datetime | None) -> Decimal:
    """What a key spent since `since`, counting in-flight requests at their hold."""
    rows = Generation.objects.filter(api_key_id=key_id)
    if since is not None:
        rows = rows.filter(started_at__gte=since)
    total = rows.aggregate(
        s=Sum(
            Case(
                When(status=Generation.Status.PENDING, then="hold_amount"),
                default="cost",
                output_field=DecimalField(max_digits=20, decimal_places=10),
            )
        )
    )["s"]
    return total or ZERO


@dataclass
class Started:
    """A generation whose funds are held; everything settlement needs."""

    generation_id: str
    principal: KeyPrincipal
    entry: CatalogEntry
    price: Price
    surface: Surface
    request: SurfaceRequest
    hold_amount: Decimal
    started_at: datetime
    request_id: str = ""
    clock: float = field(default_factory=time.monotonic)
    origin: str = ""
    app: str = ""

    def served_by(self, entry: CatalogEntry) -> None:
        """The model that answered (a fallback of the request's `models`): its price, at the request's start,
        is what is charged. The hold, placed for the dearest candidate, covers it."""
        if entry is not self.entry:
            self.entry = entry
            self.price = entry.price_at(self.started_at)


def header_text(value: str, limit: int) -> str:
    """A request header kept on the generation: printable characters only, trimmed, at most `limit` long."""
    # Headers can be kilobytes long: look at a bounded prefix only.
    return "".join(c for c in value[: limit * 2] if c.isprintable()).strip()[:limit]


def generation_plan(
    *,
    principal: KeyPrincipal,
    surface: Surface,
    request: SurfaceRequest,
    entries: tuple[CatalogEntry, ...],
    started_at: datetime | None = None,
    origin: str = "",
    app: str = "",
    request_id: str = "",
) -> Started:
    """The request's generation id, price version and hold; nothing is written.

    `entries` are the models that may serve it, in order. It starts as the first; the hold is the worst
    case of the dearest, so whichever answers is covered. `origin` and `app` are the request's
    HTTP-Referer and X-Title headers, recorded as sent (sanitized).
    """
    started_at = started_at or timezone.now()
    entry = entries[0]
    price = entry.price_at(started_at)
    amount = max(worst_case_cost(request, e, e.price_at(started_at)).total for e in entries)
    return Started(
        generation_id_new(),
        principal,
        entry,
        price,
        surface,
        request,
        amount,
        started_at,
        request_id=request_id,
        origin=header_text(origin, ORIGIN_MAX),
        app=header_text(app, APP_MAX),
    )


def generation_start(*, started: Started) -> Hold:
    """Hold the request's worst-case cost and record the generation, in one transaction.

    Raises billing's InsufficientFunds / AccountInactive, or SpendLimitReached.
    """
    principal = started.principal
    if principal.spend_limit is not None:
        since = spend_period_start(principal.spend_period, started.started_at)
        spent = key_spent(key_id=principal.key_id, since=since)
        if spent + started.hold_amount > principal.spend_limit:
            raise SpendLimitReached(limit=principal.spend_limit, spent=spent)
    row = {
        "id": started.generation_id,
        "account_id": principal.account_id,
        "api_key_id": principal.key_id,
        "model_id": started.entry.model_id,
        "price_id": started.price.pk,
        "surface": started.surface.name,
        "stream": started.request.stream,
        "user": started.request.user,
        "origin": started.origin,
        "app": started.app,
        "request_id": started.request_id,
        "hold_amount": started.hold_amount,
        "started_at": started.started_at,
    }
    return hold_place(
        account_id=principal.account_id,
        amount=started.hold_amount,
        reference=started.generation_id,
        also=_insert(row),
    )


def _insert(row: dict[str, Any]) -> RowInsert:
    """A new Generation, written together with its hold (in the same statement on PostgreSQL)."""
    return RowInsert(Generation, row)


def _finish(generation_id: str, changes: dict[str, Any]) -> RowUpdate:
    """A Generation's ending, written together with its charge; its cost is the charge's amount."""
    return RowUpdate(Generation, generation_id, changes, charge_field="cost")


@dataclass
class Outcome:
    """How a request ended, as the relay saw it."""

    status: str
    route: RouteInfo | None = None
    usage: Any = None
    completion_chars: int = 0
    finish_reason: str = ""
    upstream_id: str = ""
    error: str = ""
    ttft_ms: int | None = None
    charge: bool = True


@dataclass
class Finished:
    """What was charged and why."""

    cost: Decimal
    usage: Usage
    usage_source: str
    breakdown: Cost | None


def _count(usage: dict, name: str) -> int | None:
    value = usage.get(name, 0)
    if value is None:
        return 0
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def usage_resolve(started: Started, outcome: Outcome) -> tuple[Usage, str, str]:
    """The usage to charge, its source (`upstream` or `estimated`) and why an estimate was used."""
    estimate = Usage(started.request.prompt_tokens_estimate, math.ceil(outcome.completion_chars / 4))
    usage = outcome.usage
    if not isinstance(usage, dict):
        return estimate, Generation.UsageSource.ESTIMATED, "the upstream reported no usage"
    prompt, completion = _count(usage, "prompt_tokens"), _count(usage, "completion_tokens")
    details = usage.get("prompt_tokens_details") or {}
    cached = _count(details, "cached_tokens") if isinstance(details, dict) else 0
    written = _count(details, "cache_write_tokens") if isinstance(details, dict) else 0
    if prompt is None or completion is None or cached is None or written is None:
        return estimate, Generation.UsageSource.ESTIMATED, f"the upstream reported invalid usage {usage!r}"
    prompt_cap = max(started.request.prompt_tokens_upper_bound, started.entry.context_length)
    if prompt > prompt_cap or completion > completion_cap(started.request, started.entry):
        return estimate, Generation.UsageSource.ESTIMATED, f"the upstream reported implausible usage {usage!r}"
    cached = min(cached, prompt)
    return Usage(prompt, completion, cached, min(written, prompt - cached)), Generation.UsageSource.UPSTREAM, ""


def _upstream_cost(usage: Any) -> Decimal | None:
    """The cost the upstream reported (kept for reconciliation), or None when it is not a storable amount."""
    value = usage.get("cost") if isinstance(usage, dict) else None
    if not isinstance(value, int | float) or isinstance(value, bool):
        return None
    cost = Decimal(str(value))
    # Whatever the upstream says must not break settlement.
    return usd(cost) if cost.is_finite() and abs(cost) < _UPSTREAM_COST_MAX else None


def upstream_cost_resolve(outcome: Outcome, usage: Usage) -> tuple[Decimal | None, str]:
    """What the generation cost us upstream and where that comes from: the provider's reported cost,
    else the charged usage at the route's cost price; (None, "") when neither is known."""
    reported = _upstream_cost(outcome.usage)
    if reported is not None:
        return reported, Generation.UpstreamCostSource.REPORTED
    rates = outcome.route.cost_rates if outcome.route is not None else None
    if rates is None:
        return None, ""
    return cost_for(usage, rates).total, Generation.UpstreamCostSource.COMPUTED


def generation_close(*, started: Started, outcome: Outcome) -> Closing:
    """Price how a generation ended; nothing is written until `Closing.commit()`."""
    common = {
        # The model that served and its price (a fallback model may have served, not the first).
        "model_id": started.entry.model_id,
        "price_id": started.price.pk,
        "status": outcome.status,
        "finish_reason": outcome.finish_reason[:32],
        "upstream_id": outcome.upstream_id[:200],
        "provider_id": outcome.route.provider_id if outcome.route else None,
        "upstream_model": outcome.route.upstream_model if outcome.route else "",
        "latency_ms": int((time.monotonic() - started.clock) * 1000),
        "ttft_ms": outcome.ttft_ms,
        "finished_at": timezone.now(),
    }
    if not outcome.charge:
        nothing = Finished(ZERO, Usage(0, 0), Generation.UsageSource.NONE, None)
        return Closing(started, nothing, {**common, "error": outcome.error}, charge=False, route=outcome.route)
    usage, source, why = usage_resolve(started, outcome)
    if why:
        log.warning("generation %s charged on an estimate: %s", started.generation_id, why)
    cost = cost_for(usage, started.price)
    charged = min(cost.total, started.hold_amount)
    upstream_cost, upstream_source = upstream_cost_resolve(outcome, usage)
    error = "; ".join(filter(None, [outcome.error, why]))
    if charged < cost.total:
        error = "; ".join(filter(None, [error, f"cost {cost.total} capped at the hold {charged}"]))
    changes = {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "cached_tokens": usage.cached_tokens,
        "cache_write_tokens": usage.cache_write_tokens,
        "usage_source": source,
        "upstream_cost": upstream_cost,
        "upstream_cost_source": upstream_source,
        "margin": None if upstream_cost is None else charged - upstream_cost,
        "error": error,
        **common,
    }
    finished = Finished(charged, usage, source, cost if charged == cost.total else None)
    return Closing(started, finished, changes, charge=True, cost=cost.total, route=outcome.route)


@dataclass
class Closing:
    """A generation's ending, priced: what it is charged is known before `commit()` writes it, once."""

    started: Started
    finished: Finished
    changes: dict[str, Any]
    charge: bool
    cost: Decimal = ZERO
    route: RouteInfo | None = None

    def commit(self) -> Finished:
        """Settle the hold (one charge) or release it, and finish the generation, in one transaction."""
        reference = self.started.generation_id
        if not self.charge:
            with transaction.atomic():
                hold_release(reference=reference, reason=self.changes["error"][:200] or "not charged")
                Generation.objects.filter(pk=reference).update(**self.changes)
            self._observe(ZERO)
            return self.finished
        entry = hold_settle(
            reference=reference,
            cost=self.cost,
            memo=self.started.entry.public_id,
            also=_finish(reference, self.changes),
        )
        if -entry.amount != self.finished.cost:
            # Settled before (a replay, or reconciliation after the hold expired): that charge stands.
            log.warning("generation %s was already settled at %s", reference, -entry.amount)
            self._observe(ZERO)
            return Finished(-entry.amount, self.finished.usage, self.finished.usage_source, None)
        self._observe(self.finished.cost)
        return self.finished

    def _observe(self, charged: Decimal) -> None:
        """Count the settled generation in the metrics (core/metrics.py), with what this commit charged."""
        provider = self.route.provider_name if self.route is not None else ""
        status = self.changes["status"]
        ttft_ms = self.changes["ttft_ms"]
        generation_observe(
            surface=self.started.surface.name,
            model=self.started.entry.public_id,
            provider=provider,
            status=status,
            seconds=self.changes["latency_ms"] / 1000,
            ttft_seconds=ttft_ms / 1000 if ttft_ms is not None else None,
            charged=charged,
        )
        if provider and status == Generation.Status.FAILED:
            # The provider answered, then broke off or sent what cannot be settled.
            upstream_error_observe(provider, "bad_answer")


def generation_finish(*, started: Started, outcome: Outcome) -> Finished:
    """Settle the hold (one charge) or release it, and finish the generation — once, in one transaction."""
    return generation_close(started=started, outcome=outcome).commit()
