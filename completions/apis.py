"""The /v1 read endpoints: models, prices, generation lookup, key info; and the /v1 404.

The POST surfaces (chat completions and its kin) are served by completions/pipeline.py.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions
from rest_framework.request import Request
from rest_framework.views import APIView

from accounts.models import Account, ApiKey
from accounts.principals import KeyPrincipal
from billing.money import PER_MILLION
from core import exactjson
from core.usd import decimal_text

from .errors import ApiError, error_response
from .models import Generation
from .relay import settlements_wait_for
from .routing import CatalogEntry, catalog_entry, sellable_models
from .settlement import key_spent, spend_period_start


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
            "cost": gen.cost,
            "latency_ms": gen.latency_ms,
            "ttft_ms": gen.ttft_ms,
            "finish_reason": gen.finish_reason or None,
            "user": gen.user or None,
            "request_id": gen.request_id or None,
        }
        return _json_with_money({"data": data})


class KeyView(APIView):
    """GET /v1/key — the calling key's limits and usage, and the account's balance."""

    @extend_schema(responses={200: OpenApiTypes.OBJECT}, summary="Current key and balance")
    def get(self, request: Request) -> JsonResponse:
        principal = _caller(request)
        settlements_wait_for(principal.account_id)
        key = ApiKey.objects.get(pk=principal.key_id)
        account = Account.objects.get(pk=principal.account_id)
        since = spend_period_start(key.spend_period, timezone.now())
        data = {
            "label": key.prefix + "…",
            "name": key.name,
            "rate_limit": {"requests": key.rpm_limit, "interval": "1m"},
            "limit": key.spend_limit,
            "limit_period": key.spend_period,
            "usage": key_spent(key_id=key.pk, since=None),
            "usage_period": key_spent(key_id=key.pk, since=since),
            "account": {
                "id": account.pk,
                "balance": account.balance,
                "available": account.available,
                "status": account.status,
            },
        }
        return _json_with_money({"data": data})


def _json_with_money(obj: dict[str, Any]) -> HttpResponse:
    """JSON whose Decimal amounts are exact numbers."""
    return HttpResponse(exactjson.dumps(obj, compact=False), content_type="application/json")


@csrf_exempt  # API clients send no CSRF token: a POST to a wrong path is a 404, not the CSRF 403 page
def api_not_found(request: HttpRequest, *args, **kwargs) -> HttpResponse:
    """Unknown /v1 paths answer in OpenAI's error shape."""
    return error_response(ApiError(404, f"Unknown API path {request.path}.", code="not_found"))
