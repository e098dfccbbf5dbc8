"""The /v1 read endpoints: models, prices, generation lookup, key info, credits; and the /v1 404.

The POST surfaces (chat completions and its kin) are served by completions/pipeline.py.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import exceptions
from rest_framework.request import Request
from rest_framework.views import APIView

from accounts.models import Account, ApiKey
from accounts.principals import KeyPrincipal
from billing.money import PER_MILLION
from billing.selectors import credits_totals
from core import exactjson
from core.db import could_be_key
from core.usd import decimal_text

from .errors import ERROR_SCHEMA, ApiError, error_response
from .models import Generation, Model
from .relay import settlements_wait_for
from .routing import CatalogEntry, catalog_entry, sellable_models
from .settlement import key_spent, spend_period_start
from .stored_responses import INPUT_ITEMS_LIMIT, input_items_page, response_delete, response_get

# How the OpenAPI description declares who may call an endpoint: anyone, or a key's holder.
PUBLIC: list = []
KEYED = [{"ApiKey": []}]


def _errors(*statuses: tuple[int, str]) -> dict[int, OpenApiResponse]:
    """OpenAPI responses in the API's error shape; every /v1 path answers 400 `invalid_host` too."""
    return {
        status: OpenApiResponse(response=ERROR_SCHEMA, description=why)
        for status, why in ((400, "invalid_host"), *statuses)
    }


_KEY_ERRORS = ((401, "invalid_api_key"), (403, "account_suspended"))


def _per_token(per_million: Decimal | None) -> str | None:
    return None if per_million is None else decimal_text(per_million / PER_MILLION)


def model_json(entry: CatalogEntry, model: Model) -> dict[str, Any]:
    """One model in OpenAI's shape with OpenRouter's metadata (architecture, top_provider, pricing per token)."""
    price = entry.price
    inputs, outputs = list(model.input_modalities or ["text"]), list(model.output_modalities or ["text"])
    return {
        "id": entry.public_id,
        "object": "model",
        "created": int(model.created_at.timestamp()),
        "owned_by": model.owned_by,
        "canonical_slug": entry.public_id,
        "name": model.name,
        "description": model.description,
        "context_length": entry.context_length,
        "max_output_tokens": entry.max_output_tokens,
        "architecture": {
            "modality": f"{'+'.join(inputs)}->{'+'.join(outputs)}",
            "input_modalities": inputs,
            "output_modalities": outputs,
            "tokenizer": model.tokenizer or "Other",
            "instruct_type": None,
        },
        "pricing": {
            "prompt": _per_token(price.prompt),
            "completion": _per_token(price.completion),
            "request": decimal_text(price.request),
            "input_cache_read": _per_token(price.prompt if price.cached_prompt is None else price.cached_prompt),
            "input_cache_write": _per_token(
                price.prompt if price.cache_write_prompt is None else price.cache_write_prompt
            ),
        },
        "top_provider": {
            "context_length": entry.context_length,
            "max_completion_tokens": entry.max_output_tokens,
            "is_moderated": model.is_moderated,
        },
        "per_request_limits": None,
        "supported_parameters": model_parameters(entry, model),
    }


def model_parameters(entry: CatalogEntry, model: Model) -> list[str]:
    """What the model takes: its own declared list, then what any of its routes declares (as OpenRouter
    lists the union over its providers); routes that declare nothing add nothing."""
    names = list(model.supported_parameters or [])
    declared = set().union(*(route.supported_parameters or () for route in entry.routes))
    return names + sorted(declared - set(names))


def _listed() -> list[tuple[CatalogEntry, Model]]:
    out = []
    for model in sellable_models():
        entry = catalog_entry(model.public_id)
        if entry is not None:
            out.append((entry, model))
    return out


def _required_parameters(request: Request) -> set[str]:
    raw = request.query_params.get("supported_parameters", "")
    return {name.strip() for name in raw.split(",") if name.strip()}


