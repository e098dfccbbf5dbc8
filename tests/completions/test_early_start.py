from __future__ import annotations

import time
from decimal import Decimal
from types import SimpleNamespace

from completions.early_start import EARLY_START_WITHIN_S, headroom, upstream_may_start_early


def started(account_id: int = 1, hold: str = "0.01", spend_limit: Decimal | None = None):
    principal = SimpleNamespace(account_id=account_id, spend_limit=spend_limit)
    return SimpleNamespace(principal=principal, hold_amount=Decimal(hold))


def test_an_account_never_seen_waits_for_its_hold():
    assert not upstream_may_start_early(started())


def test_an_account_seen_moments_ago_with_ample_funds_starts_early(settings):
    settings.MIN_BALANCE_USD = Decimal("0.10")
    headroom.put(1, Decimal("0.20"))  # 10 × 0.01 + 0.10
    assert upstream_may_start_early(started())
    assert not upstream_may_start_early(started(hold="0.011"))


def test_a_key_with_a_spend_limit_or_an_old_sighting_waits_for_its_hold():
    headroom.put(1, Decimal("1000"))
    assert not upstream_may_start_early(started(spend_limit=Decimal("5")))
    headroom.put(1, Decimal("1000"), now=time.monotonic() - EARLY_START_WITHIN_S - 1)
    assert not upstream_may_start_early(started())
