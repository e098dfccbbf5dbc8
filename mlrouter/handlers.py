"""The WSGI entry point's handlers: the site's, the API's, and the one hot endpoint served straight from WSGI."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from django.conf import settings
from django.core.handlers.wsgi import WSGIHandler, WSGIRequest
from django.http import HttpRequest, HttpResponse
from django.utils.log import log_response
from django.utils.module_loading import import_string

from core.metrics import request_observe, served_of

try:
    from gevent.socket import socket as _GREEN_SOCKET
except ImportError:  # pragma: no cover - gevent is a dependency; a server without it writes as before
    _GREEN_SOCKET = None

log = logging.getLogger("django.request")

WSGIApp = Callable[[dict[str, Any], Callable], Iterable[bytes]]


class ApiHandler(WSGIHandler):
    """Serves /v1/ with `API_MIDDLEWARE` instead of `MIDDLEWARE`.

    Sessions, CSRF, messages, user authentication, language negotiation and static files do nothing
    for an API client (API keys are checked by the views), yet each would run on every call.
    """

    def load_middleware(self, is_async: bool = False) -> None:
        # Django builds the chain from settings.MIDDLEWARE; this runs once, when the process starts.
        site = settings.MIDDLEWARE
        settings.MIDDLEWARE = settings.API_MIDDLEWARE
        try:
            super().load_middleware(is_async)
        finally:
            settings.MIDDLEWARE = site


class ViewHandler:
    """One endpoint served straight from WSGI: Django's request and response, `API_MIDDLEWARE`, the view.

    For the endpoint every API call hits, Django's handler around the view costs more than the
    middleware itself: URL resolution, and `request_started` receivers that look up per-thread
    database and cache state on every request. Here the view is called through the same middleware
    chain, error answers are logged as Django logs them (an unexpected error is answered by `error`,
    which is given the request: whether the request may have been charged decides if a retry is
    invited), and `request_finished` still fires when the response is closed. Each answer is counted
    under `surface` (core/metrics.py), with the model and provider the view noted (`core.metrics.served_mark`).
    """

    def __init__(
        self,
        view: Callable[[HttpRequest], HttpResponse],
        error: Callable[[HttpRequest], HttpResponse],
        surface: str = "",
    ) -> None:
        self.error = error
        self.surface = surface

        def answered(request: HttpRequest) -> HttpResponse:
            # The view's unexpected error is answered inside the chain, as Django's handler does, so
            # that the middleware still adds its headers (x-request-id, CORS) to the 500.
            try:
                return view(request)
            except Exception:
                return self._internal_error(request)

        chain: Callable[[HttpRequest], HttpResponse] = answered
        for path in reversed(settings.API_MIDDLEWARE):
            chain = import_string(path)(chain)
        self.chain = chain

    def _internal_error(self, request: HttpRequest) -> HttpResponse:
        log.exception("Internal Server Error: %s", request.path, extra={"status_code": 500, "request": request})
        response = self.error(request)
        response._has_been_logged = True
        return response

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        request = WSGIRequest(environ)
        try:
            response = self.chain(request)
        except Exception:  # in the middleware itself
            response = self._internal_error(request)
        if response.status_code >= 400:
            log_response(f"{response.reason_phrase}: {request.path}", response=response, request=request)
        if self.surface:
            request_observe(self.surface, response.status_code, *served_of(request))
        headers = [*response.items()]
        headers += [("Set-Cookie", cookie.output(header="")) for cookie in response.cookies.values()]
        start_response(f"{response.status_code} {response.reason_phrase}", headers)
        if response.streaming and _writes_chunked(environ, response):
            return ChunkedWriter(response, environ["gunicorn.socket"])
        return response


def _writes_chunked(environ: dict[str, Any], response: HttpResponse) -> bool:
    """Whether gunicorn's gevent worker frames this response's body in HTTP chunks (its `Response.is_chunked`)."""
    sock = environ.get("gunicorn.socket")
    return (
        _GREEN_SOCKET is not None
        and type(sock) is _GREEN_SOCKET  # a plain socket: a TLS one (a subclass) encrypts in its own `send`
        and environ.get("SERVER_PROTOCOL") == "HTTP/1.1"
        and environ.get("REQUEST_METHOD") != "HEAD"
        and response.status_code not in (204, 304)
        and not response.has_header("Content-Length")
    )


class ChunkedWriter:
    """A streamed response under gunicorn's gevent worker: each piece after the first as one HTTP chunk, one `send`.

    gunicorn writes a piece through its response (`write`, then `write_chunk`: a formatted size line and a
    join) and gevent's `sendall` (a memoryview and a loop of sends with timeout handling): several Python
    layers per relayed event. The first piece still goes through gunicorn, which sends the headers with it;
    every later one is framed here and sent with one non-blocking `send` on the connection's own socket,
    and only when the socket buffer is full does gevent's `sendall` wait for the rest. gunicorn ends the
    body (the last chunk) as usual. A client gone raises from the send as it would from gunicorn's write.
    A response with an `after_write` (a chat stream's, completions/relay.py) has it called with the socket
    after each piece: the stream pump may relay the next pieces from there (completions/pump.py).
    """

    def __init__(self, response: HttpResponse, sock: Any) -> None:
        self.response = response
        self.sock = sock
        self.raw_send = sock._sock.send  # gevent keeps the OS socket non-blocking: a send never waits

    def __iter__(self) -> Iterator[bytes]:
        pieces = iter(self.response)
        for piece in pieces:
            if piece:
                yield piece  # through gunicorn: the headers, then this piece as the first chunk
                break
        after_write = getattr(self.response, "after_write", None)  # the stream pump's turn (completions/relay.py)
        for piece in pieces:
            if piece:
                self._send(b"%X\r\n%b\r\n" % (len(piece), piece))
                if after_write is not None:
                    after_write(self.sock)

    def _send(self, frame: bytes) -> None:
        try:
            sent = self.raw_send(frame)
        except BlockingIOError:
            sent = 0
        if sent < len(frame):
            self.sock.sendall(memoryview(frame)[sent:])  # the buffer is full: gevent waits until it drains

    def close(self) -> None:
        self.response.close()


def dispatching(api: WSGIApp, site: WSGIApp, endpoints: dict[tuple[str, str], WSGIApp]) -> WSGIApp:
    """A WSGI application: `endpoints` by (method, path), then /v1/ to the API's handler, the rest to the site's."""

    def application(environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        endpoint = endpoints.get((environ.get("REQUEST_METHOD", ""), path))
        if endpoint is not None:
            return endpoint(environ, start_response)
        return (api if path.startswith("/v1/") else site)(environ, start_response)

    return application
