"""The demo that `make run` seeds: `demo/…` models served by the built-in upstream emulator.

Secrets cannot be read back from the database (keys are hashed), so the demo keeps the operator
password and the demo API key in a local, git-ignored credentials file and reuses them on later runs.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction

from accounts.keys import key_hash
from accounts.models import Account, ApiKey
from accounts.services import account_create, api_key_create
from billing.services import ledger_credit

from .catalog import catalog_import

DEMO_FUNDS = Decimal("10.00")
DEMO_ACCOUNT_NAME = "Demo customer"
OPERATOR_USERNAME = "admin"
# What the emulator takes (GET /v1/models lists it as `supported_parameters`).
DEMO_PARAMETERS = [
    "max_tokens",
    "temperature",
    "top_p",
    "stop",
    "seed",
    "tools",
    "tool_choice",
    "response_format",
    "stream_options",
]


def demo_catalog(upstream_url: str) -> dict:
    """The demo catalog: models whose ids say they are served by the emulator."""
    return {
        "providers": [{"name": "demo-emulator", "base_url": upstream_url, "api_key": "", "timeout_s": 30}],
        "models": [
            {
                "id": "demo/chat-small",
                "name": "Demo chat (small) — upstream emulator",
                "description": "Answers from the built-in upstream emulator; no provider account needed.",
                "context_length": 16384,
                "max_output_tokens": 4096,
                "tokenizer": "Other",
                "supported_parameters": DEMO_PARAMETERS,
                "routes": [
                    {
                        "provider": "demo-emulator",
                        "upstream_model": "emulator-small",
                        "cost": {"prompt": "0.10", "completion": "0.40"},
                    }
                ],
                "price": {"prompt": "0.15", "completion": "0.60"},
            },
            {
                "id": "demo/chat-large",
                "name": "Demo chat (large) — upstream emulator",
                "description": "Answers from the built-in upstream emulator; priced like a large model.",
                "context_length": 128000,
                "max_output_tokens": 16384,
                "tokenizer": "Other",
                "supported_parameters": DEMO_PARAMETERS,
                "routes": [
                    {
                        "provider": "demo-emulator",
                        "upstream_model": "emulator-large",
                        "cost": {"prompt": "2.00", "completion": "8.00", "cached_prompt": "1.00"},
                    }
                ],
                "price": {"prompt": "2.50", "completion": "10.00", "cached_prompt": "1.25"},
            },
            {
                "id": "demo/claude-small",
                "name": "Demo Claude (small) — upstream emulator, Anthropic Messages API",
                "description": "The built-in emulator's Anthropic Messages API: /v1/messages (and Claude Code) "
                "reach it untouched, /v1/chat/completions translated.",
                "context_length": 200000,
                "max_output_tokens": 8192,
                "tokenizer": "Claude",
                "input_modalities": ["text", "image"],
                "supported_parameters": DEMO_PARAMETERS,
                "routes": [
                    {
                        "provider": "demo-emulator",
                        "upstream_model": "emulator-claude",
                        "api": "anthropic-messages",
                        "cost": {
                            "prompt": "0.80",
                            "completion": "4.00",
                            "cached_prompt": "0.08",
                            "cache_write_prompt": "1.00",
                        },
                    }
                ],
                "price": {
                    "prompt": "1.00",
                    "completion": "5.00",
                    "cached_prompt": "0.10",
                    "cache_write_prompt": "1.25",
                },
            },
            {
                # Its route speaks `openai-responses`: /v1/responses natively, the other surfaces translated.
                "id": "demo/responses-small",
                "name": "Demo Responses (small) — upstream emulator, OpenAI Responses API",
                "description": "The built-in emulator's Responses API: /v1/responses (and Codex CLI) reach it "
                "untouched, reasoning items and built-in tools included; chat completions and /v1/messages "
                "reach it translated.",
                "context_length": 128000,
                "max_output_tokens": 16384,
                "tokenizer": "Other",
                "supported_parameters": DEMO_PARAMETERS,
                "routes": [
                    {
                        "provider": "demo-emulator",
                        "upstream_model": "emulator-responses",
                        "api": "openai-responses",
                        "cost": {"prompt": "0.10", "completion": "0.40", "cached_prompt": "0.05"},
                    }
                ],
                "price": {"prompt": "0.15", "completion": "0.60", "cached_prompt": "0.075"},
            },
            {
                # Served at /v1/embeddings only: its route speaks `openai-embeddings`, which no other surface
                # is sent to (a chat request naming it is a 404 `no_route`).
                "id": "demo/embed-small",
                "name": "Demo embeddings (small) — upstream emulator",
                "description": "Deterministic 8-dimensional vectors from the built-in upstream emulator.",
                "context_length": 8192,
                "max_output_tokens": 0,
                "tokenizer": "Other",
                "output_modalities": ["embeddings"],
                "supported_parameters": ["dimensions", "encoding_format", "user"],
                "routes": [
                    {
                        "provider": "demo-emulator",
                        "upstream_model": "emulator-embed",
                        "api": "openai-embeddings",
                        "cost": {"prompt": "0.01", "completion": "0"},
                    }
                ],
                "price": {"prompt": "0.02", "completion": "0"},
            },
        ],
    }


@dataclass
class DemoCredentials:
    operator_username: str
    operator_password: str
    account_id: int
    api_key: str


def _load(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def demo_seed(*, credentials_path: Path, upstream_url: str | None = None) -> DemoCredentials:
    """Create what the demo needs, reusing whatever already exists; return the credentials."""
    saved = _load(credentials_path)
    with transaction.atomic():
        catalog_import(demo_catalog(upstream_url or settings.DEMO_UPSTREAM_URL))
        password = saved.get("operator_password") or secrets.token_urlsafe(12)
        user_model = get_user_model()
        if not user_model.objects.filter(username=OPERATOR_USERNAME).exists():
            user_model.objects.create_superuser(OPERATOR_USERNAME, "admin@localhost", password)
        account = Account.objects.filter(name=DEMO_ACCOUNT_NAME).order_by("pk").first()
        if account is None:
            account = account_create(name=DEMO_ACCOUNT_NAME, email="demo@localhost")
        ledger_credit(account=account, amount=DEMO_FUNDS, idempotency_key=f"demo-seed:{account.pk}", memo="demo funds")
        secret = saved.get("api_key", "")
        live = (
            secret
            and ApiKey.objects.filter(key_hash=key_hash(secret), account=account, revoked_at__isnull=True).exists()
        )
        if not live:
            secret = api_key_create(account=account, name="demo")[1]
    credentials = DemoCredentials(OPERATOR_USERNAME, password, account.pk, secret)
    credentials_path.parent.mkdir(parents=True, exist_ok=True)
    credentials_path.write_text(json.dumps(credentials.__dict__, indent=2))
    credentials_path.chmod(0o600)
    return credentials
