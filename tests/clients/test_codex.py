"""Codex CLI (pinned in node/package.json) against a live router: `codex exec` with a `model_providers`
entry pointing at /v1 and `wire_api = "responses"`, a scratch HOME and no network.

What Codex sends (logged from the real binary): `POST /v1/responses`, streamed, `Authorization: Bearer
<env_key's value>`, with `model`, `input` (developer and user messages of `input_text` parts), `tools`
(function tools and a `namespace` of functions; `web_search` unless the config disables it), `tool_choice`,
`parallel_tool_calls`, `reasoning` (`summary`), `store: false`, `include: ["reasoning.encrypted_content"]`,
`prompt_cache_key` and `client_metadata`.

The emulator answers a request that offers tools with a call of the first one (`exec_command`), which Codex
runs and sends back as a `function_call_output`; the emulator then answers "The tool returned: …", which
Codex prints. That is two model calls, each charged exactly once.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from billing.models import LedgerEntry
from completions.models import Generation, StoredResponse
from docs.context import docs_context
from docs.pages import page_get
from docs.rendering import code_blocks, page_markdown
from tests.e2e.conftest import Shop, assert_settled_once, generation_settled, make_shop
from tests.e2e.test_responses_native import make_native

NODE_DIR = Path(__file__).parent / "node"


def codex_config(router: str, model: str) -> str:
    """The `config.toml` the docs page "Codex CLI" shows, its address and model those of the test router."""
    context = docs_context(lang="en")
    markdown = page_markdown(page_get("codex"), "en", context)
    (config,) = [block.code for block in code_blocks(markdown) if block.language == "toml"]
    assert context["api_base"] in config and f'model = "{context["example_model"]}"' in config
    return config.replace(context["api_base"], router).replace(
        f'model = "{context["example_model"]}"', f'model = "{model}"'
    )


def test_codex_exec_prints_the_emulators_answer_and_each_model_call_is_charged_once(
    node_modules, router: str, shop: Shop, tmp_path: Path
):
    codex_exec_charged_once(node_modules, router, shop, tmp_path)


def test_codex_exec_through_a_native_responses_route(
    node_modules, router: str, transactional_db, emulator_url: str, tmp_path: Path
):
    """The same with the model's route speaking the Responses API: Codex's own body goes to the provider."""
    shop = make_native(emulator_url)

    codex_exec_charged_once(node_modules, router, shop, tmp_path)

    for generation in Generation.objects.filter(account_id=shop.account_id):
        assert generation.upstream_id.startswith("resp_")  # the emulator's Responses answer, not a chat one


def test_codex_exec_with_a_reasoning_model_on_a_chat_route(
    node_modules, router: str, transactional_db, emulator_url: str, tmp_path: Path
):
    """Its reasoning comes as reasoning items with a summary; Codex sends them back, and they are dropped."""
    shop = make_shop(emulator_url, upstream_model="emulator-reasoner")

    codex_exec_charged_once(node_modules, router, shop, tmp_path)


def codex_exec_charged_once(node_modules, router: str, shop: Shop, tmp_path: Path) -> None:
    home = tmp_path / "home"
    codex_home = home / ".codex"
    codex_home.mkdir(parents=True)
    (codex_home / "config.toml").write_text(codex_config(router, shop.model.public_id))
    work = tmp_path / "work"
    work.mkdir()
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(home),
        "CODEX_HOME": str(codex_home),
        "MLROUTER_API_KEY": shop.key,
        # No network: anything but the router goes to a closed port.
        "HTTPS_PROXY": "http://127.0.0.1:9",
        "HTTP_PROXY": "http://127.0.0.1:9",
        "NO_PROXY": "127.0.0.1,localhost",
    }

    result = subprocess.run(
        [str(node_modules / ".bin" / "codex"), "exec", "--skip-git-repo-check", "say hi"],
        cwd=work,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 0, result.stderr[-3000:]
    answer = result.stdout.strip().splitlines()[-1]
    assert answer.startswith("The tool returned:"), (result.stdout, result.stderr[-3000:])
    generations = list(Generation.objects.filter(account_id=shop.account_id).order_by("started_at"))
    assert len(generations) == 2  # the function call, then the answer from its output
    for generation in generations:
        generation = generation_settled(generation.id)
        assert (generation.surface, generation.stream, generation.status) == ("responses", True, "completed")
        assert generation.cost > 0
        assert_settled_once(generation, generation.cost)
    charges = LedgerEntry.objects.filter(account_id=shop.account_id, kind="charge")
    assert sorted(charges.values_list("reference", flat=True)) == sorted(g.id for g in generations)
    assert not StoredResponse.objects.filter(account_id=shop.account_id).exists()  # Codex sends store: false
