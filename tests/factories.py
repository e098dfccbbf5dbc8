"""factory_boy factories for the suite; money goes through the ledger service, never around it."""

from __future__ import annotations

from decimal import Decimal

import factory
from django.contrib.auth import get_user_model

from accounts.models import Account
from accounts.services import api_key_create
from billing.models import Price
from billing.services import ledger_credit
from completions.models import Model, Provider, Route


class AccountFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Account

    name = factory.Sequence(lambda n: f"Customer {n}")
    email = factory.LazyAttribute(lambda a: f"{a.name.lower().replace(' ', '.')}@example.com")


class ProviderFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Provider
        django_get_or_create = ("name",)

    name = factory.Sequence(lambda n: f"provider-{n}")
    base_url = "http://127.0.0.1:9/v1"
    api_key = "sk-test-provider-key-0123456789"


class ModelFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Model

    public_id = factory.Sequence(lambda n: f"test/model-{n}")
    name = factory.LazyAttribute(lambda m: m.public_id)
    context_length = 128000
    max_output_tokens = 4096


class RouteFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Route

    model = factory.SubFactory(ModelFactory)
    provider = factory.SubFactory(ProviderFactory)
    upstream_model = "emulator-small"


class PriceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Price

    model = factory.SubFactory(ModelFactory)
    prompt = Decimal("0.15")
    completion = Decimal("0.60")


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"operator{n}")
    is_staff = True
    is_superuser = True
    password = factory.django.Password("operator-password-1")


def funded_account(amount: str = "10.00", **kwargs) -> Account:
    """Return an account credited with `amount` USD through the ledger."""
    account = AccountFactory(**kwargs)
    ledger_credit(account=account, amount=Decimal(amount), idempotency_key=f"test-fund:{account.pk}")
    account.refresh_from_db()
    return account


def key_for(account: Account, **kwargs) -> str:
    """Issue a key for `account` and return its secret."""
    return api_key_create(account=account, **kwargs)[1]
