"""Fixtures for the client-compatibility suite: a live router (gunicorn + gevent) over the emulator, a
funded customer with a priced model, and the pinned JavaScript clients installed from package-lock.json."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import (  # noqa: F401  (fixtures)
    Shop,
    _fresh_rate_limits,
    emulator_url,
    shop,
    start_router,
    stop,
)

# LiteLLM would otherwise fetch its model price map from the internet when imported.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

NODE_DIR = Path(__file__).parent / "node"


@pytest.fixture(scope="session")
def router(django_db_setup, django_db_blocker, tmp_path_factory) -> Iterator[str]:
    """One production-like router (gunicorn + gevent) for the whole suite; its base URL ends in /v1."""
    with django_db_blocker.unblock():
        url, process = start_router(tmp_path_factory.mktemp("clients-router"))
    try:
        yield url
    finally:
        stop(process)


@pytest.fixture(scope="session")
def node_modules() -> Path:
    """tests/clients/node/node_modules as package-lock.json pins it, installed with `npm ci` when missing or
    older than the lock file. Fails, never skips, without Node.js: the JavaScript clients are part of the suite."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.fail("node and npm are needed to run the JavaScript clients (tests/clients/node/)")
    modules = NODE_DIR / "node_modules"
    installed = modules / ".package-lock.json"
    # Test sessions may run side by side; one installs, the others wait for it.
    with open(NODE_DIR / ".install.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not installed.exists() or installed.stat().st_mtime < (NODE_DIR / "package-lock.json").stat().st_mtime:
            result = subprocess.run(
                ["npm", "ci", "--no-audit", "--no-fund"], cwd=NODE_DIR, capture_output=True, text=True, timeout=300
            )
            if result.returncode != 0:
                pytest.fail(f"`npm ci` in {NODE_DIR} failed:\n{result.stderr[-2000:]}")
    return modules


@pytest.fixture
def run_node(node_modules, router: str, shop: Shop):  # noqa: F811  (`shop` is imported above)
    """Run tests/clients/node/<script> <scenario> against the router as the shop's customer; return its JSON."""

    def run(script: str, scenario: str) -> dict:
        env = {**os.environ, "ROUTER_URL": router, "ROUTER_KEY": shop.key, "ROUTER_MODEL": shop.model.public_id}
        result = subprocess.run(
            ["node", str(NODE_DIR / script), scenario], capture_output=True, text=True, timeout=60, env=env
        )
        assert result.returncode == 0, f"node {script} {scenario} failed:\n{result.stderr[-3000:]}"
        return json.loads(result.stdout.strip().splitlines()[-1])

    return run
