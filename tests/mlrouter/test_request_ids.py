"""Every /v1 answer carries `x-request-id`, success or error, and the log line of an error names it.

Through the WSGI entry point in-process, as a server calls it: the chat endpoint straight from WSGI, the
rest through the API's handler. Generations storing the id are proven end to end (tests/e2e/test_request_ids.py).
"""

from __future__ import annotations

import json
import logging
import re
import threading

import pytest
import redis
from django.conf import settings

from accounts.services import api_key_create
from completions import pipeline
from core.green import start_beside
from core.request_ids import current_request_id, request_id_accept
from tests.factories import funded_account

from .wsgi import wsgi_call

pytestmark = pytest.mark.django_db(transaction=True)

OURS = re.compile(r"req_[0-9a-f]{32}")
CHAT = "/v1/chat/completions"
HI = json.dumps({"model": "x/none", "messages": [{"role": "user", "content": "hi"}]}).encode()


def call(path: str, method: str = "GET", *, key: str = "", request_id: str | None = None, body: bytes = b""):
    headers = {}
    if key:
        headers["HTTP_AUTHORIZATION"] = f"Bearer {key}"
    if request_id is not None:
        headers["HTTP_X_REQUEST_ID"] = request_id
    status, sent, content = wsgi_call(path, method, headers=headers, body=body)
    return int(status.split()[0]), {name.lower(): value for name, value in sent.items()}, content


def fresh_key(**kwargs) -> str:
    api_key, secret = api_key_create(account=funded_account("5.00"), **kwargs)
    if settings.REDIS_URL:
        # A new test database hands out the key ids of an earlier run, whose window may still be open.
        redis.Redis.from_url(settings.REDIS_URL).delete(f"rl:key:{api_key.pk}")
    return secret


def console_line(record: logging.LogRecord) -> str:
    """The record as the configured console handler writes it (settings.LOGGING)."""
    handler = next(h for h in logging.getLogger().handlers if h.name == "console")
    assert handler.filter(record)
    return handler.format(record)


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/v1/models", 200),
        ("GET", "/v1/prices", 200),
        ("GET", "/v1/openapi.json", 200),
        ("GET", "/v1/generation?id=gen-1", 401),
        ("GET", "/v1/no-such-thing", 404),
        ("POST", "/v1/no-such-thing", 404),
        ("GET", CHAT, 405),
        ("POST", CHAT, 401),
    ],
)
def test_every_api_answer_carries_a_fresh_request_id(method, path, status):
    path, _, query = path.partition("?")
    got, headers, _ = wsgi_call_with_query(method, path, query)
    assert got == status
    assert OURS.fullmatch(headers["x-request-id"])
    _, again, _ = wsgi_call_with_query(method, path, query)
    assert again["x-request-id"] != headers["x-request-id"]


def wsgi_call_with_query(method: str, path: str, query: str):
    status, sent, content = wsgi_call(
        path, method, headers={"QUERY_STRING": query}, body=HI if method == "POST" else b""
    )
    return int(status.split()[0]), {name.lower(): value for name, value in sent.items()}, content


def test_the_errors_of_chat_completions_carry_it():
    key = fresh_key(rpm_limit=2)
    assert call(CHAT, "POST", body=b"{")[0] == 400
    assert call(CHAT, "POST", body=HI)[0] == 401
    status, headers, body = call(CHAT, "POST", key=key, body=HI)
    assert (status, json.loads(body)["error"]["code"]) == (404, "model_not_found")
    assert OURS.fullmatch(headers["x-request-id"])
    call(CHAT, "POST", key=key, body=HI)
    status, headers, _ = call(CHAT, "POST", key=key, body=HI, request_id="client-429")
    assert status == 429
    assert headers["x-request-id"] == "client-429"
    assert (headers["x-ratelimit-limit-requests"], headers["x-ratelimit-remaining-requests"]) == ("2", "0")
    assert re.fullmatch(r"\d+(\.\d+)?s|\d+ms|1m0s", headers["x-ratelimit-reset-requests"])
    assert headers["x-ratelimit-limit"] == "2"


