"""Thin Django adapter serving the emulator core (the project mounts urls.py under /emulator/)."""

from __future__ import annotations

import time

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.views.decorators.csrf import csrf_exempt

from emulator import core
from emulator import messages as anthropic
from emulator.embeddings import embeddings_reply
from emulator.responses import responses_reply

ANTHROPIC_HEADERS = ("content-type", "user-agent", "authorization", "x-api-key", "anthropic-version", "anthropic-beta")


@csrf_exempt
def chat_completions(request: HttpRequest, fail_mode: str | None = None) -> HttpResponseBase:
    """POST .../v1/chat/completions, optionally under /fail/<mode>/."""
    denied = _denied(request)
    if denied is not None:
        return _send(denied)
    if request.method != "POST":
        return _send(core.error_reply(405, "Use POST."))
    try:
        raw = request.body
    except RequestDataTooBig:
        return _send(core.error_reply(413, "Request body too large."))
    headers = {name: request.headers.get(name) for name in ("content-type", "user-agent", "authorization")}
    return _send(core.chat_reply(raw, headers, fail_mode))


@csrf_exempt
def embeddings(request: HttpRequest, fail_mode: str | None = None) -> HttpResponseBase:
    """POST .../v1/embeddings, optionally under /fail/<mode>/."""
    denied = _denied(request)
    if denied is not None:
        return _send(denied)
    if request.method != "POST":
        return _send(core.error_reply(405, "Use POST."))
    try:
        raw = request.body
    except RequestDataTooBig:
        return _send(core.error_reply(413, "Request body too large."))
    return _send(embeddings_reply(raw, fail_mode))


@csrf_exempt
def responses(request: HttpRequest, fail_mode: str | None = None) -> HttpResponseBase:
    """POST .../v1/responses, optionally under /fail/<mode>/."""
    denied = _denied(request)
    if denied is not None:
        return _send(denied)
    if request.method != "POST":
        return _send(core.error_reply(405, "Use POST."))
    try:
        raw = request.body
    except RequestDataTooBig:
        return _send(core.error_reply(413, "Request body too large."))
    names = ("content-type", "user-agent", "authorization", "openai-beta")
    headers = {name: request.headers.get(name) for name in names}
    return _send(responses_reply(raw, headers, fail_mode))


def messages(request: HttpRequest, fail_mode: str | None = None) -> HttpResponseBase:
    """POST .../v1/messages (Anthropic's Messages API), optionally under /fail/<mode>/."""
    headers = {name: request.headers.get(name) for name in ANTHROPIC_HEADERS}
    key = settings.EMULATOR_API_KEY
    if not key and not settings.DEBUG:
        return _send(anthropic.error_reply(503, "The emulator is enabled outside DEBUG without EMULATOR_API_KEY."))
    denied = anthropic.auth_error(headers, key)
    if denied is not None:
        return _send(denied)
    if request.method != "POST":
        return _send(anthropic.error_reply(405, "Use POST."))
    try:
        raw = request.body
    except RequestDataTooBig:
        return _send(anthropic.error_reply(413, "Request body too large."))
    return _send(anthropic.messages_reply(raw, headers, fail_mode))


@csrf_exempt
def models(request: HttpRequest, fail_mode: str | None = None) -> HttpResponseBase:
    """GET .../v1/models, optionally under /fail/<mode>/."""
    denied = _denied(request)
    if denied is not None:
        return _send(denied)
    if request.method != "GET":
        return _send(core.error_reply(405, "Use GET."))
    return _send(core.models_reply(fail_mode))


def _denied(request: HttpRequest) -> core.Reply | None:
    """401 without the right key; outside DEBUG a missing EMULATOR_API_KEY closes the emulator (503)."""
    key = settings.EMULATOR_API_KEY
    if not key and not settings.DEBUG:  # an enabled but keyless emulator must not serve openly
        return core.error_reply(503, "The emulator is enabled outside DEBUG without EMULATOR_API_KEY.")
    return core.auth_error(request.headers.get("Authorization"), key)


def _send(reply: core.Reply) -> HttpResponseBase:
    """Convert a core Reply into a Django response, sleeping first for emulated latency."""
    if reply.delay:
        time.sleep(reply.delay)  # gevent workers monkey-patch time.sleep, so this only parks a greenlet
    if reply.events is None:
        return HttpResponse(reply.body, status=reply.status, content_type=core.JSON_TYPE)
    response = StreamingHttpResponse(
        core.play(reply.events, time.sleep), status=reply.status, content_type=core.SSE_TYPE
    )
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"
    return response
