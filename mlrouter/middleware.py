"""Project middleware."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable

from corsheaders.conf import conf as cors
from corsheaders.middleware import ACCESS_CONTROL_ALLOW_HEADERS, CorsMiddleware
from django.core.exceptions import DisallowedHost
from django.http import HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.middleware.locale import LocaleMiddleware
from django.utils import translation

from completions.errors import ApiError, error_response
from core.request_ids import HEADER, current_request_id, request_id_accept

security_log = logging.getLogger("django.security.DisallowedHost")

_STAINLESS = re.compile(r"x-stainless-[a-z0-9-]{1,64}")


class SiteLocaleMiddleware(LocaleMiddleware):
    """Django's language negotiation for the admin and pages, not for the JSON API.

    /v1 answers in English whatever the Accept-Language, so it needs neither the negotiation on every
    request (the hot path) nor `Content-Language`/`Vary: Accept-Language` on its responses.
    """

    def process_request(self, request: HttpRequest) -> None:
        if request.path_info.startswith("/v1/"):
            translation.activate("en")
            request.LANGUAGE_CODE = "en"
        else:
            super().process_request(request)

    def process_response(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        if request.path_info.startswith("/v1/"):
            return response
        return super().process_response(request, response)


def ApiLanguageMiddleware(get_response: Callable[[HttpRequest], HttpResponse]) -> Callable:
    """The API's language: English, with no negotiation and no `Content-Language`."""

    def middleware(request: HttpRequest) -> HttpResponse:
        translation.activate("en")
        request.LANGUAGE_CODE = "en"
        return get_response(request)

    return middleware


def RequestIdMiddleware(get_response: Callable[[HttpRequest], HttpResponse]) -> Callable:
    """Every /v1 response carries `x-request-id`: the client's own when sane, else a new one.

    The id is also `request.request_id` (stored on the generation) and the context's current id (log lines).
    """

    def middleware(request: HttpRequest) -> HttpResponse:
        request_id = request_id_accept(request.META.get("HTTP_X_REQUEST_ID"))
        request.request_id = request_id
        current_request_id.set(request_id)
        response = get_response(request)
        response[HEADER] = request_id
        return response

    return middleware


def ApiHostMiddleware(get_response: Callable[[HttpRequest], HttpResponse]) -> Callable:
    """/v1 checks the Host header against ALLOWED_HOSTS too: 400 in the API's shape, as the site does.

    Nothing on the API path would otherwise read the host, so a request for any name would be served.
    """

    def middleware(request: HttpRequest) -> HttpResponse:
        try:
            request.get_host()
        except DisallowedHost as exc:
            security_log.error("%s", exc)
            return error_response(ApiError(400, "Invalid Host header.", code="invalid_host"))
        return get_response(request)

    return middleware


class ApiCorsMiddleware(CorsMiddleware):
    """django-cors-headers for /v1 (settings `CORS_*`), with three differences.

    - A request without `Origin` (every server-side client) is passed straight through while every origin
      is allowed: the answer does not depend on the origin then, and the library would spend ~40 µs per
      request building `request.headers` and patching `Vary`.
    - A preflight is answered 204 No Content.
    - Header names have no wildcard in CORS; the SDKs' `x-stainless-*` family grows with their versions,
      so a preflight asking for any of them is allowed it, beside `CORS_ALLOW_HEADERS`.
    """

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        if "HTTP_ORIGIN" not in request.META and cors.CORS_ALLOW_ALL_ORIGINS:
            return self.get_response(request)
        return super().__call__(request)

    def check_preflight(self, request: HttpRequest) -> HttpResponseBase | None:
        response = super().check_preflight(request)
        if response is not None:
            response.status_code = 204
            del response["content-length"]
        return response

    def add_response_headers(self, request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase:
        super().add_response_headers(request, response)
        if ACCESS_CONTROL_ALLOW_HEADERS in response:
            asked = request.META.get("HTTP_ACCESS_CONTROL_REQUEST_HEADERS", "")
            allowed = set(cors.CORS_ALLOW_HEADERS)
            extra = [
                name
                for name in (part.strip().lower() for part in asked.split(","))
                if _STAINLESS.fullmatch(name) and name not in allowed
            ]
            if extra:
                response[ACCESS_CONTROL_ALLOW_HEADERS] += ", " + ", ".join(extra)
        return response
