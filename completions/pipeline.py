"""The request's way through the router, for every API surface (POST /v1/chat/completions and its kin).

Top to bottom, each step in the module that owns it:

1. read the body (here) and parse it (the surface, completions/surfaces/);
2. authenticate the key (accounts/principals.py: its expiry and model allow-list too) and count it against
   its rate limit (ratelimit.py);
3. find the candidates: the model's routes (and its fallback models' routes) as the request's `provider`
   preferences order them, with their prices (candidates.py, routing.py);
4. plan the generation and hold its worst case (settlement.py, billing/services.py), with the upstream
   call started beside the hold where that is safe (early_start.py);
5. call the first route that answers, each in the API it speaks (completions/upstreams/);
6. relay the answer and settle it exactly once (relay.py, settlement.py).

These views are plain Django views: DRF's request wrapping and content negotiation would do nothing here
but cost time on every call. mlrouter/wsgi.py serves them straight from WSGI; their OpenAPI operations
come from the surfaces (completions/schema.py).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions

from accounts.authentication import principal_authenticate
from billing.services import AccountInactive, InsufficientFunds
from core.db import DATABASE_DOWN
from core.green import TimedOut, time_limit
from core.metrics import served_mark
from core.usd import usd_4dp
from docs.pages import docs_url

from .candidates import Candidate, candidates_models, candidates_select
from .early_start import hold_place_beside, upstream_open_early
from .errors import (
    ApiError,
    api_error_of,
    database_unavailable,
    error_response,
    openai_error,
    upstream_answered_mark,
)
from .models import Generation
from .ratelimit import rate_limit_hit
from .relay import relay_plain, relay_stream, release_db
from .routing import CatalogEntry
from .settlement import (
    Outcome,
    SpendLimitReached,
    Started,
    affordable_max_tokens,
    generation_close,
    generation_plan,
)
from .spool import commit_or_spool
from .surfaces import SURFACES, Surface, messages
from .surfaces.base import SurfaceRequest
from .upstreams import Outgoing, native_of, outgoing, serves, upstream_open

log = logging.getLogger(__name__)

TOPUP_HINT = "Top up with /topup in @ML_Router_bot."

View = Callable[[HttpRequest], HttpResponse]


def rate_limit_message(limit: int, retry_s: int, docs: str, scope: str = "key") -> str:
    """The 429 message (the docs show it too): the limit, when to retry, where to read more."""
    who = "this key allows" if scope == "key" else "your account (all its keys together) allows"
    return f"Rate limit reached: {who} {limit} requests per minute. Retry in {retry_s} s. See {docs}"


def surface_view(surface: Surface) -> View:
    """The POST view of one surface."""

    @csrf_exempt  # API clients send no CSRF token
    def view(request: HttpRequest) -> HttpResponse:
        try:
            if request.method != "POST":
                raise exceptions.MethodNotAllowed(request.method)
            return serve(request, surface)
        except (ApiError, exceptions.APIException) as exc:
            error = api_error_of(exc, request.method or "")
            assert error is not None
            response = error_response(error, surface.error_body or openai_error)
            if isinstance(exc, exceptions.MethodNotAllowed):
                response["Allow"] = "POST"
            return response
        except DATABASE_DOWN as exc:
            return error_response(database_unavailable(exc), surface.error_body or openai_error)

    view.__name__ = view.__qualname__ = f"{surface.name}_view"
    view.__doc__ = f"POST /v1/{surface.path}"
    return view


@csrf_exempt  # API clients send no CSRF token
def messages_count_tokens(request: HttpRequest) -> HttpResponse:
    """POST /v1/messages/count_tokens: our estimate of the input tokens; free (no hold, no ledger row)."""
    try:
        if request.method != "POST":
            raise exceptions.MethodNotAllowed(request.method)
        raw = _read_body(request)
        tokens = messages.count_tokens(raw)
        principal_authenticate(messages.authorization(request))
        return HttpResponse(json.dumps({"input_tokens": tokens}), content_type="application/json")
    except (ApiError, exceptions.APIException) as exc:
        error = api_error_of(exc, request.method or "")
        assert error is not None
        return error_response(error, messages.error_body)
    except DATABASE_DOWN as exc:
        return error_response(database_unavailable(exc), messages.error_body)


def serve(request: HttpRequest, surface: Surface) -> HttpResponse:
    """One request, from its body to the relayed answer (see the module docstring for the steps)."""
    raw = _read_body(request)
    parsed = surface.parse(raw)
    authorization = surface.authorization(request) if surface.authorization else request.META.get("HTTP_AUTHORIZATION")
    principal = principal_authenticate(authorization or "")
    decision = rate_limit_hit(key_id=principal.key_id, limit=principal.rpm_limit, account_id=principal.account_id)
    headers = decision.headers()
    if not decision.allowed:
        docs = request.build_absolute_uri(docs_url("rate-limits#rate_limit"))
        raise ApiError(
            429,
            rate_limit_message(decision.limit, decision.reset_s, docs, decision.scope),
            code="rate_limit",
            headers={**headers, "Retry-After": str(decision.reset_s)},
        )
    refused = principal.model_refused(parsed.models)
    if refused is not None:
        raise ApiError(
            403,
            f"This API key may not use the model '{refused}'. Ask for a key that allows it.",
            code="model_not_allowed",
            param="model" if refused == parsed.models[0] else "models",
            headers=headers,
        )
    started_at = timezone.now()
    try:
        if surface.bind is not None:
            parsed = surface.bind(parsed, principal)
        candidates = candidates_select(
            models=parsed.models, provider=parsed.provider, parameters=parsed.parameters, at=started_at
        )
        # Only routes whose API serves this surface, natively or translated (a fallback may cross kinds).
        candidates = tuple(c for c in candidates if serves(surface, c.route.api, parsed))
        if not candidates:
            untranslatable = getattr(parsed, "untranslatable", None)
            if untranslatable is not None:
                raise untranslatable
            raise ApiError(
                404, f"No route of '{parsed.model}' serves /v1/{surface.path}.", code="no_route", param="model"
            )
    except ApiError as error:
        error.headers = headers
        raise
    entries = candidates_models(candidates)
    served_mark(request, entries[0].public_id)
    started = generation_plan(
        principal=principal,
        surface=surface,
        request=parsed,
        entries=entries,
        started_at=started_at,
        origin=request.META.get("HTTP_HTTP_REFERER", ""),
        app=request.META.get("HTTP_X_TITLE", ""),
        request_id=getattr(request, "request_id", ""),  # set by RequestIdMiddleware (mlrouter/middleware.py)
    )

    def send_for(candidate: Candidate) -> Outgoing:
        return outgoing(surface, parsed, request, candidate)

    early = upstream_open_early(started, candidates, send_for)
    try:
        hold_place_beside(started, early)
    except InsufficientFunds as exc:
        error = _insufficient(exc, parsed, entries, started, request)
        error.headers = headers
        raise error
    except AccountInactive:
        raise ApiError(403, "This account is suspended. Contact support.", code="account_suspended", headers=headers)
    except SpendLimitReached as exc:
        raise ApiError(
            403,
            f"This key reached its spend limit of {usd_4dp(exc.limit)} for the period.",
            code="key_spend_limit",
            headers=headers,
        )
    release_db()
    try:
        call = early.result() if early is not None else upstream_open(candidates, send_for)
    except ApiError as error:
        outcome = Outcome(Generation.Status.FAILED, error=error.message[:500], charge=False)
        commit_or_spool(generation_close(started=started, outcome=outcome))
        error.headers = headers
        raise
    started.served_by(call.candidate.entry)
    served_mark(request, call.candidate.entry.public_id, call.route.provider_name)
    call.passthrough = native_of(surface, call.route.api)
    # From here the request may be charged: an unexpected error must not invite the client to retry.
    upstream_answered_mark(request, started.generation_id)
    if parsed.stream:
        return relay_stream(started, call, headers)
    return relay_plain(started, call, headers)


def _read_body(request: HttpRequest) -> bytes:
    """The JSON body: 415 for another media type, 413 above `MAX_REQUEST_BYTES`, 408 when it stalls."""
    _media_type_check(request)
    limit = settings.MAX_REQUEST_BYTES
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    too_big = ApiError(413, f"The request body is larger than {limit} bytes.", code="request_too_large")
    if length > limit:
        raise too_big
    seconds = settings.REQUEST_BODY_TIMEOUT_SECONDS
    try:
        with time_limit(seconds):
            if not length and request.META.get("wsgi.input_terminated"):
                # A chunked upload has no Content-Length, for which Django reads nothing; the server
                # (gunicorn) marks the input as ending where the body does, so it can be read to its end.
                raw = request.META["wsgi.input"].read(limit + 1)
            else:
                raw = request.body
    except RequestDataTooBig:
        raise too_big
    except TimedOut:
        raise ApiError(408, f"The request body did not arrive within {seconds:g} s.", code="request_timeout")
    if len(raw) > limit:
        raise too_big
    return raw


def _media_type_check(request: HttpRequest) -> None:
    """415 unless the body is declared JSON (`application/json`, any parameters) or not declared at all."""
    declared = request.META.get("CONTENT_TYPE", "")
    media_type = declared.split(";", 1)[0].strip().lower()
    if media_type and media_type != "application/json":
        raise ApiError(
            415,
            f"The request body must be JSON, sent as Content-Type: application/json, not {media_type[:100]!r}.",
            code="unsupported_media_type",
        )


def _insufficient(
    exc: InsufficientFunds,
    parsed: SurfaceRequest,
    entries: tuple[CatalogEntry, ...],
    started: Started,
    request: HttpRequest,
) -> ApiError:
    minimum = settings.MIN_BALANCE_USD
    docs = request.build_absolute_uri(docs_url("errors#insufficient_funds"))
    if exc.available < minimum:
        message = (
            f"Insufficient funds: your available balance is {usd_4dp(exc.available)}, below the "
            f"{usd_4dp(minimum)} minimum. {TOPUP_HINT} See {docs}"
        )
    else:
        # With fallback models, what the dearest of them allows.
        affordable = min(affordable_max_tokens(exc.available, parsed, e.price_at(started.started_at)) for e in entries)
        message = (
            f"Insufficient funds: this request may cost up to {usd_4dp(started.hold_amount)} and your available "
            f"balance is {usd_4dp(exc.available)}. It affords max_tokens={affordable}; set a lower max_tokens or "
            f"top up. {TOPUP_HINT} See {docs}"
        )
    return ApiError(402, message, code="insufficient_funds")


# One view per registered surface: the URL map and the WSGI entry point serve these same objects.
VIEWS: dict[str, View] = {surface.path: surface_view(surface) for surface in SURFACES}
