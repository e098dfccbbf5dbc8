"""A fake Telegram Bot API server for tests: a local HTTP server that records every method call.

Point TELEGRAM_API_URL at `server.url` and TELEGRAM_BOT_TOKEN at `server.token`; Telegram is never
called. Each call answers `{"ok": true, "result": ...}` with a plausible result, unless a test queued a
failure with `fail(method, ...)`. `getUpdates` hands out updates queued with `queue_updates`.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest

TOKEN = "123456:TEST-fake-bot-token"
DROPPED = 0  # the "status" of a call answered by closing the connection (FakeBotApi.drop)
BOT_USER = {"id": 123456, "is_bot": True, "first_name": "ML Router", "username": "ML_Router_bot"}
_TRUE_METHODS = {
    "answerCallbackQuery",
    "answerPreCheckoutQuery",
    "deleteWebhook",
    "refundStarPayment",
    "setMyCommands",
    "setWebhook",
}


@dataclass(frozen=True)
class Call:
    """One Bot API method call as the fake server received it (all parameter values are strings)."""

    method: str
    token: str
    params: dict[str, str]

    def json(self, name: str) -> Any:
        """Return a JSON-encoded parameter (reply_markup, prices, …) decoded."""
        return json.loads(self.params[name])

    @property
    def chat_id(self) -> int:
        return int(self.params["chat_id"])

    @property
    def text(self) -> str:
        return self.params.get("text", "")

    def buttons(self) -> list[list[tuple[str, str]]]:
        """Return the inline keyboard as rows of (label, callback data); [] without one."""
        if "reply_markup" not in self.params:
            return []
        rows = self.json("reply_markup")["inline_keyboard"]
        return [[(b["text"], b.get("callback_data", "")) for b in row] for row in rows]


@dataclass
class FakeBotApi:
    """The server's state: calls received, failures to return, updates to hand out."""

    url: str = ""
    token: str = TOKEN
    calls: list[Call] = field(default_factory=list)
    failures: dict[str, list[tuple[int, str]]] = field(default_factory=dict)
    updates: list[dict] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    message_ids: Iterator[int] = field(default_factory=lambda: itertools.count(1000))

    def fail(self, method: str, *, error_code: int = 400, description: str = "Bad Request", times: int = 1) -> None:
        """Make the next `times` calls of `method` fail as Telegram does."""
        with self.lock:
            self.failures.setdefault(method, []).extend([(error_code, description)] * times)

    def drop(self, method: str, *, times: int = 1) -> None:
        """Make the next `times` calls of `method` end with the connection closed and no answer at all."""
        with self.lock:
            self.failures.setdefault(method, []).extend([(DROPPED, "")] * times)

    def queue_updates(self, *updates: dict) -> None:
        """Hand these out on the next getUpdates."""
        with self.lock:
            self.updates.extend(updates)

    def called(self, method: str | None = None) -> list[Call]:
        """Return the calls received so far, of one method if given."""
        with self.lock:
            return [c for c in self.calls if method is None or c.method == method]

    def sent(self) -> list[str]:
        """Return the texts of sendMessage and editMessageText calls, in order."""
        return [c.text for c in self.called() if c.method in ("sendMessage", "editMessageText")]

    def last(self, method: str) -> Call:
        calls = self.called(method)
        assert calls, f"no {method} call was made; calls: {[c.method for c in self.called()]}"
        return calls[-1]

    def reset(self) -> None:
        with self.lock:
            self.calls.clear()
            self.failures.clear()
            self.updates.clear()

    def answer(self, method: str, token: str, params: dict[str, str]) -> tuple[int, dict]:
        with self.lock:
            self.calls.append(Call(method=method, token=token, params=params))
            queued = self.failures.get(method)
            if queued:
                code, description = queued.pop(0)
                return code, {"ok": False, "error_code": code, "description": description}
            if method == "getUpdates":
                result: Any = list(self.updates)
                self.updates.clear()
                return 200, {"ok": True, "result": result}
            message_id = next(self.message_ids)
        return 200, {"ok": True, "result": self._result(method, params, message_id)}

    def _result(self, method: str, params: dict[str, str], message_id: int) -> Any:
        if method in _TRUE_METHODS:
            return True
        if method == "getMe":
            return BOT_USER
        if method == "getWebhookInfo":
            return {"url": "", "has_custom_certificate": False, "pending_update_count": 0}
        if method in ("sendMessage", "sendInvoice", "editMessageText"):
            chat_id = int(params.get("chat_id", 0))
            message: dict[str, Any] = {
                "message_id": int(params.get("message_id", message_id)),
                "date": int(time.time()),
                "chat": {"id": chat_id, "type": "private"},
                "from": BOT_USER,
            }
            if "text" in params:
                message["text"] = params["text"]
            return message
        return True


class _Handler(BaseHTTPRequestHandler):
    api: FakeBotApi

    def _handle(self) -> None:
        parts = urlsplit(self.path)
        segments = parts.path.strip("/").split("/")
        if len(segments) != 2 or not segments[0].startswith("bot"):
            self._reply(404, {"ok": False, "error_code": 404, "description": "Not Found"})
            return
        params = dict(parse_qsl(parts.query, keep_blank_values=True))
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        content_type = self.headers.get("Content-Type", "")
        if body and content_type.startswith("application/json"):
            params.update({k: v if isinstance(v, str) else json.dumps(v) for k, v in json.loads(body).items()})
        elif body and content_type.startswith("application/x-www-form-urlencoded"):
            params.update(parse_qsl(body.decode(), keep_blank_values=True))
        status, payload = self.api.answer(segments[1], segments[0][3:], params)
        if status == DROPPED:
            self.close_connection = True  # no status line: the client sees the connection closed
            return
        self._reply(status, payload)

    do_GET = _handle
    do_POST = _handle

    def _reply(self, status: int, payload: dict) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # the test output stays quiet
        pass


class FakeBotApiServer:
    """Serve a FakeBotApi on a free local port in a thread."""

    def __init__(self) -> None:
        self.api = FakeBotApi()
        handler = type("Handler", (_Handler,), {"api": self.api})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self.api.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-bot-api", daemon=True)

    def __enter__(self) -> FakeBotApi:
        self._thread.start()
        return self.api

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture(scope="session")
def _fake_bot_api_server() -> Iterator[FakeBotApi]:
    with FakeBotApiServer() as api:
        yield api


@pytest.fixture
def fake_bot_api(_fake_bot_api_server: FakeBotApi, settings) -> Iterator[FakeBotApi]:
    """A fake Bot API with no calls recorded yet, that the bot's settings point at."""
    settings.TELEGRAM_API_URL = _fake_bot_api_server.url
    settings.TELEGRAM_BOT_TOKEN = _fake_bot_api_server.token
    _fake_bot_api_server.reset()
    yield _fake_bot_api_server
    _fake_bot_api_server.reset()
