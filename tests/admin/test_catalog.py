"""Providers keep their keys hidden; prices are added as new versions and never rewritten."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from billing.models import Price
from billing.selectors import price_current_for
from completions.models import Generation, Model, Provider
from tests.factories import ModelFactory, PriceFactory, ProviderFactory

from .helpers import admin_url, change_form_data

pytestmark = pytest.mark.django_db

SECRET = "sk-live-provider-secret-0123456789abcdef"


def test_the_provider_key_is_not_in_the_change_page(operator_client):
    provider = ProviderFactory(api_key=SECRET)
    html = operator_client.get(admin_url(provider, "change", provider.pk)).content.decode()
    assert SECRET not in html
    assert "…cdef" in html
    assert "Leave blank to keep the current key." in html


def test_the_provider_list_shows_only_the_masked_key(operator_client):
    ProviderFactory(api_key=SECRET)
    html = operator_client.get(admin_url(Provider, "changelist")).content.decode()
    assert SECRET not in html
    assert "…cdef" in html


def test_a_blank_key_on_submit_keeps_the_stored_key(operator_client):
    provider = ProviderFactory(api_key=SECRET)
    page = operator_client.get(admin_url(provider, "change", provider.pk))
    data = change_form_data(page, api_key="", read_timeout_s="90")
    assert operator_client.post(admin_url(provider, "change", provider.pk), data).status_code == 302
    provider.refresh_from_db()
    assert (provider.api_key, provider.read_timeout_s) == (SECRET, Decimal("90.00"))


def test_a_typed_key_replaces_the_stored_key(operator_client):
    provider = ProviderFactory(api_key=SECRET)
    page = operator_client.get(admin_url(provider, "change", provider.pk))
    operator_client.post(admin_url(provider, "change", provider.pk), change_form_data(page, api_key="sk-new-key"))
    provider.refresh_from_db()
    assert provider.api_key == "sk-new-key"


def test_the_stored_key_can_be_removed(operator_client):
    provider = ProviderFactory(api_key=SECRET)
    page = operator_client.get(admin_url(provider, "change", provider.pk))
    data = change_form_data(page, clear_api_key="on", api_key_env="OPENAI_API_KEY")
    operator_client.post(admin_url(provider, "change", provider.pk), data)
    provider.refresh_from_db()
    assert (provider.api_key, provider.api_key_env) == ("", "OPENAI_API_KEY")


def test_an_operator_declares_a_providers_data_policy_and_parameters(operator_client):
    provider = ProviderFactory()
    page = operator_client.get(admin_url(provider, "change", provider.pk))
    data = change_form_data(page, data_collection="deny", supported_parameters='["temperature", "tools"]')
    assert operator_client.post(admin_url(provider, "change", provider.pk), data).status_code == 302
    provider.refresh_from_db()
    assert (provider.data_collection, provider.supported_parameters) == ("deny", ["temperature", "tools"])


def test_supported_parameters_must_be_a_list_of_names(operator_client):
    provider = ProviderFactory()
    page = operator_client.get(admin_url(provider, "change", provider.pk))
    data = change_form_data(page, supported_parameters='{"temperature": true}')
    response = operator_client.post(admin_url(provider, "change", provider.pk), data)
    assert response.status_code == 200
    assert "supported parameters must be a list of parameter names" in response.content.decode()
    provider.refresh_from_db()
    assert provider.supported_parameters is None


def _price_data(model: Model, when, **prices):
    return {
        "model": model.pk,
        "prompt": "0.20",
        "completion": "0.80",
        "request": "0",
        "effective_from_0": when.strftime("%Y-%m-%d"),
        "effective_from_1": when.strftime("%H:%M:%S"),
        **prices,
    }


def test_adding_a_price_creates_a_new_version_and_keeps_the_old(operator_client, operator):
    old = PriceFactory(effective_from=timezone.now() - timedelta(days=3))
    starts = (timezone.now() + timedelta(hours=2)).replace(microsecond=0)

    response = operator_client.post(admin_url(Price, "add"), _price_data(old.model, starts))

    assert response.status_code == 302
    new = Price.objects.exclude(pk=old.pk).get(model=old.model)
    assert (new.prompt, new.completion, new.effective_from, new.created_by) == (
        Decimal("0.2000000000"),
        Decimal("0.8000000000"),
        starts,
        operator,
    )
    old_again = Price.objects.get(pk=old.pk)
    assert (old_again.prompt, old_again.completion) == (Decimal("0.1500000000"), Decimal("0.6000000000"))
    assert price_current_for(old.model_id) == old
    assert price_current_for(old.model_id, at=starts) == new


def test_a_price_cannot_start_in_the_past(operator_client):
    model = ModelFactory()
    response = operator_client.post(admin_url(Price, "add"), _price_data(model, timezone.now() - timedelta(days=1)))
    assert response.status_code == 200
    assert "effective_from" in response.context["adminform"].form.errors
    assert not Price.objects.exists()


def test_a_negative_price_is_refused_on_the_form(operator_client):
    model = ModelFactory()
    response = operator_client.post(admin_url(Price, "add"), _price_data(model, timezone.now(), cached_prompt="-1"))
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["cached_prompt"] == ["A price cannot be negative."]


def test_a_price_in_force_is_never_edited_or_deleted(operator_client):
    price = PriceFactory()
    change = operator_client.post(admin_url(price, "change", price.pk), {"prompt": "9", "completion": "9"})
    delete = operator_client.post(admin_url(price, "delete", price.pk), {"post": "yes"})
    assert (change.status_code, delete.status_code) == (403, 403)
    price.refresh_from_db()
    assert price.prompt == Decimal("0.1500000000")


def test_a_scheduled_price_can_be_withdrawn_before_it_starts(operator_client):
    price = PriceFactory(effective_from=timezone.now() + timedelta(days=1))
    response = operator_client.post(admin_url(price, "delete", price.pk), {"post": "yes"})
    assert response.status_code == 302
    assert not Price.objects.filter(pk=price.pk).exists()


def test_the_model_list_shows_the_current_price(operator_client):
    model = ModelFactory()
    PriceFactory(model=model, effective_from=timezone.now() - timedelta(days=1))
    tomorrow = timezone.now() + timedelta(days=1)
    PriceFactory(model=model, prompt=Decimal("9"), completion=Decimal("9"), effective_from=tomorrow)
    html = operator_client.get(admin_url(Model, "changelist")).content.decode()
    assert "$0.15 / $0.60" in html
    assert "$9.00" not in html


def test_the_model_page_shows_the_price_history_newest_first(operator_client):
    model = ModelFactory()
    old = PriceFactory(model=model, effective_from=timezone.now() - timedelta(days=2))
    new = PriceFactory(model=model, prompt=Decimal("0.30"), effective_from=timezone.now() - timedelta(days=1))
    response = operator_client.get(admin_url(model, "change", model.pk))
    price_inline = next(i for i in response.context["inline_admin_formsets"] if i.opts.model is Price)
    assert [f.instance.pk for f in price_inline.formset.forms] == [new.pk, old.pk]


def test_a_generation_page_links_to_its_charge(operator_client, one_of_everything):
    from billing.services import hold_settle

    entry = hold_settle(reference="gen-everything", cost=Decimal("0.0000198"))
    generation = Generation.objects.get(pk="gen-everything")
    html = operator_client.get(admin_url(generation, "change", generation.pk)).content.decode()
    assert admin_url(entry, "change", entry.pk) in html
    assert "-$0.0000198 (entry" in html
    assert operator_client.post(admin_url(generation, "change", generation.pk), {}).status_code == 403
