"""The operator CLI: good input does its job, bad input exits non-zero with one line and writes nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from decimal import Decimal
from io import StringIO
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command

from accounts.keys import key_hash
from accounts.models import Account, ApiKey
from billing.models import LedgerEntry, Price
from completions.models import Model, Provider, Route
from tests.factories import AccountFactory, funded_account

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out, stderr=StringIO())
    return out.getvalue()


def test_create_account_prints_the_new_id():
    output = run("create_account", "--name", "Acme", "--email", "ops@acme.test", "--telegram-chat-id", "42")
    account = Account.objects.get(pk=int(output.strip()))
    assert (account.name, account.email, account.telegram_chat_id) == ("Acme", "ops@acme.test", 42)


@pytest.mark.parametrize("args", [["--name", "  "], ["--name", "X", "--email", "not-an-email"]])
def test_create_account_refuses_bad_input(args):
    with pytest.raises(CommandError):
        run("create_account", *args)
    assert not Account.objects.exists()


def test_create_key_prints_the_secret_alone_on_the_last_line():
    account = AccountFactory()
    secret = run("create_key", str(account.pk), "--name", "ci", "--rpm", "5").splitlines()[-1]
    api_key = ApiKey.objects.get(key_hash=key_hash(secret))
    assert (api_key.account, api_key.name, api_key.rpm_limit) == (account, "ci", 5)


@pytest.mark.parametrize("args", [["999999"], ["{acc}", "--rpm", "0"], ["{acc}", "--rpm", "ten"]])
def test_create_key_refuses_bad_input(args):
    account = AccountFactory()
    with pytest.raises((CommandError, SystemExit)):
        run("create_key", *[a.format(acc=account.pk) for a in args])
    assert not ApiKey.objects.exists()


def test_topup_credits_once_per_idempotency_key_and_prints_the_balance():
    account = AccountFactory()
    assert run("topup", str(account.pk), "12.5", "--memo", "wire", "--idempotency-key", "inv-1").strip() == "12.5"
    assert run("topup", str(account.pk), "12.5", "--idempotency-key", "inv-1").strip() == "12.5"
    entry = LedgerEntry.objects.get(account=account)
    assert (entry.kind, entry.amount, entry.memo) == ("topup", Decimal("12.5"), "wire")


@pytest.mark.parametrize("amount", ["-5", "0", "abc", "NaN", "Infinity", "1e400", "0.00000000001"])
def test_topup_refuses_bad_amounts(amount):
    account = AccountFactory()
    with pytest.raises(CommandError):
        run("topup", str(account.pk), amount)
    assert not LedgerEntry.objects.exists()


def test_topup_refuses_an_unknown_account():
    with pytest.raises(CommandError, match="does not exist"):
        run("topup", "424242", "5")
    assert not LedgerEntry.objects.exists()


def test_balance_prints_the_balance():
    account = funded_account("3.25")
    assert run("balance", str(account.pk)).strip() == "3.25"
    with pytest.raises(CommandError):
        run("balance", "424242")


def test_a_zero_balance_prints_as_0_never_in_exponent_notation():
    account = AccountFactory()
    err = StringIO()
    out = StringIO()
    call_command("balance", str(account.pk), stdout=out, stderr=err)
    assert out.getvalue().strip() == "0"
    assert err.getvalue().strip() == "held 0 USD, available 0 USD"
    assert "E-" not in out.getvalue() + err.getvalue()


CATALOG = {
    "providers": [
        {"name": "openai", "base_url": "https://api.openai.com/v1", "api_key_env": "OPENAI_API_KEY", "timeout_s": 60}
    ],
    "models": [
        {
            "id": "openai/gpt-4o-mini",
            "name": "GPT-4o mini",
            "context_length": 128000,
            "max_output_tokens": 16384,
            "routes": [{"provider": "openai", "upstream_model": "gpt-4o-mini", "priority": 0}],
            "price": {"prompt": "0.15", "completion": "0.60"},
        }
    ],
}


def _write(tmp_path: Path, data, name: str = "catalog.json") -> str:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return str(path)


def test_import_catalog_creates_and_then_updates_in_place(tmp_path):
    run("import_catalog", _write(tmp_path, CATALOG))
    model = Model.objects.get(public_id="openai/gpt-4o-mini")
    route = Route.objects.get(model=model)
    assert (route.provider.name, route.upstream_model) == ("openai", "gpt-4o-mini")
    assert Provider.objects.get(name="openai").api_key_env == "OPENAI_API_KEY"
    assert Price.objects.get(model=model).completion == Decimal("0.60")

    again = run("import_catalog", _write(tmp_path, CATALOG))
    assert "new price versions: 0" in again
    assert Price.objects.filter(model=model).count() == 1

    changed = json.loads(json.dumps(CATALOG))
    changed["models"][0]["price"]["completion"] = "0.75"
    changed["models"][0]["name"] = "GPT-4o mini (2026)"
    run("import_catalog", _write(tmp_path, changed))
    assert Model.objects.get(pk=model.pk).name == "GPT-4o mini (2026)"
    assert list(Price.objects.filter(model=model).values_list("completion", flat=True)) == [
        Decimal("0.75"),
        Decimal("0.60"),
    ]
    assert Model.objects.count() == 1


def test_import_catalog_reads_yaml_and_api_key(tmp_path):
    text = """
