"""A web page on another origin calls the live router from Debian's Chromium: plain and streamed.

The page is served from a second local port, so every call is cross-origin and, carrying
`Authorization`, preflighted: that a fetch succeeds at all proves the preflight was allowed.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler

import pytest
import requests

from .conftest import Shop, local_http_server, start_router, stop

sync_api = pytest.importorskip("playwright.sync_api")

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run"]
needs_chromium = pytest.mark.skipif(shutil.which(CHROMIUM) is None, reason="Debian's chromium is not installed")

PAGE = b"""<!doctype html><html><head><meta charset="utf-8"><title>A browser app</title></head>
<body><p>Calls ML Router from another origin.</p></body></html>"""

# Runs in the page: one plain call and one stream, read with fetch + ReadableStream as a browser app does.
CALLS = """async ({base, key, model}) => {
  const headers = {
    "Authorization": `Bearer ${key}`,
    "Content-Type": "application/json",
    "X-Stainless-Lang": "js",
    "X-Stainless-Retry-Count": "0",
    "X-Request-Id": "browser-plain-1",
  };
  const messages = [{role: "user", content: "Hello from a browser"}];
  const plain = await fetch(`${base}/chat/completions`, {
    method: "POST", headers, body: JSON.stringify({model, messages}),
  });
  const answer = await plain.json();
  const streamed = await fetch(`${base}/chat/completions`, {
    method: "POST", headers: {...headers, "X-Request-Id": "browser-stream-1"},
    body: JSON.stringify({model, messages, stream: true}),
  });
  const reader = streamed.body.getReader();
  const decoder = new TextDecoder();
  let text = "";
  let reads = 0;
  for (;;) {
    const {done, value} = await reader.read();
    if (done) break;
    reads += 1;
    text += decoder.decode(value, {stream: true});
  }
  const h = (response, name) => response.headers.get(name);
  return {
    plain: {status: plain.status, answer, requestId: h(plain, "x-request-id"),
            generationId: h(plain, "x-generation-id"), remaining: h(plain, "x-ratelimit-remaining-requests"),
            limit: h(plain, "X-RateLimit-Limit")},
    stream: {status: streamed.status, text, reads, requestId: h(streamed, "x-request-id"),
             generationId: h(streamed, "x-generation-id"), type: h(streamed, "content-type")},
  };
}"""

MODELS = """async (base) => {
  try {
    const response = await fetch(`${base}/models`);
    return {status: response.status, count: (await response.json()).data.length};
  } catch (error) {
    return {error: String(error)};
  }
}"""


class PageHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(PAGE)))
        self.end_headers()
        self.wfile.write(PAGE)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def app_origin() -> Iterator[str]:
    """A second local origin serving the browser app's page."""
    with local_http_server(PageHandler) as url:
        yield url


@pytest.fixture(scope="module")
def narrow_router(app_origin, django_db_setup, django_db_blocker, tmp_path_factory) -> Iterator[str]:
    """A router that answers the app's origin only (API_CORS_ALLOWED_ORIGINS)."""
    with django_db_blocker.unblock():
        url, process = start_router(tmp_path_factory.mktemp("narrow"), API_CORS_ALLOWED_ORIGINS=app_origin)
    try:
        yield url
    finally:
        stop(process)


@pytest.fixture
def browser() -> Iterator:
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def test_a_preflight_on_the_live_router_is_204_and_the_site_stays_closed(router: str):
    origin = "https://app.example.com"
    asked = "authorization, content-type, x-stainless-os, x-stainless-package-version"
    answer = requests.options(
        f"{router}/chat/completions",
        headers={"Origin": origin, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": asked},
        timeout=10,
    )
    assert answer.status_code == 204
    assert answer.headers["Access-Control-Allow-Origin"] == "*"
    assert "POST" in answer.headers["Access-Control-Allow-Methods"]
    assert set(asked.split(", ")) <= {h.strip() for h in answer.headers["Access-Control-Allow-Headers"].split(",")}
    assert answer.headers["Access-Control-Max-Age"]
    assert answer.headers["x-request-id"]
    site = router.removesuffix("/v1")
    for path in ("/admin/login/", "/docs/", "/telegram/webhook/"):
        answer = requests.options(
            site + path, headers={"Origin": origin, "Access-Control-Request-Method": "POST"}, timeout=10
        )
        assert "Access-Control-Allow-Origin" not in answer.headers, path
        answer = requests.get(site + path, headers={"Origin": origin}, timeout=10)
        assert "Access-Control-Allow-Origin" not in answer.headers, path


@needs_chromium
def test_a_page_on_another_origin_calls_the_api_plain_and_streamed(router: str, shop: Shop, app_origin, browser):
    page = browser.new_page()
    page.goto(f"{app_origin}/")
    result = page.evaluate(CALLS, {"base": router, "key": shop.key, "model": shop.model.public_id})

    plain = result["plain"]
    assert plain["status"] == 200
    assert plain["answer"]["choices"][0]["message"]["content"]
    assert plain["answer"]["usage"]["cost"] > 0
    assert plain["requestId"] == "browser-plain-1"
    assert plain["generationId"] == plain["answer"]["id"]
    assert plain["limit"] == "1000" and plain["remaining"].isdigit()

    stream = result["stream"]
    assert stream["status"] == 200
    assert stream["type"].startswith("text/event-stream")
    assert stream["requestId"] == "browser-stream-1"
    assert stream["generationId"].startswith("gen-")
    assert stream["text"].rstrip().endswith("data: [DONE]")
    assert '"content"' in stream["text"] and '"cost"' in stream["text"]
    assert stream["reads"] >= 1


@needs_chromium
def test_a_narrowed_router_answers_only_the_allowed_origin(narrow_router: str, shop: Shop, app_origin, browser):
    page = browser.new_page()
    page.goto(f"{app_origin}/")
    allowed = page.evaluate(CALLS, {"base": narrow_router, "key": shop.key, "model": shop.model.public_id})
    assert allowed["plain"]["status"] == 200 and allowed["stream"]["status"] == 200
    assert page.evaluate(MODELS, narrow_router)["status"] == 200

    # Same server, another origin: the browser refuses to hand the page the answer.
    other = app_origin.replace("127.0.0.1", "localhost")
    page.goto(f"{other}/")
    assert "Failed to fetch" in page.evaluate(MODELS, narrow_router)["error"]
    answer = requests.get(f"{narrow_router}/models", headers={"Origin": other}, timeout=10)
    assert "Access-Control-Allow-Origin" not in answer.headers
    answer = requests.get(f"{narrow_router}/models", headers={"Origin": app_origin}, timeout=10)
    assert answer.headers["Access-Control-Allow-Origin"] == app_origin
