"""Claude Code (pinned in tests/clients/node/package-lock.json) against a live router: `claude -p` with
ANTHROPIC_BASE_URL at the router prints the emulator's answer, on a route that speaks Anthropic's API
(passed through) and on an OpenAI-compatible one (translated), and every model call it made is charged once.

It runs with a scratch HOME, CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1 and every other host behind a
proxy that refuses connections, so nothing leaves the machine.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from completions.models import Generation
from emulator.core import WORDS
from tests.e2e.conftest import ROUTER_LOGS, Shop, assert_settled_once, free_port, generation_settled, make_shop

from .conftest import NODE_DIR

# The emulator's default answer: its first 12 words.
ANSWER = " ".join(WORDS[:12])


def claude(node_modules: Path, router: str, shop: Shop, home: Path) -> subprocess.CompletedProcess:
    dead_proxy = f"http://127.0.0.1:{free_port()}"  # nothing listens there: any outside call fails at once
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(home),
        "ANTHROPIC_BASE_URL": router.removesuffix("/v1"),
        "ANTHROPIC_API_KEY": shop.key,
        "ANTHROPIC_MODEL": shop.model.public_id,
        "ANTHROPIC_DEFAULT_HAIKU_MODEL": shop.model.public_id,
        "ANTHROPIC_SMALL_FAST_MODEL": shop.model.public_id,
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_AUTOUPDATER": "1",
        "HTTP_PROXY": dead_proxy,
        "HTTPS_PROXY": dead_proxy,
        "NO_PROXY": "127.0.0.1,localhost",
    }
    return subprocess.run(
        [str(node_modules / ".bin" / "claude"), "-p", "say hi"],
        capture_output=True,
        text=True,
        timeout=90,
        env=env,
        cwd=home,
        stdin=subprocess.DEVNULL,
    )


@pytest.mark.parametrize(
    ("api", "upstream"),
    [
        ("anthropic-messages", "emulator-claude"),
        ("openai-chat", "emulator-small"),
        ("openai-chat", "emulator-reasoner"),  # its reasoning comes as thinking blocks before the text
    ],
    ids=["anthropic-messages", "openai-chat", "openai-chat-reasoning"],
)
def test_claude_code_prints_the_emulators_answer_and_each_model_call_is_charged_once(
    node_modules, router, emulator_url, transactional_db, tmp_path, api, upstream
):
    shop = make_shop(emulator_url, upstream_model=upstream, api=api, max_output_tokens=8192)
    if api == "openai-chat":
        # Claude Code sends its tools with every turn; the chat emulator would call one. This route takes none.
        from completions.models import Route

        Route.objects.filter(model=shop.model).update(supported_parameters=["max_tokens", "temperature", "stop"])

    try:
        result = claude(node_modules, router, shop, tmp_path)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"claude -p timed out: {exc.stderr!r}\n{ROUTER_LOGS[router].read_text()[-3000:]}")

    assert result.returncode == 0, (
        result.stderr[-3000:] + result.stdout[-3000:] + ROUTER_LOGS[router].read_text()[-3000:]
    )
    assert result.stdout.strip() == ANSWER
    generations = list(Generation.objects.filter(account_id=shop.account_id).order_by("started_at"))
    assert generations  # Claude Code may make several calls (a title, a quota check): each is one charge
    for generation in generations:
        settled = generation_settled(generation.id)
        assert (settled.status, settled.surface) == ("completed", "messages")
        assert settled.cost > 0
        assert_settled_once(settled, settled.cost)


def test_the_pinned_claude_code_is_the_one_installed(node_modules):
    version = subprocess.run(
        [str(node_modules / ".bin" / "claude"), "--version"], capture_output=True, text=True, timeout=60
    ).stdout
    pinned = (NODE_DIR / "package.json").read_text()
    assert version.split()[0] in pinned