def test_the_read_endpoints_carry_it_on_their_errors_too():
    key = fresh_key()
    status, headers, _ = call("/v1/generation", key=key)
    assert status == 400 and OURS.fullmatch(headers["x-request-id"])
    status, headers, _ = call("/v1/models/no/such-model", request_id="lookup-1")
    assert (status, headers["x-request-id"]) == (404, "lookup-1")


@pytest.mark.parametrize(
    "sent", ["abc", "3f2a-41c9.b:7_x", "A" * 128, "req_0123456789abcdef0123456789abcdef", "trace:span:1"]
)
def test_a_sane_client_id_is_echoed(sent):
    for path, method in (("/v1/models", "GET"), (CHAT, "POST")):
        assert call(path, method, request_id=sent, body=HI)[1]["x-request-id"] == sent


@pytest.mark.parametrize(
    "sent", ["", "A" * 129, "has space", "semi;colon", "<script>", "ünïcode", "tab\tin", "slash/y", "comma,y"]
)
def test_an_insane_client_id_is_replaced_by_ours(sent):
    for path, method in (("/v1/models", "GET"), (CHAT, "POST")):
        assert OURS.fullmatch(call(path, method, request_id=sent, body=HI)[1]["x-request-id"])
    assert OURS.fullmatch(request_id_accept(sent))


def test_the_site_is_not_given_request_ids():
    status, headers = wsgi_call("/admin/login/")[:2]
    assert status.startswith("200")
    assert "x-request-id" not in {name.lower() for name in headers}


def test_a_500_carries_the_id_and_its_log_line_names_it(monkeypatch, caplog):
    def broken(authorization: str):
        raise RuntimeError("a bug")

    monkeypatch.setattr(pipeline, "principal_authenticate", broken)
    status, headers, body = call(CHAT, "POST", body=HI, request_id="support-ticket-42")
    assert status == 500
    assert json.loads(body)["error"]["code"] == "internal_error"
    assert headers["x-request-id"] == "support-ticket-42"
    [record] = [r for r in caplog.records if r.getMessage() == f"Internal Server Error: {CHAT}"]
    assert "[support-ticket-42] Internal Server Error" in console_line(record)
    assert "RuntimeError: a bug" in console_line(record)


def test_the_log_line_of_a_client_error_names_its_request(caplog):
    status, headers, _ = call(CHAT, "POST", body=HI)
    assert status == 401
    [record] = [r for r in caplog.records if r.getMessage() == f"Unauthorized: {CHAT}"]
    assert f"[{headers['x-request-id']}] Unauthorized: {CHAT}" in console_line(record)
    status, headers, _ = call("/v1/nope")
    [record] = [r for r in caplog.records if r.getMessage() == "Not Found: /v1/nope"]
    assert f"[{headers['x-request-id']}] Not Found: /v1/nope" in console_line(record)


def test_lines_logged_outside_a_request_say_so(caplog):
    current_request_id.set("")
    logging.getLogger("billing.tasks").warning("a background job's line")
    [record] = [r for r in caplog.records if r.getMessage() == "a background job's line"]
    assert "WARNING billing.tasks [-] a background job's line" in console_line(record)


def test_work_started_beside_a_request_logs_under_its_id():
    current_request_id.set("req-beside")
    seen: list[str] = []
    done = threading.Event()
    start_beside(lambda: (seen.append(current_request_id.get()), done.set()))
    assert done.wait(5)
    assert seen == ["req-beside"]


def test_an_unknown_host_on_v1_is_a_400_in_the_apis_shape_with_its_request_id():
    for path, method in (("/v1/models", "GET"), ("/v1/chat/completions", "POST")):
        status, headers, body = wsgi_call(path, method=method, headers={"HTTP_HOST": "evil.example"})
        assert status.startswith("400")
        assert json.loads(body)["error"]["code"] == "invalid_host"
        assert headers["x-request-id"].startswith("req_")
