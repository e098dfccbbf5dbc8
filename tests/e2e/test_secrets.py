"""The provider's API key never reaches a client, whatever way the provider fails."""

from __future__ import annotations

import json
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler

import pytest

from .conftest import chat, local_http_server, make_shop

PROVIDER_KEY = "sk-secret-e2e-0123456789abcdefABCDEF"


class KeyQuotingProvider(BaseHTTPRequestHandler):
    """A provider whose error messages quote the key it was sent, as some real ones do: /<status>/v1/…"""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        key = self.headers.get("Authorization", "").removeprefix("Bearer ")
        message = f"Incorrect API key provided: {key}. You can find your API key at https://example.com."
        body = json.dumps({"error": {"message": message, "type": "invalid_request_error", "code": None}}).encode()
        self.send_response(int(self.path.split("/")[1]))
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def key_quoting_provider() -> Iterator[str]:
    with local_http_server(KeyQuotingProvider) as url:
        yield url


@pytest.mark.parametrize(
    ("route", "emulator", "status"),
    [
        ("quoting/400", {}, 400),
        ("quoting/404", {}, 404),
        ("quoting/422", {}, 422),
        ("quoting/401", {}, 502),
        ("quoting/403", {}, 400),
        ("quoting/500", {}, 502),
        ("/fail/500/v1", {}, 502),
        ("/fail/timeout/v1", {}, 504),
        ("/v1", {"fail": "drop_mid_stream"}, 200),
        ("/v1", {"fail": "error_mid_stream"}, 200),
    ],
)
def test_no_error_shows_the_providers_key(
    router, emulator_url, key_quoting_provider, transactional_db, route, emulator, status
):
    if route.startswith("quoting/"):
        base = f"{key_quoting_provider}/{route.split('/')[1]}/v1"
    else:
        base = emulator_url.replace("/v1", route)
    shop = make_shop(emulator_url, routes=[base], read_timeout="0.5", provider_key=PROVIDER_KEY)
    body = {"model": shop.model.public_id, "messages": [{"role": "user", "content": "hi"}], "emulator": emulator}
    for stream in (False, True):
        response = chat(router, shop.key, {**body, "stream": stream})
        text = response.text
        expected = 502 if status == 200 and not stream else status  # mid-stream modes fail a plain call outright
        assert response.status_code == expected
        assert "error" in text
        assert "sk-secret" not in text
        assert not any("sk-secret" in value for value in response.headers.values())
