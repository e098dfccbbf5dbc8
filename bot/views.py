"""The Telegram webhook: authenticated by the secret token Telegram echoes in a header."""

from __future__ import annotations

import hmac
import json
import logging

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseForbidden
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from .dispatch import process_update

logger = logging.getLogger(__name__)

# Real updates are a few kilobytes; anything near this is not one.
MAX_UPDATE_BYTES = 1024 * 1024


def _secret_ok(request: HttpRequest) -> bool:
    expected = settings.TELEGRAM_WEBHOOK_SECRET
    given = request.headers.get("X-Telegram-Bot-Api-Secret-Token", "")
    # No secret configured means no webhook: an open one would let anyone forge payments.
    return bool(expected) and hmac.compare_digest(given.encode(), expected.encode())


@csrf_exempt
@require_POST
def webhook(request: HttpRequest) -> HttpResponse:
    """Take one update. A 200 tells Telegram not to resend it, so only a failure to handle it is not one."""
    if not _secret_ok(request):
        logger.warning("Telegram webhook call refused: wrong or missing secret token")
        return HttpResponseForbidden()
    try:
        declared = int(request.headers.get("Content-Length") or 0)
    except ValueError:
        declared = 0
    body = b"" if declared > MAX_UPDATE_BYTES else request.read(MAX_UPDATE_BYTES + 1)
    if declared > MAX_UPDATE_BYTES or len(body) > MAX_UPDATE_BYTES:
        logger.warning("Telegram update of %s bytes dropped: over %s", max(declared, len(body)), MAX_UPDATE_BYTES)
        return HttpResponse()
    try:
        update = json.loads(body)
    except (ValueError, RecursionError):
        logger.warning("Telegram update dropped: not JSON")
        return HttpResponse()
    try:
        process_update(update)
    except Exception:
        # Telegram redelivers on an error; a repeat is safe, payments being credited once per charge id.
        logger.exception("Telegram update %s failed", update.get("update_id"))
        return HttpResponse(status=500)
    return HttpResponse()
