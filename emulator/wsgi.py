"""Framework-free WSGI app for the upstream emulator, and a gevent server that runs it standalone.

Routes (any path prefix is accepted, so a provider base_url may point anywhere on this host):
``POST [prefix][/fail/<mode>]/v1/chat/completions``, ``POST [prefix][/fail/<mode>]/v1/embeddings``,
``POST [prefix][/fail/<mode>]/v1/messages`` (Anthropic's API, emulator/messages.py),
``POST [prefix][/fail/<mode>]/v1/responses`` and
``GET [prefix][/fail/<mode>]/v1/models``.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from emulator import core, messages
from emulator.embeddings import embeddings_reply
from emulator.responses import responses_reply

if TYPE_CHECKING:
    from gevent.pywsgi import WSGIServer

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
Sleep = Callable[[float], None]

_ROUTE = re.compile(r"(?:/fail/([^/]+))?/v1/(chat/completions|embeddings|messages|responses|models)/?$")
_MAX_BODY = 32 * 1024 * 1024


def _time_sleep(seconds: float) -> None:
    """time.sleep looked up per call, so gevent monkey-patching applied later still takes effect."""
    time.sleep(seconds)


def make_app(api_key: str | None = None, *, sleep: Sleep | None = None) -> WSGIApp:
    """Build the WSGI app; api_key None reads EMULATOR_API_KEY once now, "" disables auth."""
    key = os.environ.get("EMULATOR_API_KEY", "") if api_key is None else api_key
    pause = sleep or _time_sleep

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        reply = dispatch(environ, key)
        if reply.delay:
            pause(reply.delay)
        start_response(reply.status_line, reply.header_list())
        # A generator, not a list, so each SSE event is written (and flushed) as soon as it exists.
        return [reply.body] if reply.events is None else core.play(reply.events, pause)

    return app


def dispatch(environ: dict[str, Any], api_key: str | None) -> core.Reply:
    """Route one request to the core and return its Reply."""
    path = environ.get("PATH_INFO") or ""
    match = _ROUTE.search(path)
    if match is None:
        return core.error_reply(404, f"Unknown emulator path {path!r}; use .../v1/chat/completions.")
    fail_mode, endpoint = match.groups()
    if endpoint == "messages":
        return _messages(environ, api_key, fail_mode)
    denied = core.auth_error(environ.get("HTTP_AUTHORIZATION"), api_key)
    if denied is not None:
        return denied
    method = environ.get("REQUEST_METHOD", "GET")
    if endpoint == "models":
        return core.models_reply(fail_mode) if method == "GET" else core.error_reply(405, "Use GET.")
    if method != "POST":
        return core.error_reply(405, "Use POST.")
    raw = _read_body(environ)
    if raw is None:
        return core.error_reply(413, "Request body too large.")
    if endpoint == "embeddings":
        return embeddings_reply(raw, fail_mode)
    headers = {
        "content-type": environ.get("CONTENT_TYPE"),
        "user-agent": environ.get("HTTP_USER_AGENT"),
        "authorization": environ.get("HTTP_AUTHORIZATION"),
        "openai-beta": environ.get("HTTP_OPENAI_BETA"),
    }
    if endpoint == "responses":
        return responses_reply(raw, headers, fail_mode)
    return core.chat_reply(raw, headers, fail_mode)


def _messages(environ: dict[str, Any], api_key: str | None, fail_mode: str | None) -> core.Reply:
    """POST .../v1/messages: Anthropic's API, keyed by `x-api-key` (or `Authorization: Bearer`)."""
    headers = {
        name: environ.get("HTTP_" + name.upper().replace("-", "_"))
        for name in ("user-agent", "authorization", "x-api-key", "anthropic-version", "anthropic-beta")
    }
    headers["content-type"] = environ.get("CONTENT_TYPE")
    denied = messages.auth_error(headers, api_key)
    if denied is not None:
        return denied
    if environ.get("REQUEST_METHOD", "GET") != "POST":
        return messages.error_reply(405, "Use POST.")
    raw = _read_body(environ)
    if raw is None:
        return messages.error_reply(413, "Request body too large.")
    return messages.messages_reply(raw, headers, fail_mode)


def _read_body(environ: dict[str, Any]) -> bytes | None:
    """The request body, or None when it exceeds the size cap."""
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    if length > _MAX_BODY:
        return None
    stream = environ["wsgi.input"]
    if length:
        return stream.read(length)
    # Only servers that mark input as terminated (gevent, for chunked uploads) may be read to EOF safely.
    raw = stream.read(_MAX_BODY + 1) if environ.get("wsgi.input_terminated") else b""
    return None if len(raw) > _MAX_BODY else raw


application = make_app()


def make_server(host: str = "127.0.0.1", port: int = 8100, app: WSGIApp | None = None) -> WSGIServer:
    """A gevent WSGIServer for the emulator; delays use gevent.sleep, so no monkey-patching is needed."""
    import gevent
    from gevent import socket
    from gevent.pywsgi import WSGIServer

    # gevent writes the headers and the body in two sends; without TCP_NODELAY, Nagle's algorithm holds
    # the body until the client's delayed ACK (~40 ms) on every keep-alive request. Accepted sockets
    # inherit the option from the listener.
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    listener.bind((host, port))
    listener.listen(2048)
    # log=None: no per-request access log, which would dominate benchmark time.
    return WSGIServer(listener, app or make_app(sleep=gevent.sleep), log=None)


def serve(host: str = "127.0.0.1", port: int = 8100) -> None:
    """Serve the emulator forever on host:port (blocking)."""
    make_server(host, port).serve_forever()
