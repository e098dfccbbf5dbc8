from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from billing.models import Price
from billing.money import Usage, cost_for
from billing.selectors import price_current_for
from billing.services import price_set
from tests.factories import ModelFactory

pytestmark = pytest.mark.django_db


def test_a_price_change_adds_a_version_and_keeps_the_history():
    model = ModelFactory()
    old = price_set(model_id=model.pk, prompt="0.15", completion="0.60")
    new = price_set(model_id=model.pk, prompt="0.20", completion="0.80", effective_from=timezone.now())
    assert Price.objects.filter(model=model).count() == 2
    assert price_current_for(model.pk) == new
    assert Price.objects.get(pk=old.pk).prompt == Decimal("0.15")


def test_a_charge_uses_the_version_in_force_when_its_request_started():
    model = ModelFactory()
    started = timezone.now()
    price_set(model_id=model.pk, prompt="0.15", completion="0.60", effective_from=started - timedelta(days=1))
    price_set(model_id=model.pk, prompt="1.00", completion="4.00", effective_from=started + timedelta(seconds=1))
    in_force = price_current_for(model.pk, at=started)
    usage = Usage(prompt_tokens=12, completion_tokens=8)
    assert cost_for(usage, in_force).total == Decimal("0.0000066000")
    later = price_current_for(model.pk, at=started + timedelta(seconds=2))
    assert cost_for(usage, later).total == Decimal("0.0000440000")


def test_a_future_price_is_not_in_force_yet():
    model = ModelFactory()
    current = price_set(model_id=model.pk, prompt="0.15", completion="0.60")
    price_set(model_id=model.pk, prompt="9", completion="9", effective_from=timezone.now() + timedelta(hours=1))
    assert price_current_for(model.pk) == current


def test_an_unpriced_model_has_no_current_price():
    assert price_current_for(ModelFactory().pk) is None


def test_prices_cannot_be_negative():
    with pytest.raises(ValueError):
        price_set(model_id=ModelFactory().pk, prompt="-0.01", completion="0.60")
