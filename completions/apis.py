"""The /v1 API: chat completions, models, prices, generation lookup, key info."""

from __future__ import annotations

import json
import logging
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions
from rest_framework.request import Request
from rest_framework.views import APIView

from accounts.authentication import principal_authenticate
from accounts.models import Account, ApiKey
from accounts.principals import KeyPrincipal
from billing.models import Price
from billing.money import PER_MILLION
from billing.services import AccountInactive, InsufficientFunds
from docs.pages import docs_url

from .early_start import hold_place_beside, upstream_open_early
from .models import Generation
from .openai_format import ApiError, ChatRequest, decimal_text, error_response, parse_chat_request, upstream_body
from .ratelimit import rate_limit_hit
from .relay import relay_plain, relay_stream, release_db, settlements_wait_for
from .selectors import CatalogEntry, RouteInfo, catalog_entry, sellable_models
from .services import (
    Outcome,
    SpendLimitReached,
    affordable_max_tokens,
    generation_finish,
    generation_plan,
    key_spent,
    spend_period_start,
    worst_case_cost,
)
from .upstream import upstream_open

log = logging.getLogger(__name__)

TOPUP_HINT = "Top up with /topup in @ML_Router_bot."


def rate_limit_message(limit: int, retry_s: int, docs: str, scope: str = "key") -> str:
    """The 429 message (the docs show it too): the limit, when to retry, where to read more."""
    who = "this key allows" if scope == "key" else "your account (all its keys together) allows"
    return f"Rate limit reached: {who} {limit} requests per minute. Retry in {retry_s} s. See {docs}"


def api_exception_handler(exc: Exception, context: dict) -> HttpResponse | None:
    """DRF exception handler: every /v1 error in OpenAI's shape."""
    if isinstance(exc, ApiError):
        return error_response(exc)
    if isinstance(exc, exceptions.AuthenticationFailed | exceptions.NotAuthenticated):
        return error_response(ApiError(401, str(exc.detail), code="invalid_api_key"))
    if isinstance(exc, exceptions.PermissionDenied):
        return error_response(ApiError(403, str(exc.detail), code=str(exc.get_codes())))
    if isinstance(exc, Http404 | exceptions.NotFound):
        return error_response(ApiError(404, "Not found.", code="not_found"))
    if isinstance(exc, exceptions.MethodNotAllowed):
        # DRF's own text follows LANGUAGE_CODE; the API speaks English.
        method = context["request"].method
        return error_response(ApiError(405, f"Method {method} is not allowed here.", code="method_not_allowed"))
    if isinstance(exc, exceptions.APIException):
        return error_response(ApiError(exc.status_code, str(exc.detail), code=str(exc.get_codes())))
    return None


def usd_text(amount: Decimal) -> str:
    return f"${amount.quantize(Decimal('0.0001'))}"


def _insufficient(
    exc: InsufficientFunds, chat: ChatRequest, entry: CatalogEntry, started_price: Price, request: HttpRequest
) -> ApiError:
    minimum = settings.MIN_BALANCE_USD
    docs = request.build_absolute_uri(docs_url("errors#insufficient_funds"))
    if exc.available < minimum:
        message = (
            f"Insufficient funds: your available balance is {usd_text(exc.available)}, below the "
            f"{usd_text(minimum)} minimum. {TOPUP_HINT} See {docs}"
        )
    else:
        affordable = affordable_max_tokens(exc.available, chat, started_price)
        worst = worst_case_cost(chat, entry, started_price).total
        message = (
            f"Insufficient funds: this request may cost up to {usd_text(worst)} and your available balance "
            f"is {usd_text(exc.available)}. It affords max_tokens={affordable}; set a lower max_tokens or top up. "
            f"{TOPUP_HINT} See {docs}"
        )
    return ApiError(402, message, code="insufficient_funds")


@csrf_exempt  # API clients send no CSRF token
def chat_completions(request: HttpRequest) -> HttpResponse:
    """POST /v1/chat/completions — OpenAI-compatible, plain or streamed.

    The hot path is a plain Django view: DRF's request wrapping and content negotiation would do
    nothing here but cost time on every call. Its OpenAPI operation is in `completions/schema.py`.
    """
    try:
        if request.method != "POST":
            raise exceptions.MethodNotAllowed(request.method)
        return _chat(request)
    except (ApiError, exceptions.APIException) as exc:
        response = api_exception_handler(exc, {"request": request})
        if isinstance(exc, exceptions.MethodNotAllowed):
            response["Allow"] = "POST"
        return response


def internal_error() -> HttpResponse:
    """The answer to an unexpected error (it is logged, never described to the client)."""
    return error_response(
        ApiError(500, "The server had an error while processing your request. Retry later.", code="internal_error")
    )


