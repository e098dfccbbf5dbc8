"""Import the catalog (providers, models, routes, prices, route costs) from a JSON or YAML document.

Running an import again updates in place; a changed price or route cost becomes a new version. The whole
document is validated before anything is written, and the import is one transaction.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import yaml
from django.db import transaction

from billing.money import usd
from billing.selectors import price_current_for, route_cost_current_for
from billing.services import price_set, route_cost_set

from .models import Model, Provider, Route


class CatalogError(ValueError):
    """The catalog document is malformed; the message names the offending place."""


@dataclass
class CatalogImportResult:
    providers: dict[str, int] = field(default_factory=lambda: {"created": 0, "updated": 0})
    models: dict[str, int] = field(default_factory=lambda: {"created": 0, "updated": 0})
    routes: int = 0
    prices_changed: int = 0
    costs_changed: int = 0

    def summary(self) -> str:
        return (
            f"providers: {self.providers['created']} created, {self.providers['updated']} updated; "
            f"models: {self.models['created']} created, {self.models['updated']} updated; "
            f"routes: {self.routes}; new price versions: {self.prices_changed}; "
            f"new route cost versions: {self.costs_changed}"
        )


def catalog_load(path: Path) -> dict[str, Any]:
    """Read a catalog file (JSON, or YAML by extension)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CatalogError(f"cannot read {path}: {exc.strerror}")
    try:
        if path.suffix.lower() in (".yaml", ".yml"):
            data = yaml.safe_load(text)
        else:
            data = json.loads(text, parse_float=Decimal)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise CatalogError(f"{path} is not valid {'YAML' if path.suffix in ('.yaml', '.yml') else 'JSON'}: {exc}")
    if not isinstance(data, dict):
        raise CatalogError("the catalog must be an object with 'providers' and 'models'")
    return data


def _str(obj: dict, key: str, where: str, *, required: bool = True, default: str = "") -> str:
    value = obj.get(key, None)
    if value is None:
        if required:
            raise CatalogError(f"{where}: '{key}' is required")
        return default
    if not isinstance(value, str) or (required and not value.strip()):
        raise CatalogError(f"{where}: '{key}' must be a non-empty string")
    return value.strip()


def _int(obj: dict, key: str, where: str, default: int) -> int:
    value = obj.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise CatalogError(f"{where}: '{key}' must be a non-negative integer")
    return value


def _money(value: Any, where: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, str | int | float | Decimal):
        raise CatalogError(f'{where} must be a number given as a string, e.g. "0.15"')
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        raise CatalogError(f"{where}: {value!r} is not a number")
    if not amount.is_finite() or amount < 0:
        raise CatalogError(f"{where}: {value!r} must be a non-negative number")
    return usd(amount)


def _parameters(obj: dict, where: str) -> list[str] | None:
    """A declared `supported_parameters` list (absent or null: not declared)."""
    value = obj.get("supported_parameters")
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(name, str) and name.strip() for name in value):
        raise CatalogError(f"{where}: 'supported_parameters' must be a list of parameter names")
    return list(dict.fromkeys(name.strip() for name in value))


def _provider_values(raw: Any, i: int) -> dict[str, Any]:
    where = f"providers[{i}]"
    if not isinstance(raw, dict):
        raise CatalogError(f"{where} must be an object")
    name = _str(raw, "name", where)
    headers = raw.get("extra_headers", {})
    if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
        raise CatalogError(f"{where}: 'extra_headers' must map names to strings")
    values = {
        "name": name,
        "base_url": _str(raw, "base_url", where).rstrip("/"),
        "api_key_env": _str(raw, "api_key_env", where, required=False),
        "api_key": _str(raw, "api_key", where, required=False),
        "read_timeout_s": _money(raw.get("timeout_s", 60), f"{where}.timeout_s"),
        "connect_timeout_s": _money(raw.get("connect_timeout_s", 5), f"{where}.connect_timeout_s"),
        "extra_headers": headers,
        "data_collection": raw.get("data_collection", Provider.DataCollection.UNKNOWN),
        "supported_parameters": _parameters(raw, where),
        "enabled": bool(raw.get("enabled", True)),
    }
    if values["data_collection"] not in Provider.DataCollection.values:
        raise CatalogError(f"{where}: 'data_collection' must be one of {', '.join(Provider.DataCollection.values)}")
    if not values["base_url"].startswith(("http://", "https://")):
        raise CatalogError(f"{where}: 'base_url' must be an http(s) URL")
    return values


def _model_values(raw: Any, i: int, provider_names: set[str]) -> dict[str, Any]:
    where = f"models[{i}]"
    if not isinstance(raw, dict):
        raise CatalogError(f"{where} must be an object")
    public_id = _str(raw, "id", where)
    where = f"model {public_id!r}"
    routes = raw.get("routes")
    if not isinstance(routes, list) or not routes:
        raise CatalogError(f"{where}: 'routes' must be a non-empty list")
    parsed_routes = []
    for j, route in enumerate(routes):
        if not isinstance(route, dict):
            raise CatalogError(f"{where}.routes[{j}] must be an object")
        provider = _str(route, "provider", f"{where}.routes[{j}]")
        if provider not in provider_names:
            raise CatalogError(f"{where}.routes[{j}]: unknown provider {provider!r}")
        cost = route.get("cost")
        parsed_routes.append(
            {
                "provider": provider,
                "upstream_model": _str(route, "upstream_model", f"{where}.routes[{j}]"),
                "api": _api(route, f"{where}.routes[{j}]"),
                "priority": _int(route, "priority", f"{where}.routes[{j}]", j),
                "supported_parameters": _parameters(route, f"{where}.routes[{j}]"),
                "cost": None if cost is None else _rates(cost, f"{where}.routes[{j}].cost"),
            }
        )
    return {
        "public_id": public_id,
        "name": _str(raw, "name", where, required=False, default=public_id),
        "description": _str(raw, "description", where, required=False),
        "context_length": _int(raw, "context_length", where, 0),
        "max_output_tokens": _int(raw, "max_output_tokens", where, 4096),
        "input_modalities": _names(raw, "input_modalities", where, ["text"]),
        "output_modalities": _names(raw, "output_modalities", where, ["text"]),
        "tokenizer": _str(raw, "tokenizer", where, required=False),
        "is_moderated": _bool(raw, "is_moderated", where, False),
        "supported_parameters": _names(raw, "supported_parameters", where, []),
        "enabled": bool(raw.get("enabled", True)),
        "routes": parsed_routes,
        "price": _rates(raw.get("price"), f"{where}.price"),
    }


