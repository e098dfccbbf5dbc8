from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


def test_the_api_ignores_accept_language(client):
    response = client.get("/v1/models", HTTP_ACCEPT_LANGUAGE="ru")
    assert response.status_code == 200
    assert "Content-Language" not in response.headers
    assert "Accept-Language" not in response.headers.get("Vary", "")
    error = client.delete("/v1/models", HTTP_ACCEPT_LANGUAGE="ru").json()["error"]
    assert error["message"].isascii()


def test_the_admin_still_negotiates_the_language(client):
    response = client.get("/admin/login/", HTTP_ACCEPT_LANGUAGE="en")
    assert response.headers["Content-Language"] == "en"
    assert "Log in" in response.content.decode()
