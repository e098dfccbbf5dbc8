"""Project middleware."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from django.middleware.locale import LocaleMiddleware
from django.utils import translation


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
