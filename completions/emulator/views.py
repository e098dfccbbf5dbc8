"""Thin Django adapter serving the emulator core (the project mounts urls.py under /emulator/)."""

from __future__ import annotations

import os
import time

from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.views.decorators.csrf import csrf_exempt

from completions.emulator import core

API_KEY = os.environ.get("EMULATOR_API_KEY", "")  # read once at import, like the WSGI app


@csrf_exempt
def chat_completions(request: HttpRequest, fail_mode: str | None = None) -> HttpResponseBase:
    """POST .../v1/chat/completions, optionally under /fail/<mode>/."""
    if request.method != "POST":
        return _send(core.error_reply(405, "Use POST."))
    denied = core.auth_error(request.headers.get("Authorization"), API_KEY)
    if denied is not None:
        return _send(denied)
    try:
        raw = request.body
    except RequestDataTooBig:
        return _send(core.error_reply(413, "Request body too large."))
    headers = {name: request.headers.get(name) for name in ("content-type", "user-agent", "authorization")}
    return _send(core.chat_reply(raw, headers, fail_mode))


@csrf_exempt
def models(request: HttpRequest, fail_mode: str | None = None) -> HttpResponseBase:
    """GET .../v1/models, optionally under /fail/<mode>/."""
    if request.method != "GET":
        return _send(core.error_reply(405, "Use GET."))
    denied = core.auth_error(request.headers.get("Authorization"), API_KEY)
    return _send(denied or core.models_reply(fail_mode))


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
