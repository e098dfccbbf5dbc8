"""The generation list's filters on rare values return exactly the right rows, by the indexed ways they take."""

from __future__ import annotations

import itertools
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.utils import timezone

from accounts.models import ApiKey
from billing.services import hold_place, hold_release
from completions.models import Generation
from tests.factories import PriceFactory, ProviderFactory, funded_account, key_for

from .helpers import admin_url

pytestmark = pytest.mark.django_db

_ids = itertools.count(1)


@pytest.fixture
def make():
    account = funded_account("10.00", name="Acme Labs")
    key_for(account, name="prod")
    api_key = ApiKey.objects.get(account=account)
    price = PriceFactory()
    provider = ProviderFactory(name="openai")

    def make(*, age: timedelta = timedelta(minutes=5), held: bool = False, **fields) -> str:
        pk = f"gen-filter-{next(_ids)}"
        if held:
            hold_place(account_id=account.pk, amount=Decimal("0.01"), reference=pk)
        values = {
            "provider": provider,
            "status": Generation.Status.COMPLETED,
            "usage_source": Generation.UsageSource.UPSTREAM,
            "upstream_cost_source": Generation.UpstreamCostSource.COMPUTED,
            **fields,
        }
        Generation.objects.create(
            id=pk, account=account, api_key=api_key, model=price.model, price=price,
            started_at=timezone.now() - age, **values,
        )  # fmt: skip
        return pk

    make.provider = provider
    return make


def _listed(client, params: dict) -> set[str]:
    response = client.get(admin_url(Generation, "changelist"), params)
    assert response.status_code == 200
    return {row.pk for row in response.context["cl"].result_list}


def test_pending_lists_the_generations_whose_hold_is_open(operator_client, make):
    pending = make(held=True, status=Generation.Status.PENDING)
    old_pending = make(held=True, status=Generation.Status.PENDING, age=timedelta(days=40))
    make(status=Generation.Status.COMPLETED)
    released = make(held=True, status=Generation.Status.FAILED)
    hold_release(reference=released, reason="failed")

    assert _listed(operator_client, {"status__exact": "pending"}) == {pending, old_pending}
    assert _listed(operator_client, {"status__exact": "failed"}) == {released}


def test_a_surface_other_than_chat_is_listed_through_its_partial_index(operator_client, make):
    messages = make(surface="messages", age=timedelta(days=60))
    make(surface="chat")
    embeddings = make(surface="embeddings")

    assert _listed(operator_client, {"surface": "messages"}) == {messages}
    assert _listed(operator_client, {"surface": "embeddings"}) == {embeddings}
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute(
            "EXPLAIN SELECT id FROM completions_generation WHERE surface = 'messages' ORDER BY started_at DESC LIMIT 50"
        )
        plan = " ".join(row[0] for row in cursor.fetchall())
    assert "generation_surface_rare" in plan


@pytest.mark.parametrize(
    ("params", "fields"),
    [
        ({"usage_source__exact": "estimated"}, {"usage_source": Generation.UsageSource.ESTIMATED}),
        ({"upstream_cost_source__exact": "reported"}, {"upstream_cost_source": Generation.UpstreamCostSource.REPORTED}),
        ({"provider": "none"}, {"provider": None}),
        ({"status__exact": "failed"}, {"status": Generation.Status.FAILED}),
        ({"status__exact": "cancelled"}, {"status": Generation.Status.CANCELLED}),
    ],
    ids=["usage estimated", "cost reported", "no provider", "failed", "cancelled"],
)
def test_a_rare_value_set_at_settlement_lists_the_last_seven_days(operator_client, make, params, fields):
    recent = make(**fields, age=timedelta(days=6))
    make(**fields, age=timedelta(days=8))
    make()

    assert _listed(operator_client, params) == {recent}
    page = operator_client.get(admin_url(Generation, "changelist")).content.decode()
    assert "(last 7 days)" in page


def test_common_values_and_a_provider_are_not_windowed(operator_client, make):
    old = make(age=timedelta(days=300))
    estimated = make(usage_source=Generation.UsageSource.ESTIMATED)

    assert _listed(operator_client, {"usage_source__exact": "upstream"}) == {old}
    assert _listed(operator_client, {"upstream_cost_source__exact": "computed"}) == {old, estimated}
    assert _listed(operator_client, {"provider": str(make.provider.pk)}) == {old, estimated}
    assert _listed(operator_client, {"status__exact": "completed"}) == {old, estimated}


def _recent_rows_like(pk: str, n: int, **fields) -> None:
    """`n` newer generations copied from `pk`, with `fields` changed: the rows a filter has to skip."""
    template = Generation.objects.get(pk=pk)
    values = {f.attname: getattr(template, f.attname) for f in Generation._meta.concrete_fields}
    Generation.objects.bulk_create(
        Generation(**{**values, **fields, "id": f"{pk}-newer-{i}", "started_at": timezone.now() - timedelta(seconds=i)})
        for i in range(n)
    )


def _plan(client, params: dict) -> tuple[set[str], str]:
    """The rows the list shows and the plan of its query (without its joins), ordered as the list orders it."""
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE completions_generation")
        cursor.execute("SET LOCAL enable_seqscan = off")
    cl = client.get(admin_url(Generation, "changelist"), params).context["cl"]
    return {row.pk for row in cl.result_list}, cl.queryset.select_related(None)[:51].explain()


def test_a_model_without_recent_generations_is_listed_through_its_index(operator_client, make):
    old = make(age=timedelta(days=90))
    other = PriceFactory()
    _recent_rows_like(old, 300, model_id=other.model_id, price_id=other.pk)

    listed, plan = _plan(operator_client, {"model__id__exact": Generation.objects.get(pk=old).model_id})
    assert listed == {old}
    # Not a walk back through `started_at` past every newer row of the other model.
    assert "generation_model_started" in plan


@pytest.mark.parametrize("stream", [True, False], ids=["streamed", "not streamed"])
def test_a_stream_value_without_recent_generations_is_listed_through_its_index(operator_client, make, stream):
    old = make(stream=stream, age=timedelta(days=90))
    _recent_rows_like(old, 300, stream=not stream)

    listed, plan = _plan(operator_client, {"stream__exact": "1" if stream else "0"})
    assert listed == {old}
    assert "generation_stream_started" in plan
