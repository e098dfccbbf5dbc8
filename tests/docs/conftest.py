"""Fixtures for the docs tests: the demo catalog, and what the code examples need to run."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from completions.catalog import catalog_import
from completions.demo import demo_catalog
from core.cache import caches_clear
from tests.clients.conftest import node_modules  # noqa: F401  (the pinned npm packages)
from tests.e2e.conftest import emulator_url, routers  # noqa: F401  (fixtures the examples run against)


@pytest.fixture
def demo_models(db) -> Iterator[None]:
    """The demo catalog (`demo/…` models), as `make run` seeds it; nothing answers at its upstream."""
    caches_clear()
    catalog_import(demo_catalog("http://127.0.0.1:9/v1"))
    yield
    caches_clear()


@pytest.fixture(scope="session")
def node_dir(node_modules: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:  # noqa: F811
    """A directory for the JavaScript examples, beside the npm packages the client suite pins (openai-node
    as tests/clients/node/package-lock.json has it), so that `import OpenAI from "openai"` resolves."""
    directory = tmp_path_factory.mktemp("docs-node")
    (directory / "node_modules").symlink_to(node_modules, target_is_directory=True)
    return directory
