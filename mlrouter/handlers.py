"""The WSGI entry point's two Django handlers: the API's, with the middleware an API uses, and the site's."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from django.conf import settings
from django.core.handlers.wsgi import WSGIHandler


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


def dispatching(api: WSGIHandler, site: WSGIHandler) -> Callable[[dict, Callable], Iterable[bytes]]:
    """A WSGI application that sends /v1/ to the API's handler and everything else to the site's."""

    def application(environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        handler = api if environ.get("PATH_INFO", "").startswith("/v1/") else site
        return handler(environ, start_response)

    return application
