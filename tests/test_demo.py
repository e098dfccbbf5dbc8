"""`make run`'s setup: migrate and seed a fresh SQLite demo, twice in a row."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from django.conf import settings


def _setup(env: dict) -> str:
    manage = [sys.executable, str(settings.BASE_DIR / "manage.py")]
    subprocess.run([*manage, "migrate", "--no-input", "-v0"], env=env, check=True, timeout=120)
    return subprocess.run(
        [*manage, "seed_demo", "--credentials", env["CREDS"]], env=env, check=True, capture_output=True, text=True
    ).stdout


def test_the_demo_setup_succeeds_twice_on_a_fresh_sqlite_file(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(DATABASE_URL=f"sqlite:///{tmp_path / 'demo.sqlite3'}", CREDS=str(tmp_path / "creds.json"), DEBUG="true")
    first = _setup(env)
    creds = json.loads((tmp_path / "creds.json").read_text())
    assert creds["api_key"].startswith("orb_live_")
    assert f"API key:   {creds['api_key']}" in first
    assert creds["operator_password"] in first
    assert '"model": "demo/embed-small"' in first  # the "Try it" lines show embeddings too
    assert 'wire_api="responses"}' in first and "codex exec" in first  # and a Codex CLI set-up
    assert f"ANTHROPIC_API_KEY={creds['api_key']}" in first and "claude -p" in first  # and Claude Code

    second = _setup(env)
    assert json.loads((tmp_path / "creds.json").read_text()) == creds
    assert f"API key:   {creds['api_key']}" in second
    assert "balance $10.00" in second

    check = (
        "from accounts.principals import principal_for_secret; from accounts.models import Account;"
        "from django.contrib.auth import authenticate;"
        f"p = principal_for_secret({creds['api_key']!r}); a = Account.objects.get(pk=p.account_id);"
        f"u = authenticate(username='admin', password={creds['operator_password']!r});"
        "print(a.balance, a.ledger_entries.count(), u.is_superuser)"
    )
    manage = [sys.executable, str(settings.BASE_DIR / "manage.py")]
    out = subprocess.run(
        [*manage, "shell", "--no-imports", "-c", check], env=env, check=True, capture_output=True, text=True
    )
    assert out.stdout.split() == ["10.0000000000", "1", "True"]
