"""Sending the upstream call while the request's hold is being placed, for accounts this process just saw rich.

The hold is one PostgreSQL round trip; the upstream's first byte is another wait. Overlapping the two
takes the hold off the request's critical path, but only where the hold is all but certain: this
process placed one for the account moments ago and left it many times this request's worst case
available, and the key has no spend limit. Should the hold be refused after all, the call is abandoned
before anything reaches the client: a customer is never served or charged without a hold (the provider
may bill us for the abandoned call). Only a cooperative (gevent) server runs the two at once.
Tests: tests/completions/test_early_start.py, tests/e2e/test_early_start.py.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from decimal import Decimal

import gevent
from django.conf import settings

from billing.services import BillingError
from core.cache import ProcessCache
from core.green import COOPERATIVE

from .candidates import Candidate
from .errors import ApiError
from .settlement import Started, generation_start
from .upstreams import UpstreamCall, upstream_open

log = logging.getLogger(__name__)

# An upstream call may go out before its hold is placed only for an account seen this recently with at
# least this many times the request's worst case available.
EARLY_START_WITHIN_S = 5.0
EARLY_START_MARGIN = 10

# Account id -> its available balance right after this process's last hold on it.
headroom: ProcessCache[Decimal] = ProcessCache("account headroom", ttl=EARLY_START_WITHIN_S, max_entries=100_000)


def upstream_may_start_early(started: Started) -> bool:
    """Whether the upstream call may be sent while the request's hold is being placed."""
    if started.principal.spend_limit is not None:
        return False
    available = headroom.peek(started.principal.account_id)
    if available is None:
        return False
    return available >= started.hold_amount * EARLY_START_MARGIN + settings.MIN_BALANCE_USD


class EarlyCall:
    """The upstream call in its own green thread, started while the request's hold is being placed."""

    def __init__(self, candidates: tuple[Candidate, ...], send_for: Callable) -> None:
        self._greenlet = gevent.spawn(_open_or_refusal, candidates, send_for)

    def result(self) -> UpstreamCall:
        """The call that answered (waiting for it), or the ApiError of none answering."""
        outcome = self._greenlet.get()
        if isinstance(outcome, ApiError):
            raise outcome
        return outcome

    def abandon(self) -> None:
        """The hold was refused: drop the call at whatever stage it is (its connection is closed, not reused)."""
        if not self._greenlet.ready():
            self._greenlet.kill()
        elif self._greenlet.successful():
            self._greenlet.value.response.close()


def _open_or_refusal(candidates: tuple[Candidate, ...], send_for: Callable) -> UpstreamCall | ApiError:
    """`upstream_open`, with no route answering returned rather than raised.

    A green thread that dies of an exception has gevent print it with its arguments: their reprs reach the
    catalog's model instances, and a lazy foreign key read there would take a pooled database connection
    in the hub that is never given back.
    """
    try:
        return upstream_open(candidates, send_for)
    except ApiError as error:
        return error


def upstream_open_early(started: Started, candidates: tuple[Candidate, ...], send_for: Callable) -> EarlyCall | None:
    """Start the call now, beside the hold about to be placed; None when it must wait for the hold."""
    if not COOPERATIVE or not upstream_may_start_early(started):
        return None
    return EarlyCall(candidates, send_for)


def hold_place_beside(started: Started, early: EarlyCall | None) -> None:
    """Place the request's hold (noting the headroom it left); a call started beside it is abandoned on refusal.

    Raises what `generation_start` raises.
    """
    account_id = started.principal.account_id
    try:
        hold = generation_start(started=started)
    except BaseException as exc:
        if isinstance(exc, BillingError):
            headroom.pop(account_id)
        if early is not None:
            early.abandon()
            log.warning("upstream call for %s abandoned: %s", started.generation_id, type(exc).__name__)
        raise
    if hold.available_after is not None:
        headroom.put(account_id, hold.available_after)
