from __future__ import annotations

import time
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from completions import routing
from completions.routing import catalog_entry
from core.cache import caches_clear
from tests.factories import PriceFactory, RouteFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_cache():
    caches_clear()
    yield
    caches_clear()


def test_while_an_expired_model_is_reloaded_other_requests_use_the_cached_entry(settings, monkeypatch):
    settings.CATALOG_CACHE_SECONDS = 0.05
    route = RouteFactory()
    PriceFactory(model=route.model, effective_from=timezone.now() - timedelta(days=1))
    cached = catalog_entry(route.model.public_id)
    time.sleep(0.06)
    meanwhile = []
    reload = routing._load

    def reloading(public_id, now, horizon):
        meanwhile.append(catalog_entry(public_id))  # another request arrives during the reload
        return reload(public_id, now, horizon)

    monkeypatch.setattr(routing, "_load", reloading)
    assert catalog_entry(route.model.public_id) == cached
    assert meanwhile == [cached]


def test_a_cached_entry_knows_the_price_due_within_its_reload_grace(settings):
    settings.CATALOG_CACHE_SECONDS = 1
    route = RouteFactory()
    now = timezone.now()
    PriceFactory(model=route.model, effective_from=now - timedelta(days=1))
    later = now + timedelta(seconds=1 + routing.RELOAD_GRACE_SECONDS / 2)
    PriceFactory(model=route.model, effective_from=later, prompt=Decimal("0.30"))
    entry = catalog_entry(route.model.public_id)
    assert entry.price_at(later).prompt == Decimal("0.30")
    assert entry.price_at(later - timedelta(microseconds=1)).prompt == Decimal("0.15")
