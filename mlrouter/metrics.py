"""`GET /metrics`: the Prometheus scrape (core/metrics.py), served straight from WSGI (mlrouter/wsgi.py).

Never public: it answers a request with `Authorization: Bearer <METRICS_TOKEN>`, or one whose socket
peer is in `METRICS_ALLOWED_IPS` (addresses or networks; the peer, not `X-Forwarded-For`, so a proxy's
own address must not be listed). With neither set, every scrape gets 403. Like the probes it answers
before host validation and the HTTPS redirect: Prometheus scrapes a container's own address over HTTP.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Callable, Iterable
from functools import cache
from typing import Any

from django.conf import settings

from core.metrics import exposition


@cache
def _networks(allowed: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(item, strict=False) for item in allowed)


def scrape_allowed(environ: dict[str, Any]) -> bool:
    """Whether this request may read the metrics: the right token, or an allowed peer address."""
    token = settings.METRICS_TOKEN
    sent = environ.get("HTTP_AUTHORIZATION", "")
    if token and sent.startswith("Bearer ") and hmac.compare_digest(sent[7:].encode(), token.encode()):
        return True
    if not settings.METRICS_ALLOWED_IPS:
        return False
    try:
        peer = ipaddress.ip_address(environ.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    return any(peer in network for network in _networks(tuple(settings.METRICS_ALLOWED_IPS)))


def metrics(environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
    """The scrape, or 403."""
    if not scrape_allowed(environ):
        body = b'{"error": "forbidden"}'
        start_response(
            "403 Forbidden",
            [("Content-Type", "application/json"), ("Content-Length", str(len(body))), ("Cache-Control", "no-store")],
        )
        return [body]
    body, content_type = exposition()
    start_response(
        "200 OK", [("Content-Type", content_type), ("Content-Length", str(len(body))), ("Cache-Control", "no-store")]
    )
    return [body]
