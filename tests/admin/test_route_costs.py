"""Route costs are added as new versions and never rewritten; the route and model pages show the one in force."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from billing.models import RouteCost
from billing.selectors import route_cost_current_for
from billing.services import route_cost_set
from tests.factories import RouteFactory

from .helpers import admin_url

pytestmark = pytest.mark.django_db


def _cost_data(route, when, **costs):
    return {
        "route": route.pk,
        "prompt": "0.10",
        "completion": "0.40",
        "request": "0",
        "effective_from_0": when.strftime("%Y-%m-%d"),
        "effective_from_1": when.strftime("%H:%M:%S"),
        **costs,
    }


def test_adding_a_route_cost_creates_a_new_version_and_keeps_the_old(operator_client, operator):
    route = RouteFactory()
    old = route_cost_set(
        route_id=route.pk, prompt="0.20", completion="0.80", effective_from=timezone.now() - timedelta(days=3)
    )
    starts = (timezone.now() + timedelta(hours=2)).replace(microsecond=0)

    response = operator_client.post(admin_url(RouteCost, "add"), _cost_data(route, starts, cached_prompt="0.05"))

    assert response.status_code == 302
    new = RouteCost.objects.exclude(pk=old.pk).get(route=route)
    assert (new.prompt, new.completion, new.cached_prompt, new.effective_from, new.created_by) == (
        Decimal("0.10"),
        Decimal("0.40"),
        Decimal("0.05"),
        starts,
        operator,
    )
    assert route_cost_current_for(route.pk) == old
    assert route_cost_current_for(route.pk, at=starts) == new


def test_a_negative_or_past_route_cost_is_refused_on_the_form(operator_client):
    route = RouteFactory()
    negative = operator_client.post(admin_url(RouteCost, "add"), _cost_data(route, timezone.now(), prompt="-1"))
    past = operator_client.post(admin_url(RouteCost, "add"), _cost_data(route, timezone.now() - timedelta(days=1)))
    assert negative.context["adminform"].form.errors["prompt"] == ["A cost cannot be negative."]
    assert "effective_from" in past.context["adminform"].form.errors
    assert not RouteCost.objects.exists()


def test_a_route_cost_in_force_is_never_edited_or_deleted(operator_client):
    cost = route_cost_set(route_id=RouteFactory().pk, prompt="0.10", completion="0.40")
    change = operator_client.post(admin_url(cost, "change", cost.pk), {"prompt": "9", "completion": "9"})
    delete = operator_client.post(admin_url(cost, "delete", cost.pk), {"post": "yes"})
    assert (change.status_code, delete.status_code) == (403, 403)
    cost.refresh_from_db()
    assert cost.prompt == Decimal("0.10")


def test_the_route_and_model_pages_show_the_cost_in_force_and_its_history(operator_client):
    route = RouteFactory()
    old = route_cost_set(
        route_id=route.pk, prompt="0.10", completion="0.40", effective_from=timezone.now() - timedelta(days=1)
    )
    later = route_cost_set(
        route_id=route.pk, prompt="9", completion="9", effective_from=timezone.now() + timedelta(days=1)
    )

    route_page = operator_client.get(admin_url(route, "change", route.pk))
    model_page = operator_client.get(admin_url(route.model, "change", route.model.pk)).content.decode()

    assert "$0.10 / $0.40" in route_page.content.decode()
    assert "$0.10 / $0.40" in model_page and "$9.00 / $9.00" not in model_page
    history = next(i for i in route_page.context["inline_admin_formsets"] if i.opts.model is RouteCost)
    assert [f.instance.pk for f in history.formset.forms] == [later.pk, old.pk]