def _chat(request: HttpRequest) -> HttpResponse:
    raw = _read_body(request)
    chat = parse_chat_request(raw)
    principal = principal_authenticate(request.META.get("HTTP_AUTHORIZATION", ""))
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
    entry = catalog_entry(chat.model)
    if entry is None:
        raise ApiError(
            404,
            f"The model '{chat.model}' does not exist or is not available. See GET /v1/models.",
            code="model_not_found",
            param="model",
            headers=headers,
        )
    started = generation_plan(principal=principal, chat=chat, entry=entry)

    def body_for(route: RouteInfo) -> bytes:
        return upstream_body(chat, route.upstream_model)

    early = upstream_open_early(started, entry.routes, body_for)
    try:
        hold_place_beside(started, early)
    except InsufficientFunds as exc:
        error = _insufficient(exc, chat, entry, started.price, request)
        error.headers = headers
        raise error
    except AccountInactive:
        raise ApiError(403, "This account is suspended. Contact support.", code="account_suspended")
    except SpendLimitReached as exc:
        raise ApiError(
            403,
            f"This key reached its spend limit of {usd_text(exc.limit)} for the period.",
            code="key_spend_limit",
            headers=headers,
        )
    release_db()
    try:
        call = early.result() if early is not None else upstream_open(entry.routes, body_for)
    except ApiError as error:
        generation_finish(
            started=started,
            outcome=Outcome(Generation.Status.FAILED, error=error.message[:500], charge=False),
        )
        error.headers = headers
        raise
    if chat.stream:
        return relay_stream(started, call, headers)
    return relay_plain(started, call, headers)


def _read_body(request: HttpRequest) -> bytes:
    limit = settings.MAX_REQUEST_BYTES
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    too_big = ApiError(413, f"The request body is larger than {limit} bytes.", code="request_too_large")
    if length > limit:
        raise too_big
    try:
        if not length and request.META.get("wsgi.input_terminated"):
            # A chunked upload has no Content-Length, for which Django reads nothing; the server
            # (gunicorn) marks the input as ending where the body does, so it can be read to its end.
            raw = request.META["wsgi.input"].read(limit + 1)
        else:
            raw = request.body
    except RequestDataTooBig:
        raise too_big
    if len(raw) > limit:
        raise too_big
    return raw


def _per_token(per_million: Decimal | None) -> str | None:
    return None if per_million is None else decimal_text(per_million / PER_MILLION)


def model_json(entry: CatalogEntry, created: int, name: str) -> dict[str, Any]:
    price = entry.price
    pricing = {
        "prompt": _per_token(price.prompt),
        "completion": _per_token(price.completion),
        "request": decimal_text(price.request),
    }
    if price.cached_prompt is not None:
        pricing["input_cache_read"] = _per_token(price.cached_prompt)
    return {
        "id": entry.public_id,
        "object": "model",
        "created": created,
        "owned_by": entry.public_id.split("/", 1)[0] if "/" in entry.public_id else "mlrouter",
        "name": name,
        "context_length": entry.context_length,
        "max_output_tokens": entry.max_output_tokens,
        "pricing": pricing,
    }


def _listed() -> list[tuple[CatalogEntry, Any]]:
    out = []
    for model in sellable_models():
        entry = catalog_entry(model.public_id)
        if entry is not None:
            out.append((entry, model))
    return out


class ModelsView(APIView):
    """GET /v1/models — what is sold (OpenAI list shape, plus context length and per-token pricing)."""

    permission_classes: list = []

    @extend_schema(responses={200: OpenApiTypes.OBJECT}, summary="List models", operation_id="models_list")
    def get(self, request: Request) -> JsonResponse:
        data = [model_json(entry, int(model.created_at.timestamp()), model.name) for entry, model in _listed()]
        return JsonResponse({"object": "list", "data": data})


class ModelDetailView(APIView):
    """GET /v1/models/{id} — one model."""

    permission_classes: list = []

    @extend_schema(responses={200: OpenApiTypes.OBJECT}, summary="Retrieve a model", operation_id="models_retrieve")
    def get(self, request: Request, model_id: str) -> JsonResponse:
        for entry, model in _listed():
            if entry.public_id == model_id:
                return JsonResponse(model_json(entry, int(model.created_at.timestamp()), model.name))
        raise ApiError(404, f"The model '{model_id}' does not exist.", code="model_not_found", param="model")


