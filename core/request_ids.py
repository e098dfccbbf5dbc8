"""Request ids: one per API request, sent back in `x-request-id`, written into log lines and stored.

A client may send its own `X-Request-Id` to trace a call through its systems; a sane one (printable
ASCII from a small set, at most 128 characters) is used as is, anything else is replaced by ours,
`req_` and 32 hex digits. The id of the request being served is kept in a context variable, so every
log line written while serving it can name it (`RequestIdLogFilter`).
"""

from __future__ import annotations

import logging
import os
import re
from contextvars import ContextVar

HEADER = "x-request-id"
MAX_LENGTH = 128
_SANE = re.compile(r"[A-Za-z0-9._:-]{1,128}")

# Set per request and not reset after it: a stream's body is sent after the middleware has returned,
# and the next request served in the same (green) thread sets its own.
current_request_id: ContextVar[str] = ContextVar("request_id", default="")


def request_id_new() -> str:
    """A fresh request id: `req_` and 128 random bits in hex."""
    return "req_" + os.urandom(16).hex()


def request_id_accept(sent: str | None) -> str:
    """The client's id when it is sane, else a fresh one."""
    if sent and _SANE.fullmatch(sent):
        return sent
    return request_id_new()


class RequestIdLogFilter(logging.Filter):
    """Gives every log record a `request_id`: its request's (Django's request logging passes the request),
    else the one being served, else "-"."""

    def filter(self, record: logging.LogRecord) -> bool:
        request = getattr(record, "request", None)
        record.request_id = getattr(request, "request_id", None) or current_request_id.get() or "-"
        return True