class ModelsView(APIView):
    """GET /v1/models — what is sold (OpenAI's list shape with OpenRouter's metadata and per-token pricing)."""

    permission_classes: list = []
    authentication_classes: list = []  # public: a key, good or bad, is not read

    @extend_schema(
        auth=PUBLIC,
        parameters=[
            OpenApiParameter(
                "supported_parameters",
                str,
                required=False,
                description="Comma-separated request parameters, e.g. `tools,response_format`: only models taking all.",
            )
        ],
        responses={200: OpenApiTypes.OBJECT, **_errors()},
        summary="List models",
        operation_id="models_list",
    )
    def get(self, request: Request) -> JsonResponse:
        required = _required_parameters(request)
        data = [
            model_json(entry, model) for entry, model in _listed() if required <= set(model_parameters(entry, model))
        ]
        return JsonResponse({"object": "list", "data": data})


class ModelDetailView(APIView):
    """GET /v1/models/{id} — one model."""

    permission_classes: list = []
    authentication_classes: list = []  # public

    @extend_schema(
        auth=PUBLIC,
        responses={200: OpenApiTypes.OBJECT, **_errors((404, "model_not_found"))},
        summary="Retrieve a model",
        operation_id="models_retrieve",
    )
    def get(self, request: Request, model_id: str) -> JsonResponse:
        for entry, model in _listed():
            if entry.public_id == model_id:
                return JsonResponse(model_json(entry, model))
        raise ApiError(404, f"The model '{model_id}' does not exist.", code="model_not_found", param="model")


class PricesView(APIView):
    """GET /v1/prices — the price list in USD per 1M tokens."""

    permission_classes: list = []
    authentication_classes: list = []  # public

    @extend_schema(
        auth=PUBLIC, responses={200: OpenApiTypes.OBJECT, **_errors()}, summary="Price list (USD per 1M tokens)"
    )
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
                    "cache_write_prompt": None
                    if price.cache_write_prompt is None
                    else decimal_text(price.cache_write_prompt),
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
        auth=KEYED,
        parameters=[OpenApiParameter("id", str, required=True)],
        responses={
            200: OpenApiTypes.OBJECT,
            **_errors(*_KEY_ERRORS, (404, "not_found: no generation of yours has this id")),
            400: OpenApiResponse(response=ERROR_SCHEMA, description="invalid_request (no `id`) or invalid_host"),
        },
        summary="Look up a generation",
    )
    def get(self, request: Request) -> JsonResponse:
        principal = _caller(request)
        settlements_wait_for(principal.account_id)
        generation_id = request.query_params.get("id", "")
        if not generation_id:
            raise ApiError(400, "'id' is required.", code="invalid_request", param="id")
        gen = (
            Generation.objects.select_related("model", "provider")
            .filter(pk=generation_id, account_id=principal.account_id)
            .first()
            if could_be_key(generation_id, Generation._meta.pk.max_length)
            else None
        )
        if gen is None:
            raise ApiError(404, f"Generation '{generation_id[:100]}' not found.", code="not_found", param="id")
        data = {
            "id": gen.id,
            "model": gen.model.public_id,
            "status": gen.status,
            "surface": gen.surface,
            "stream": gen.stream,
            "created_at": gen.started_at.isoformat(),
            "finished_at": gen.finished_at.isoformat() if gen.finished_at else None,
            "prompt_tokens": gen.prompt_tokens,
            "completion_tokens": gen.completion_tokens,
            "cached_tokens": gen.cached_tokens,
            "cache_write_tokens": gen.cache_write_tokens,
            "usage_source": gen.usage_source,
            "cost": gen.cost,
            "latency_ms": gen.latency_ms,
            "ttft_ms": gen.ttft_ms,
            "finish_reason": gen.finish_reason or None,
            "user": gen.user or None,
            "request_id": gen.request_id or None,
            # The same facts in OpenRouter's names, for code written against its /api/v1/generation.
            "total_cost": gen.cost,
            "tokens_prompt": gen.prompt_tokens,
            "tokens_completion": gen.completion_tokens,
            "native_tokens_prompt": gen.prompt_tokens,
            "native_tokens_completion": gen.completion_tokens,
            "native_tokens_cached": gen.cached_tokens,
            "provider_name": gen.provider.name if gen.provider else None,
            "upstream_id": gen.upstream_id or None,
            # One duration is measured: from the request's arrival to its end, in ms.
            "latency": gen.latency_ms,
            "generation_time": gen.latency_ms,
            "streamed": gen.stream,
            "cancelled": gen.status == Generation.Status.CANCELLED,
            "origin": gen.origin or None,
            "app": gen.app or None,
        }
        return _json_with_money({"data": data})


