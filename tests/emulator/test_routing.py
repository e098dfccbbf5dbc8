"""Where the emulator is reachable: routed only with DEBUG or EMULATOR_ENABLED, keyed outside DEBUG."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.core.checks import run_checks
from django.test import override_settings
from django.urls import Resolver404, clear_url_caches, resolve

import mlrouter.urls

CHAT = {"model": "emulator-small", "messages": [{"role": "user", "content": "Hello there, emulator!"}]}


def _reload_urls() -> None:
    importlib.reload(mlrouter.urls)
    clear_url_caches()


@pytest.fixture
def routed() -> Iterator[Callable[..., None]]:
    """Rebuild the project's URLconf under the given settings; the original one is restored afterwards."""
    applied: list[override_settings] = []

    def rebuild(**values: Any) -> None:
        override = override_settings(**values)
        override.enable()
        applied.append(override)
        _reload_urls()

    yield rebuild
    for override in reversed(applied):
        override.disable()
    _reload_urls()


def test_it_is_not_routed_without_debug_or_emulator_enabled(routed, client) -> None:
    routed(DEBUG=False, EMULATOR_ENABLED=False)
    with pytest.raises(Resolver404):
        resolve("/emulator/v1/models")
    assert client.post("/emulator/v1/chat/completions", CHAT, content_type="application/json").status_code == 404


@pytest.mark.parametrize(("debug", "enabled"), [(True, False), (False, True)])
def test_debug_or_emulator_enabled_routes_it(routed, debug: bool, enabled: bool) -> None:
    routed(DEBUG=debug, EMULATOR_ENABLED=enabled)
    assert resolve("/emulator/v1/models").view_name == "emulator:models"


def test_in_debug_it_answers_without_a_key(routed, client) -> None:
    routed(DEBUG=True, EMULATOR_ENABLED=False, EMULATOR_API_KEY="")
    response = client.post("/emulator/v1/chat/completions", CHAT, content_type="application/json")
    assert response.status_code == 200 and response.json()["usage"]["total_tokens"] == 21


def test_enabled_outside_debug_without_a_key_it_refuses_every_request(routed, client) -> None:
    routed(DEBUG=False, EMULATOR_ENABLED=True, EMULATOR_API_KEY="")
    bearer = {"HTTP_AUTHORIZATION": "Bearer "}
    responses = [
        client.get("/emulator/v1/models"),
        client.get("/emulator/fail/500/v1/models", **bearer),
        client.get("/emulator/v1/chat/completions"),
        client.post("/emulator/v1/chat/completions", CHAT, content_type="application/json", **bearer),
    ]
    assert [r.status_code for r in responses] == [503, 503, 503, 503]
    assert "EMULATOR_API_KEY" in responses[-1].json()["error"]["message"]


def test_enabled_outside_debug_it_answers_only_its_key(routed, client) -> None:
    routed(DEBUG=False, EMULATOR_ENABLED=True, EMULATOR_API_KEY="emu-secret")

    def post(**headers: str) -> Any:
        return client.post("/emulator/v1/chat/completions", CHAT, content_type="application/json", **headers)

    assert post().status_code == 401
    assert post(HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    assert client.get("/emulator/v1/models", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    ok = post(HTTP_AUTHORIZATION="Bearer emu-secret")
    assert ok.status_code == 200 and ok.json()["usage"]["total_tokens"] == 21


def _deploy_ids(**values: Any) -> list[str]:
    with override_settings(**values):
        return [message.id for message in run_checks(include_deployment_checks=True)]


@pytest.mark.parametrize("key", ["", "emu-secret"])
def test_check_deploy_warns_when_it_is_enabled_outside_debug(key: str) -> None:
    assert "emulator.W001" in _deploy_ids(DEBUG=False, EMULATOR_ENABLED=True, EMULATOR_API_KEY=key)


@pytest.mark.parametrize(("debug", "enabled"), [(False, False), (True, True)])
def test_check_deploy_is_quiet_when_it_is_off_or_in_debug(debug: bool, enabled: bool) -> None:
    assert "emulator.W001" not in _deploy_ids(DEBUG=debug, EMULATOR_ENABLED=enabled)


def test_plain_checks_do_not_warn_about_it() -> None:
    with override_settings(DEBUG=False, EMULATOR_ENABLED=True):
        assert "emulator.W001" not in [message.id for message in run_checks()]
