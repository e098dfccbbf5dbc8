"""The `openai-chat` upstream kind: providers speaking OpenAI's Chat Completions API.

Pooled keep-alive connections, timeouts, fallback from route to route, and the reading of the
provider's answer (its SSE events, the characters it generated).

urllib3 directly (requests' own transport, without its per-call overhead): one PoolManager per
worker process, so calls to a provider reuse warm connections.
"""

from __future__ import annotations

import logging
import select
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import gevent.monkey
import urllib3
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.exceptions import HTTPError, NewConnectionError, TimeoutError
from urllib3.util import Retry, parse_url

from core import fastjson
from core.cache import ProcessCache
from core.metrics import upstream_error_observe

from ..candidates import Candidate
from ..errors import ApiError
from ..routing import RouteInfo
from .base import Outgoing, Upstream, UpstreamCall
from .sse import body_pieces, holds_part
from .wire import OneWrite, Prebuilt, RequestHead

log = logging.getLogger(__name__)

# The kernel's poll, even under gevent: with a zero timeout it never blocks.
_kernel_poll = gevent.monkey.get_original("select", "poll")


class _DropCheck:
    """urllib3's check that a pooled connection is still open, asked of the kernel directly.

    urllib3 checks each connection it takes from the pool with a zero-timeout poll. Under gevent that is
    gevent's emulation (a poll object, watchers, a turn of the loop): ~13 µs of CPU per request, against
    ~0.6 µs for the kernel's.
    """

    sock: Any

    @property
    def is_connected(self) -> bool:
        if self.sock is None:
            return False
        poller = _kernel_poll()
        poller.register(self.sock, select.POLLIN)
        return not poller.poll(0)  # readable while idle: closed by the peer, or data nobody asked for


class _Connection(_DropCheck, OneWrite, HTTPConnection):
    pass


class _TLSConnection(_DropCheck, OneWrite, HTTPSConnection):
    pass


class _Pool(urllib3.HTTPConnectionPool):
    ConnectionCls = _Connection


class _TLSPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = _TLSConnection


_pool = urllib3.PoolManager(num_pools=64, maxsize=256, block=False, retries=False)
_pool.pool_classes_by_scheme = {"http": _Pool, "https": _TLSPool}

# Fallback is ours (route to route), never urllib3's. A Retry is never changed (each retry makes a new one),
# so one serves every call: given `retries=False`, urlopen would build one per call.
_NO_RETRIES = Retry(total=False, redirect=False)

# Statuses after which the next route is tried (the provider, not the request, is at fault). A 401 means
# our key for the provider is wrong: the client can do nothing about it, and must not read the provider's
# "Incorrect API key" as a verdict on its own key.
RETRY_STATUSES = frozenset({401, 408, 409, 425, 429, 500, 502, 503, 504, 520, 522, 524, 529})


@dataclass
class _Failure:
    status: int
    code: str
    message: str


@dataclass
class Attempts:
    """What each route did before one answered (or none did)."""

    failures: list[tuple[str, _Failure]] = field(default_factory=list)

    def fail(self, provider: str, failure: _Failure, kind: str) -> None:
        """Note a route's failure, and count it against its provider (core/metrics.py)."""
        self.failures.append((provider, failure))
        upstream_error_observe(provider, kind)


@dataclass(frozen=True)
class _Target:
    """Where and how a route is called: its host's connection pool, the path, headers (their lines prebuilt,
    completions/upstreams/wire.py) and timeouts."""

    pool: urllib3.HTTPConnectionPool
    path: str
    headers: Prebuilt  # the route's own, none of a call's: urlopen's headers for a call that adds none
    timeout: urllib3.Timeout


# Built once per route (and per change of its provider), not on every call.
_targets: ProcessCache[_Target] = ProcessCache("upstream targets", max_entries=1024)


