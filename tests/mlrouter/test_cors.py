"""CORS on /v1 and nowhere else, through the WSGI entry point in-process.

A browser calling from another origin first sends a preflight (OPTIONS with the method and headers it
wants), then the request with `Origin`. A real Chromium doing both is in tests/e2e/test_cors.py.
"""

from __future__ import annotations

import pytest

from .wsgi import wsgi_call

pytestmark = pytest.mark.django_db(transaction=True)

APP = "https://app.example.com"
SDK_HEADERS = (
    "authorization, content-type, x-api-key, anthropic-version, anthropic-beta, x-stainless-os, x-stainless-arch, "
    "x-stainless-lang, x-stainless-package-version, x-stainless-runtime, x-stainless-runtime-version, "
    "x-stainless-retry-count, x-stainless-timeout, x-request-id"
)


def call(path: str, method: str = "GET", **headers: str) -> tuple[int, dict[str, str], bytes]:
    environ = {f"HTTP_{name.upper()}": value for name, value in headers.items()}
    status, sent, body = wsgi_call(path, method, headers=environ)
    return int(status.split()[0]), {name.lower(): value for name, value in sent.items()}, body


def preflight(path: str, origin: str = APP, asked: str = SDK_HEADERS) -> tuple[int, dict[str, str], bytes]:
    return call(
        path, "OPTIONS", origin=origin, access_control_request_method="POST", access_control_request_headers=asked
    )


def listed(value: str) -> set[str]:
    return {part.strip().lower() for part in value.split(",")}


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/models", "/v1/generation"])
def test_a_preflight_is_answered_204_with_the_methods_headers_and_max_age(path):
    status, headers, body = preflight(path)
    assert (status, body) == (204, b"")
    assert headers["access-control-allow-origin"] == "*"
    assert {"GET", "POST", "OPTIONS"} <= {m.strip() for m in headers["access-control-allow-methods"].split(",")}
    assert listed(SDK_HEADERS) <= listed(headers["access-control-allow-headers"])
    assert int(headers["access-control-max-age"]) >= 600
    assert "access-control-allow-credentials" not in headers
    assert headers["x-request-id"]


def test_a_preflight_asking_for_an_sdk_header_not_listed_yet_is_allowed_it():
    _, headers, _ = preflight("/v1/chat/completions", asked="authorization, x-stainless-brand-new, x-other")
    allowed = listed(headers["access-control-allow-headers"])
    assert "x-stainless-brand-new" in allowed
    assert "x-other" not in allowed


def test_an_answer_to_another_origin_may_be_read_with_our_headers():
    status, headers, _ = call("/v1/chat/completions", "POST", origin=APP)
    assert status == 400  # an error too: the page must be able to read it
    assert headers["access-control-allow-origin"] == "*"
    exposed = listed(headers["access-control-expose-headers"])
    assert {
        "x-request-id",
        "x-generation-id",
        "x-ratelimit-limit",
        "x-ratelimit-remaining",
        "x-ratelimit-reset",
        "x-ratelimit-limit-requests",
        "x-ratelimit-remaining-requests",
        "x-ratelimit-reset-requests",
        "retry-after",
    } <= exposed
    status, headers, _ = call("/v1/models", origin=APP)
    assert (status, headers["access-control-allow-origin"]) == (200, "*")


def test_a_call_without_origin_gets_no_cors_headers():
    _, headers, _ = call("/v1/models")
    assert not [name for name in headers if name.startswith("access-control-")]
    assert "vary" not in headers


def test_allowed_origins_narrow_it(settings):
    settings.CORS_ALLOW_ALL_ORIGINS = False
    settings.CORS_ALLOWED_ORIGINS = [APP]
    status, headers, _ = preflight("/v1/chat/completions")
    assert (status, headers["access-control-allow-origin"]) == (204, APP)
    _, headers, _ = call("/v1/models", origin=APP)
    assert headers["access-control-allow-origin"] == APP
    assert "origin" in listed(headers["vary"])
    for path, method in (("/v1/models", "GET"), ("/v1/chat/completions", "OPTIONS")):
        _, headers, _ = call(path, method, origin="https://elsewhere.example", access_control_request_method="POST")
        assert "access-control-allow-origin" not in headers
    # Without Origin, a cache must still keep the answers to different origins apart.
    _, headers, _ = call("/v1/models")
    assert "origin" in listed(headers["vary"])


@pytest.mark.parametrize("path", ["/admin/login/", "/docs/", "/docs/en/quickstart/", "/telegram/webhook/"])
def test_the_admin_the_docs_and_the_webhook_never_answer_other_origins(path):
    for method in ("GET", "POST"):
        _, headers, _ = call(path, method, origin=APP)
        assert not [name for name in headers if name.startswith("access-control-")], (method, path)
    status, headers, _ = preflight(path)
    assert status != 204
    assert not [name for name in headers if name.startswith("access-control-")]
