"""Calling the WSGI entry point in-process, as a server would (the test client uses the site's handler)."""

from __future__ import annotations

import io
from wsgiref.util import setup_testing_defaults

from mlrouter.wsgi import application


def wsgi_call(
    path: str, method: str = "GET", headers: dict[str, str] | None = None, body: bytes = b""
) -> tuple[str, dict, bytes]:
    environ = {
        "PATH_INFO": path,
        "REQUEST_METHOD": method,
        "wsgi.input": io.BytesIO(body),
        "CONTENT_LENGTH": str(len(body)),
        "CONTENT_TYPE": "application/json",
        **(headers or {}),
    }
    setup_testing_defaults(environ)
    environ["HTTP_HOST"] = (headers or {}).get("HTTP_HOST", "localhost")
    seen: dict = {}

    def start_response(status: str, response_headers: list[tuple[str, str]], exc_info=None):
        seen["status"], seen["headers"] = status, dict(response_headers)

    result = application(environ, start_response)
    try:
        body = b"".join(result)
    finally:
        if hasattr(result, "close"):  # optional in WSGI
            result.close()
    return seen["status"], seen["headers"], body