def _target(route: RouteInfo, upstream: Upstream) -> _Target:
    key = (
        upstream.kind,
        route.base_url,
        route.api_key,
        tuple(route.extra_headers.items()),
        route.connect_timeout_s,
        route.read_timeout_s,
    )
    target = _targets.peek(key)
    if target is None:
        url = f"{route.base_url}{upstream.endpoint}"
        headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
        headers.update(route.extra_headers)
        if route.api_key:
            headers.update(upstream.auth(route.api_key))
        pool = _pool.connection_from_url(url)
        path = parse_url(url).request_uri
        head = RequestHead(pool.ConnectionCls, pool.host, pool.port, "POST", path, headers)
        target = _Target(
            pool=pool,
            path=path,
            headers=Prebuilt(head),
            timeout=urllib3.Timeout(connect=route.connect_timeout_s, read=route.read_timeout_s),
        )
        _targets.put(key, target)
    return target


def bearer(api_key: str) -> dict[str, str]:
    """OpenAI's way to send the provider key."""
    return {"Authorization": f"Bearer {api_key}"}


def _request(route: RouteInfo, outgoing: Outgoing) -> urllib3.BaseHTTPResponse:
    target = _target(route, outgoing.upstream)
    return target.pool.urlopen(
        "POST",
        target.path,
        body=outgoing.body,
        headers=Prebuilt(target.headers.head, outgoing.headers) if outgoing.headers else target.headers,
        timeout=target.timeout,
        preload_content=False,
        retries=_NO_RETRIES,
        redirect=False,
    )


def _client_error(route: RouteInfo, response: urllib3.BaseHTTPResponse) -> ApiError:
    """A 4xx from the provider, passed on in OpenAI's shape (the request, not the provider, is wrong)."""
    raw = response.read(64 * 1024)
    response.release_conn()
    message = f"The provider rejected the request (HTTP {response.status})."
    try:
        detail = fastjson.loads(raw).get("error") or {}
        if isinstance(detail, dict) and isinstance(detail.get("message"), str):
            message = detail["message"]
    except (ValueError, AttributeError, RecursionError):  # not JSON, not an object, nested too deep to read
        pass
    if route.api_key:
        message = message.replace(route.api_key, "[redacted]")
    status = response.status if response.status in (400, 404, 413, 422) else 400
    return ApiError(status, message, code="upstream_invalid_request")


def upstream_open(candidates: tuple[Candidate, ...], send_for: Callable[[Candidate], Outgoing]) -> UpstreamCall:
    """Send the request to the first candidate that answers; fall back on connect errors, timeouts, 5xx.

    Candidates are routes, each with its model: a request's fallback models are tried after the routes
    of the models before them, on the same failures. `send_for(candidate)` builds the request for one:
    the kind its route speaks (which says the path and how the key is sent) and the body (the upstream
    model name, the parameters taken and the API differ per route), so a fallback may cross kinds.
    Raises ApiError (502/503/504, or the provider's 4xx) when none answered.
    """
    attempts = Attempts()
    for candidate in candidates:
        route = candidate.route
        try:
            outgoing = send_for(candidate)
            response = _request(route, outgoing)
        except NewConnectionError as exc:
            # Refused or unresolvable: urllib3 derives this from ConnectTimeoutError, but nothing timed out.
            log.warning("upstream %s unreachable: %s", route.provider_name, type(exc).__name__)
            attempts.fail(route.provider_name, _Failure(503, "upstream_unavailable", "unreachable"), "unreachable")
            continue
        except TimeoutError:
            attempts.fail(route.provider_name, _Failure(504, "upstream_timeout", "timed out"), "timeout")
            continue
        except HTTPError as exc:
            log.warning("upstream %s unreachable: %s", route.provider_name, type(exc).__name__)
            attempts.fail(route.provider_name, _Failure(503, "upstream_unavailable", "unreachable"), "unreachable")
            continue
        if 200 <= response.status < 300:
            return UpstreamCall(candidate=candidate, response=response, upstream=outgoing.upstream)
        if response.status in RETRY_STATUSES:
            response.drain_conn()
            response.release_conn()
            log.warning("upstream %s answered %s", route.provider_name, response.status)
            failure = (
                _Failure(429, "upstream_rate_limited", "rate limited")
                if response.status == 429
                else _Failure(502, "upstream_error", f"answered HTTP {response.status}")
            )
            attempts.fail(route.provider_name, failure, "rate_limited" if response.status == 429 else "http_error")
            continue
        raise _client_error(route, response)
    raise _no_route_answered(attempts)


