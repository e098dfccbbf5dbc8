"""The WSGI entry point serves /v1/ with the API's middleware and everything else with the site's."""

from __future__ import annotations

import json

import pytest

from completions import pipeline

from .wsgi import wsgi_call

# The handlers close the request's database connection when it ends, as under a real server.
pytestmark = pytest.mark.django_db(transaction=True)


def test_the_api_is_served_without_the_sites_session_csrf_and_language_middleware():
    status, headers, _ = wsgi_call("/v1/models", headers={"HTTP_ACCEPT_LANGUAGE": "ru"})
    assert status.startswith("200")
    assert "Vary" not in headers and "Content-Language" not in headers
    # What an API response still gets: the security middleware's headers.
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["X-Frame-Options"] == "DENY"


def test_api_errors_stay_in_english_whatever_the_accept_language():
    status, _, body = wsgi_call("/v1/chat/completions", method="GET", headers={"HTTP_ACCEPT_LANGUAGE": "ru"})
    assert status.startswith("405")
    assert b"Method GET is not allowed here." in body


def test_the_site_keeps_its_middleware():
    status, headers, _ = wsgi_call("/admin/login/", headers={"HTTP_ACCEPT_LANGUAGE": "en"})
    assert status.startswith("200")
    assert headers["Content-Language"] == "en"
    assert "Cookie" in headers["Vary"]
    assert "csrftoken" in headers.get("Set-Cookie", "")


CHAT = json.dumps({"model": "x/y", "messages": [{"role": "user", "content": "hi"}]}).encode()


def test_chat_completions_is_served_straight_from_wsgi_with_the_apis_middleware():
    status, headers, body = wsgi_call("/v1/chat/completions", method="POST", body=CHAT)
    assert status.startswith("401")
    assert json.loads(body)["error"]["code"] == "invalid_api_key"
    assert headers["Content-Type"] == "application/json"
    assert (headers["X-Content-Type-Options"], headers["X-Frame-Options"]) == ("nosniff", "DENY")
    assert "Vary" not in headers


def test_an_unexpected_error_on_chat_completions_is_logged_and_answered_in_openais_shape(monkeypatch, caplog):
    def broken(authorization: str):
        raise RuntimeError("a bug")

    monkeypatch.setattr(pipeline, "principal_authenticate", broken)
    status, headers, body = wsgi_call("/v1/chat/completions", method="POST", body=CHAT)
    assert status.startswith("500")
    assert headers["x-should-retry"] == "true"  # before the provider answered: nothing can be charged
    error = json.loads(body)["error"]
    assert (error["code"], error["type"]) == ("internal_error", "server_error")
    assert "a bug" not in body.decode()
    assert "Internal Server Error: /v1/chat/completions" in caplog.text
