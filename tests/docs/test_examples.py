"""Every code example on the docs site, in both languages, run against a live router and the emulator.

A reader copies an example, sets ML_ROUTER_BASE_URL and ML_ROUTER_API_KEY, and runs it; so does this
test, with the demo catalog served by the upstream emulator. An example that stops working fails here.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import redis
import requests
from django.conf import settings
from django.core.management import call_command

from accounts.services import api_key_create
from completions.catalog import catalog_import
from completions.demo import demo_catalog
from core.cache import caches_clear
from docs.context import docs_context
from docs.pages import LANGUAGES, PAGES
from docs.rendering import CodeBlock, code_blocks, page_markdown
from tests.factories import funded_account

from .examples import Directive, directive_parse, output_problems, run


def _executable(blocks: list[CodeBlock]) -> list[CodeBlock]:
    return [block for block in blocks if block.executable]


def _collect() -> list[tuple[str, str, int, str]]:
    """(language, page, position, code language) of every example, read from the page sources."""
    found = []
    for page in PAGES:
        for lang in LANGUAGES:
            source = page.source_path(lang).read_text(encoding="utf-8")
            for index, block in enumerate(_executable(code_blocks(source))):
                found.append((lang, page.slug, index, block.language))
    return found


EXAMPLES = _collect()


@dataclass
class Live:
    """A live router with the demo catalog; each example's code and the key it runs with."""

    base_url: str
    model: str
    blocks: dict[tuple[str, str], list[CodeBlock]]
    keys: dict[tuple[str, str, int], str]


def _keys_for_examples(blocks: dict[tuple[str, str], list[CodeBlock]]) -> dict[tuple[str, str, int], str]:
    """A fresh key per example, of the customer its directive names (committed: the routers must see them)."""
    rich = funded_account("10.00")
    poor = funded_account(str(settings.MIN_BALANCE_USD / 2))
    keys, ids = {}, []
    for (lang, slug), page_blocks in blocks.items():
        for index, block in enumerate(page_blocks):
            account = directive_parse(block.directive).account
            rpm = {"rpm_limit": 1} if account == "limited" else {}
            api_key, secret = api_key_create(account=poor if account == "poor" else rich, **rpm)
            keys[(lang, slug, index)] = secret
            ids.append(api_key.pk)
    if settings.REDIS_URL:
        # A new test database hands out the key ids of an earlier run, whose rate windows may still be open.
        redis.Redis.from_url(settings.REDIS_URL).delete(*(f"rl:key:{pk}" for pk in ids))
    return keys


@pytest.fixture(scope="module")
def live(routers, emulator_url, django_db_setup, django_db_blocker) -> Iterator[Live]:
    with django_db_blocker.unblock():
        caches_clear()
        catalog_import(demo_catalog(emulator_url))
        blocks, model = {}, ""
        for lang in LANGUAGES:
            context = docs_context(lang=lang)
            model = context["example_model"]
            for page in PAGES:
                blocks[(lang, page.slug)] = _executable(code_blocks(page_markdown(page, lang, context)))
        keys = _keys_for_examples(blocks)
    try:
        yield Live(routers[0], model, blocks, keys)
    finally:
        # The routers only see committed rows, so this module commits; leave the database as found.
        with django_db_blocker.unblock():
            call_command("flush", interactive=False, verbosity=0)
        caches_clear()


def _chat(live: Live, key: str) -> requests.Response:
    return requests.post(
        f"{live.base_url}/chat/completions",
        headers={"Authorization": f"Bearer {key}"},
        json={"model": live.model, "messages": [{"role": "user", "content": "Hello"}]},
        timeout=20,
    )


def _environment(live: Live, directive: Directive, code: str, key: str) -> dict[str, str]:
    """A reader's environment: the base URL, a key, and the id of an earlier generation when the code needs one."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/tmp"),
        "LANG": "C.UTF-8",
        "PYTHONIOENCODING": "utf-8",
        "ML_ROUTER_BASE_URL": live.base_url,
        "ML_ROUTER_API_KEY": key,
    }
    if directive.account == "limited":
        # Use up this key's one request of the minute, so that the example meets the limit.
        assert _chat(live, key).status_code == 200
    if "GENERATION_ID" in code:
        response = _chat(live, key)
        assert response.status_code == 200, response.text
        env["GENERATION_ID"] = response.json()["id"]
    return env


@pytest.mark.parametrize(("lang", "slug", "index", "language"), EXAMPLES, ids=["-".join(map(str, e)) for e in EXAMPLES])
@pytest.mark.django_db  # only so that the test database exists when this module runs alone
def test_the_example_runs_and_its_output_makes_sense(live, request, lang, slug, index, language):
    blocks = live.blocks[(lang, slug)]
    assert len(blocks) > index, "the rendered page has fewer examples than its source"
    block = blocks[index]
    assert block.language == language
    directive = directive_parse(block.directive)
    assert directive.checks, "every example says how to check its output (<!-- example: … -->)"
    node_dir = request.getfixturevalue("node_dir") if language == "javascript" else None
    env = _environment(live, directive, block.code, live.keys[(lang, slug, index)])

    result = run(language, block.code, env, node_dir)

    assert result.returncode == 0, f"exit {result.returncode}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
    assert output_problems(directive, result.stdout) == [], result.stderr