providers:
  - {name: local, base_url: "http://127.0.0.1:8100/v1", api_key: sk-local}
models:
  - id: local/llama
    routes: [{provider: local, upstream_model: llama3}]
    price: {prompt: "0.05", completion: "0.10", cached_prompt: "0.01", request: "0.0001"}
"""
    run("import_catalog", _write(tmp_path, text, "catalog.yaml"))
    price = Price.objects.get(model__public_id="local/llama")
    assert (price.cached_prompt, price.request) == (Decimal("0.01"), Decimal("0.0001"))
    assert Provider.objects.get(name="local").resolved_api_key() == "sk-local"


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ("{not json", "not valid JSON"),
        ("[]", "must be an object"),
        ({"providers": [{"name": "x"}], "models": []}, "'base_url' is required"),
        (
            {
                "providers": [],
                "models": [
                    {
                        "id": "a/b",
                        "routes": [{"provider": "nope", "upstream_model": "m"}],
                        "price": {"prompt": "1", "completion": "1"},
                    }
                ],
            },
            "unknown provider",
        ),
        (
            {**CATALOG, "models": [{**CATALOG["models"][0], "price": {"prompt": "-1", "completion": "1"}}]},
            "non-negative",
        ),
        ({**CATALOG, "models": [{**CATALOG["models"][0], "price": {"prompt": "1"}}]}, "'completion' is required"),
        ({**CATALOG, "models": [CATALOG["models"][0], CATALOG["models"][0]]}, "listed twice"),
    ],
)
def test_import_catalog_refuses_a_malformed_file_and_writes_nothing(tmp_path, document, message):
    with pytest.raises(CommandError, match=message) as exc:
        run("import_catalog", _write(tmp_path, document))
    assert "\n" not in str(exc.value)
    assert not Provider.objects.exists() and not Model.objects.exists() and not Price.objects.exists()


def test_import_catalog_refuses_a_missing_file(tmp_path):
    with pytest.raises(CommandError, match="cannot read"):
        run("import_catalog", str(tmp_path / "missing.json"))


def test_bad_input_exits_non_zero_with_a_one_line_message(tmp_path):
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'cli.sqlite3'}"}
    env.pop("REDIS_URL", None)
    manage = [sys.executable, str(settings.BASE_DIR / "manage.py")]
    subprocess.run([*manage, "migrate", "-v0"], env=env, check=True)
    result = subprocess.run([*manage, "topup", "1", "-5"], env=env, capture_output=True, text=True)
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == ["CommandError: amount '-5' must be a positive number of USD"]
