"""Seed the benchmark database through the project's own services; print the keys as JSON.

Creates a provider pointing at the emulator, one priced model routed to its chat completions
(`bench/emulator`, an `openai-chat` route) and one to its Messages API (`bench/claude`, an
`anthropic-messages` route, for the surfaces step), and two sets of customers:
`spread` — one funded account per key (load spread over many account rows, as real traffic is), and
`shared` — one funded account holding every key (P4: all holds and charges contend for one row).
Every key has a huge RPM so the rate limit is checked (one Redis call) but never refuses.

    DATABASE_URL=… python bench/seed.py --emulator-url http://127.0.0.1:8100/v1 --keys 32
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODEL_ID = "bench/emulator"
MESSAGES_MODEL_ID = "bench/claude"
RESPONSES_MODEL_ID = "bench/responses"
FUNDS = Decimal("1000000")
RPM = 100_000_000


def catalog(emulator_url: str) -> dict:
    """The benchmark's catalog: one provider (the emulator), a model on each of its three APIs."""
    return {
        "providers": [{"name": "bench-emulator", "base_url": emulator_url, "timeout_s": 60}],
        "models": [
            {
                "id": MODEL_ID,
                "name": "Benchmark model (upstream emulator)",
                "context_length": 128000,
                "max_output_tokens": 4096,
                "routes": [{"provider": "bench-emulator", "upstream_model": "emulator-small"}],
                "price": {"prompt": "0.15", "completion": "0.60"},
            },
            {
                "id": MESSAGES_MODEL_ID,
                "name": "Benchmark model (upstream emulator, Anthropic Messages API)",
                "context_length": 200000,
                "max_output_tokens": 4096,
                "routes": [
                    {"provider": "bench-emulator", "upstream_model": "emulator-claude", "api": "anthropic-messages"}
                ],
                "price": {"prompt": "0.15", "completion": "0.60"},
            },
            {
                "id": RESPONSES_MODEL_ID,
                "name": "Benchmark model (upstream emulator, OpenAI Responses API)",
                "context_length": 128000,
                "max_output_tokens": 4096,
                "routes": [
                    {"provider": "bench-emulator", "upstream_model": "emulator-small", "api": "openai-responses"}
                ],
                "price": {"prompt": "0.15", "completion": "0.60"},
            },
        ],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--emulator-url", required=True)
    parser.add_argument("--keys", type=int, default=32)
    args = parser.parse_args()

    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mlrouter.settings")
    import django

    django.setup()
    from accounts.services import account_create, api_key_create
    from billing.services import ledger_credit
    from completions.catalog import catalog_import

    catalog_import(catalog(args.emulator_url))

    def funded(name: str):
        account = account_create(name=name, email=f"{name}@bench.invalid")
        ledger_credit(account=account, amount=FUNDS, idempotency_key=f"bench-fund:{account.pk}")
        return account

    spread = []
    for i in range(args.keys):
        account = funded(f"bench-spread-{i}")
        spread.append(api_key_create(account=account, name="bench", rpm_limit=RPM)[1])
    shared_account = funded("bench-shared")
    shared = [api_key_create(account=shared_account, name=f"bench-{i}", rpm_limit=RPM)[1] for i in range(args.keys)]
    json.dump({"model": MODEL_ID, "spread": spread, "shared": shared, "shared_account": shared_account.pk}, sys.stdout)


if __name__ == "__main__":
    main()