def _api(route: dict, where: str) -> str:
    """The API the route's provider speaks (`api`, default `openai-chat`)."""
    value = route.get("api", Route.Api.OPENAI_CHAT)
    if value not in Route.Api.values:
        raise CatalogError(f"{where}: 'api' must be one of {', '.join(Route.Api.values)}")
    return value


def _rates(raw: Any, where: str) -> dict[str, Decimal | None]:
    """A price or a route's cost: USD per 1M prompt, completion, cached (read) and cache-write prompt tokens,
    and per request."""
    if not isinstance(raw, dict):
        raise CatalogError(f"{where} must be an object with 'prompt' and 'completion'")
    for key in ("prompt", "completion"):
        if key not in raw:
            raise CatalogError(f"{where}: '{key}' is required")
    unknown = set(raw) - {"prompt", "completion", "cached_prompt", "cache_write_prompt", "request"}
    if unknown:
        raise CatalogError(f"{where}: unknown keys {sorted(unknown)}")
    return {
        "prompt": _money(raw["prompt"], f"{where}.prompt"),
        "completion": _money(raw["completion"], f"{where}.completion"),
        "cached_prompt": None
        if raw.get("cached_prompt") is None
        else _money(raw["cached_prompt"], f"{where}.cached_prompt"),
        "cache_write_prompt": None
        if raw.get("cache_write_prompt") is None
        else _money(raw["cache_write_prompt"], f"{where}.cache_write_prompt"),
        "request": _money(raw.get("request", 0), f"{where}.request"),
    }


def _names(obj: dict, key: str, where: str, default: list[str]) -> list[str]:
    value = obj.get(key, default)
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise CatalogError(f"{where}: '{key}' must be a list of non-empty strings")
    return list(dict.fromkeys(v.strip() for v in value))


def _bool(obj: dict, key: str, where: str, default: bool) -> bool:
    value = obj.get(key, default)
    if not isinstance(value, bool):
        raise CatalogError(f"{where}: '{key}' must be true or false")
    return value


def catalog_validate(data: dict[str, Any]) -> tuple[list[dict], list[dict]]:
    """Return the parsed providers and models, or raise CatalogError."""
    providers_raw, models_raw = data.get("providers", []), data.get("models", [])
    if not isinstance(providers_raw, list) or not isinstance(models_raw, list):
        raise CatalogError("'providers' and 'models' must be lists")
    providers = [_provider_values(raw, i) for i, raw in enumerate(providers_raw)]
    names = {p["name"] for p in providers} | set(Provider.objects.values_list("name", flat=True))
    models = [_model_values(raw, i, names) for i, raw in enumerate(models_raw)]
    seen: set[str] = set()
    for model in models:
        if model["public_id"] in seen:
            raise CatalogError(f"model {model['public_id']!r} is listed twice")
        seen.add(model["public_id"])
    return providers, models


@transaction.atomic
def catalog_import(data: dict[str, Any]) -> CatalogImportResult:
    """Create or update everything the document lists; nothing is written if any part is invalid."""
    providers, models = catalog_validate(data)
    result = CatalogImportResult()
    by_name: dict[str, Provider] = {}
    for values in providers:
        provider, created = Provider.objects.update_or_create(name=values["name"], defaults=values)
        result.providers["created" if created else "updated"] += 1
        by_name[provider.name] = provider
    for values in models:
        routes, price = values.pop("routes"), values.pop("price")
        model, created = Model.objects.update_or_create(public_id=values["public_id"], defaults=values)
        result.models["created" if created else "updated"] += 1
        keep = []
        for route in routes:
            provider = by_name.get(route["provider"]) or Provider.objects.get(name=route["provider"])
            obj, _ = Route.objects.update_or_create(
                model=model,
                provider=provider,
                upstream_model=route["upstream_model"],
                defaults={
                    "api": route["api"],
                    "priority": route["priority"],
                    "supported_parameters": route["supported_parameters"],
                    "enabled": True,
                },
            )
            keep.append(obj.pk)
            result.routes += 1
            cost = route["cost"]
            current_cost = route_cost_current_for(obj.pk) if cost is not None else None
            if cost is not None and (
                current_cost is None or any(getattr(current_cost, k) != v for k, v in cost.items())
            ):
                route_cost_set(route_id=obj.pk, **cost)
                result.costs_changed += 1
        Route.objects.filter(model=model).exclude(pk__in=keep).delete()
        current = price_current_for(model.pk)
        if current is None or any(getattr(current, k) != v for k, v in price.items()):
            price_set(model_id=model.pk, **price)
            result.prices_changed += 1
    return result