class PricesView(APIView):
    """GET /v1/prices — the price list in USD per 1M tokens."""

    permission_classes: list = []

    @extend_schema(responses={200: OpenApiTypes.OBJECT}, summary="Price list (USD per 1M tokens)")
    def get(self, request: Request) -> JsonResponse:
        data = []
        for entry, model in _listed():
            price = entry.price
            data.append(
                {
                    "model": entry.public_id,
                    "name": model.name,
                    "prompt": decimal_text(price.prompt),
                    "completion": decimal_text(price.completion),
                    "cached_prompt": None if price.cached_prompt is None else decimal_text(price.cached_prompt),
                    "request": decimal_text(price.request),
                    "effective_from": price.effective_from.isoformat(),
                }
            )
        return JsonResponse({"object": "list", "currency": "USD", "unit": "1M tokens", "data": data})


def _caller(request: Request) -> KeyPrincipal:
    if not isinstance(request.user, KeyPrincipal):
        raise exceptions.NotAuthenticated("Send 'Authorization: Bearer orb_live_…'.")
    return request.user


class GenerationView(APIView):
    """GET /v1/generation?id=gen-… — one of your generations: tokens, cost, latency, status."""

    @extend_schema(
        parameters=[OpenApiParameter("id", str, required=True)],
        responses={200: OpenApiTypes.OBJECT},
        summary="Look up a generation",
    )
    def get(self, request: Request) -> JsonResponse:
        principal = _caller(request)
        settlements_wait_for(principal.account_id)
        generation_id = request.query_params.get("id", "")
        if not generation_id:
            raise ApiError(400, "'id' is required.", code="invalid_request", param="id")
        gen = (
            Generation.objects.select_related("model").filter(pk=generation_id, account_id=principal.account_id).first()
        )
        if gen is None:
            raise ApiError(404, f"Generation '{generation_id}' not found.", code="not_found", param="id")
        data = {
            "id": gen.id,
            "model": gen.model.public_id,
            "status": gen.status,
            "stream": gen.stream,
            "created_at": gen.started_at.isoformat(),
            "finished_at": gen.finished_at.isoformat() if gen.finished_at else None,
            "prompt_tokens": gen.prompt_tokens,
            "completion_tokens": gen.completion_tokens,
            "cached_tokens": gen.cached_tokens,
            "usage_source": gen.usage_source,
            "cost": "\x00COST\x00",
            "latency_ms": gen.latency_ms,
            "ttft_ms": gen.ttft_ms,
            "finish_reason": gen.finish_reason or None,
            "user": gen.user or None,
        }
        return _json_with_money({"data": data}, {"\x00COST\x00": gen.cost})


class KeyView(APIView):
    """GET /v1/key — the calling key's limits and usage, and the account's balance."""

    @extend_schema(responses={200: OpenApiTypes.OBJECT}, summary="Current key and balance")
    def get(self, request: Request) -> JsonResponse:
        principal = _caller(request)
        settlements_wait_for(principal.account_id)
        key = ApiKey.objects.get(pk=principal.key_id)
        account = Account.objects.get(pk=principal.account_id)
        since = spend_period_start(key.spend_period, timezone.now())
        money = {
            "\x00BAL\x00": account.balance,
            "\x00AVAIL\x00": account.available,
            "\x00USAGE\x00": key_spent(key_id=key.pk, since=None),
            "\x00PERIOD\x00": key_spent(key_id=key.pk, since=since),
        }
        data = {
            "label": key.prefix + "…",
            "name": key.name,
            "rate_limit": {"requests": key.rpm_limit, "interval": "1m"},
            "limit": None if key.spend_limit is None else "\x00LIMIT\x00",
            "limit_period": key.spend_period,
            "usage": "\x00USAGE\x00",
            "usage_period": "\x00PERIOD\x00",
            "account": {
                "id": account.pk,
                "balance": "\x00BAL\x00",
                "available": "\x00AVAIL\x00",
                "status": account.status,
            },
        }
        if key.spend_limit is not None:
            money["\x00LIMIT\x00"] = key.spend_limit
        return _json_with_money({"data": data}, money)


def _json_with_money(obj: dict, amounts: dict[str, Decimal]) -> HttpResponse:
    """JSON whose placeholder strings become exact decimal numbers.

    Placeholders are wrapped in NUL, which no stored text (a key name, a `user`) can hold, so a customer's
    own string is never mistaken for one.
    """
    text = json.dumps(obj, ensure_ascii=False)
    for slot, amount in amounts.items():
        text = text.replace(json.dumps(slot), decimal_text(amount))
    return HttpResponse(text, content_type="application/json")


@csrf_exempt  # API clients send no CSRF token: a POST to a wrong path is a 404, not the CSRF 403 page
def api_not_found(request: HttpRequest, *args, **kwargs) -> HttpResponse:
    """Unknown /v1 paths answer in OpenAI's error shape."""
    return error_response(ApiError(404, f"Unknown API path {request.path}.", code="not_found"))