def _no_route_answered(attempts: Attempts) -> ApiError:
    if not attempts.failures:
        return ApiError(503, "No provider is available for this model right now.", code="upstream_unavailable")
    last = attempts.failures[-1][1]
    # Providers are named in our logs, not to customers: the message says what happened, route by route.
    tried = "; ".join(f"route {i} {failure.message}" for i, (_, failure) in enumerate(attempts.failures, 1))
    status = 503 if last.status == 429 else last.status
    return ApiError(
        status,
        f"The upstream provider failed ({tried}). You were not charged; retrying may help.",
        code=last.code,
    )


def sse_batches(response: urllib3.BaseHTTPResponse, quiet_s: float | None = None) -> Iterator[list[bytes]]:
    """The `data` payloads of an SSE byte stream: a list per network read, of the events it completed; an
    empty list each time the provider was silent for `quiet_s` seconds (completions/upstreams/sse.py)."""
    buffer = b""
    for piece in body_pieces(response, quiet_s):
        if not piece:
            if buffer:
                holds_part(response)
            yield []
            continue
        buffer = buffer + piece if buffer else piece
        if b"\r" in buffer:  # on the whole buffer: a read may end between a CR and its LF
            buffer = buffer.replace(b"\r\n", b"\n")
        end = buffer.rfind(b"\n\n")
        if end < 0:
            continue
        complete, buffer = buffer[:end], buffer[end + 2 :]
        if buffer:
            holds_part(response)
        batch = []
        for event in complete.split(b"\n\n"):
            if event.startswith(b"data:") and b"\n" not in event:  # one data line: the usual event
                batch.append(event[5:].lstrip(b" "))
                continue
            data = [line[5:].lstrip(b" ") for line in event.split(b"\n") if line.startswith(b"data:")]
            if data:
                batch.append(b"\n".join(data))
        if batch:
            yield batch


def sse_events(response: urllib3.BaseHTTPResponse, quiet_s: float | None = None) -> Iterator[bytes]:
    """The `data` payloads of an SSE byte stream, as they arrive; b"" for a silence of `quiet_s` seconds."""
    for batch in sse_batches(response, quiet_s):
        if not batch:
            yield b""
        yield from batch


def completion_chars(choices: Any, key: str) -> int:
    """Characters the upstream generated in these choices (content, refusals, tool-call arguments)."""
    total = 0
    for choice in choices if isinstance(choices, list) else ():
        part = choice.get(key) if isinstance(choice, dict) else None
        if not isinstance(part, dict):
            continue
        for field_name in ("content", "refusal", "reasoning", "reasoning_content"):
            if isinstance(part.get(field_name), str):
                total += len(part[field_name])
        for call in part.get("tool_calls") or ():
            function = call.get("function") if isinstance(call, dict) else None
            if isinstance(function, dict):
                total += len(function.get("arguments") or "") + len(function.get("name") or "")
    return total


def answer_ok(body: dict) -> bool:
    """Whether a plain answer is a chat completion the relay can settle."""
    return isinstance(body.get("choices"), list)


UPSTREAM = Upstream(
    kind="openai-chat",
    endpoint="/chat/completions",
    auth=bearer,
    accepts=frozenset({"openai-chat"}),
    siblings=("openai-embeddings",),
    events=sse_events,
    event_batches=sse_batches,
    pumped=True,
    completion_chars=completion_chars,
    answer_ok=answer_ok,
)