class KeyView(APIView):
    """GET /v1/key — the calling key's limits and usage, and the account's balance."""

    @extend_schema(
        auth=KEYED, responses={200: OpenApiTypes.OBJECT, **_errors(*_KEY_ERRORS)}, summary="Current key and balance"
    )
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


class CreditsView(APIView):
    """GET /v1/credits — the account's credits and usage, as OpenRouter's /api/v1/credits answers."""

    @extend_schema(
        auth=KEYED, responses={200: OpenApiTypes.OBJECT, **_errors(*_KEY_ERRORS)}, summary="Credits and usage"
    )
    def get(self, request: Request) -> JsonResponse:
        principal = _caller(request)
        settlements_wait_for(principal.account_id)
        credits, usage = credits_totals(principal.account_id)
        return _json_with_money({"data": {"total_credits": credits, "total_usage": usage}})


def _response_not_found(response_id: str) -> ApiError:
    return ApiError(404, f"Response '{response_id}' not found.", code="not_found")


class ResponseView(APIView):
    """GET / DELETE /v1/responses/{id} — one of your stored responses (OpenAI's Responses API)."""

    @extend_schema(responses={200: OpenApiTypes.OBJECT}, summary="Retrieve a stored response")
    def get(self, request: Request, response_id: str) -> HttpResponse:
        principal = _caller(request)
        settlements_wait_for(principal.account_id)  # a plain answer is stored right after its charge
        stored = response_get(response_id, principal.account_id)
        if stored is None:
            raise _response_not_found(response_id)
        return HttpResponse(stored.body, content_type="application/json")

    @extend_schema(responses={200: OpenApiTypes.OBJECT}, summary="Delete a stored response")
    def delete(self, request: Request, response_id: str) -> JsonResponse:
        principal = _caller(request)
        settlements_wait_for(principal.account_id)
        if not response_delete(response_id, principal.account_id):
            raise _response_not_found(response_id)
        return JsonResponse({"id": response_id, "object": "response.deleted", "deleted": True})


class ResponseInputItemsView(APIView):
    """GET /v1/responses/{id}/input_items — the input a stored response answered, a page at a time."""

    @extend_schema(
        parameters=[
            OpenApiParameter("limit", int, description=f"1 to {INPUT_ITEMS_LIMIT}, default 20"),
            OpenApiParameter("order", str, enum=["asc", "desc"], description="default desc"),
            OpenApiParameter("after", str, description="an item id: the page starts after it"),
        ],
        responses={200: OpenApiTypes.OBJECT},
        summary="List a stored response's input items",
    )
    def get(self, request: Request, response_id: str) -> JsonResponse:
        principal = _caller(request)
        settlements_wait_for(principal.account_id)
        params = request.query_params
        try:
            limit = int(params.get("limit", 20))
        except ValueError:
            limit = 0
        if not 1 <= limit <= INPUT_ITEMS_LIMIT:
            raise ApiError(
                400,
                f"'limit' must be an integer between 1 and {INPUT_ITEMS_LIMIT}.",
                code="invalid_request",
                param="limit",
            )
        order = params.get("order", "desc")
        if order not in ("asc", "desc"):
            raise ApiError(400, "'order' must be 'asc' or 'desc'.", code="invalid_request", param="order")
        stored = response_get(response_id, principal.account_id)
        if stored is None:
            raise _response_not_found(response_id)
        items, more = input_items_page(stored, limit=limit, order=order, after=params.get("after"))
        return JsonResponse(
            {
                "object": "list",
                "data": items,
                "first_id": items[0].get("id") if items else None,
                "last_id": items[-1].get("id") if items else None,
                "has_more": more,
            }
        )


def _json_with_money(obj: dict[str, Any]) -> HttpResponse:
    """JSON whose Decimal amounts are exact numbers."""
    return HttpResponse(exactjson.dumps(obj, compact=False), content_type="application/json")


@csrf_exempt  # API clients send no CSRF token: a POST to a wrong path is a 404, not the CSRF 403 page
def api_not_found(request: HttpRequest, *args, **kwargs) -> HttpResponse:
    """Unknown /v1 paths answer in OpenAI's error shape."""
    return error_response(ApiError(404, f"Unknown API path {request.path}.", code="not_found"))
