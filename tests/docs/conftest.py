"""Fixtures for the docs tests: the demo catalog, and what the code examples need to run."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from completions.catalog import catalog_import
from completions.demo import demo_catalog
from core.cache import caches_clear
from tests.e2e.conftest import emulator_url, routers  # noqa: F401  (fixtures the examples run against)

NODE_PACKAGE = os.environ.get("DOCS_NODE_OPENAI", "openai@4")
NODE_MIN_MAJOR = 18


@pytest.fixture
def demo_models(db) -> Iterator[None]:
    """The demo catalog (`demo/…` models), as `make run` seeds it; nothing answers at its upstream."""
    caches_clear()
    catalog_import(demo_catalog("http://127.0.0.1:9/v1"))
    yield
    caches_clear()


def _node_cache_dir() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    # One directory per package spec: changing the pin installs afresh instead of reusing the old version.
    return base / "mlrouter-docs-node" / NODE_PACKAGE.replace("/", "_")


def _node_major() -> int:
    out = subprocess.run(["node", "--version"], capture_output=True, text=True, timeout=10).stdout
    return int(out.strip().lstrip("v").split(".")[0] or 0)


@pytest.fixture(scope="session")
def node_dir() -> Path:
    """A directory outside the repository with the `openai` npm package installed (once, then reused).

    Skips the JavaScript examples, and only them, when Node.js or the npm registry is not available.
    DOCS_NODE_OPENAI=openai@7 (say) runs them against another version of the package.
    """
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("JavaScript examples not run: node or npm is not installed")
    if _node_major() < NODE_MIN_MAJOR:
        pytest.skip(f"JavaScript examples not run: Node.js {NODE_MIN_MAJOR}+ is needed")
    directory = _node_cache_dir()
    directory.mkdir(parents=True, exist_ok=True)
    # Test sessions may run side by side; one installs, the others wait for it.
    with open(directory / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (directory / "node_modules" / "openai" / "package.json").exists():
            try:
                result = subprocess.run(
                    ["npm", "install", "--prefix", str(directory), NODE_PACKAGE, "--no-audit", "--no-fund"],
                    capture_output=True,
                    text=True,
                    timeout=90,
                )
            except subprocess.TimeoutExpired:
                pytest.skip(f"JavaScript examples not run: `npm install {NODE_PACKAGE}` timed out")
            if result.returncode != 0:
                pytest.skip(f"JavaScript examples not run: `npm install {NODE_PACKAGE}` failed: {result.stderr[-500:]}")
    return directory
