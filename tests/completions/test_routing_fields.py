"""OpenRouter's routing fields (`models`, `provider`, `reasoning`, ...) and the parameters a route declares,
in-process: two scripted providers on local ports record what each was sent; real PostgreSQL and Redis.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from http.server import ThreadingHTTPServer
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from billing.models import Hold
from billing.services import price_set, route_cost_set
from completions.models import Generation, Model, Provider
from tests.completions.test_chat_view import (
    FUNDS,
    HI,
    UPSTREAM_MODEL,
    FakeProvider,
    Shop,
    assert_nothing_moved,
    assert_settled_once,
    completion,
    decimal_json,
    provider_handler,
    sse_data,
)
from tests.factories import ModelFactory, ProviderFactory, RouteFactory, funded_account, key_for

pytestmark = pytest.mark.django_db

URL = "/v1/chat/completions"
OK = completion("ok", {"prompt_tokens": 10, "completion_tokens": 5})


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[FakeProvider, FakeProvider]]:
    fakes, running = [], []
    for _ in range(2):
        fake = FakeProvider()
        server = ThreadingHTTPServer(("127.0.0.1", 0), provider_handler(fake))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        fake.url = f"http://127.0.0.1:{server.server_address[1]}"
        fakes.append(fake)
        running.append(server)
    try:
        yield fakes[0], fakes[1]
    finally:
        for server in running:
            server.shutdown()
            server.server_close()


@dataclass
class Two:
    """Two providers (`alpha`, `beta`) on two fake servers, and a customer."""

    alpha: FakeProvider
    beta: FakeProvider
    alpha_row: Provider
    beta_row: Provider
    shop: Shop

    def model(self, *routes: Provider, prompt: str = "0.15", completion: str = "0.60", **route_kwargs) -> Model:
        """A priced model routed to these providers, in this priority order."""
        model = ModelFactory(max_output_tokens=4096)
        for priority, provider in enumerate(routes):
            RouteFactory(
                model=model, provider=provider, upstream_model=UPSTREAM_MODEL, priority=priority, **route_kwargs
            )
        price_set(
            model_id=model.pk,
            prompt=prompt,
            completion=completion,
            effective_from=model.created_at - timedelta(seconds=5),
        )
        return model

    def post(self, body: dict[str, Any]) -> Any:
        return Client().post(
            URL,
            json.dumps(body).encode(),
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {self.shop.key}",
        )


@pytest.fixture
def two(servers) -> Iterator[Two]:
    alpha, beta = servers
    alpha.reset()
    beta.reset()
    alpha_row = ProviderFactory(name="alpha", base_url=f"{alpha.url}/v1")
    beta_row = ProviderFactory(name="beta", base_url=f"{beta.url}/v1")
    account = funded_account(str(FUNDS))
    shop = Shop(model=None, account=account, key=key_for(account, rpm_limit=1000))  # type: ignore[arg-type]
    yield Two(alpha, beta, alpha_row, beta_row, shop)
    alpha.reset()
    beta.reset()


def per_million(tokens: int, price: str) -> Decimal:
    return tokens * Decimal(price) / 1_000_000


def worst_case(raw_size: int, max_tokens: int, prompt: str, completion_price: str) -> Decimal:
    """The documented hold: every byte of the request a prompt token, plus max_tokens completion tokens."""
    return per_million(raw_size, prompt) + per_million(max_tokens, completion_price)


# --- models: an ordered fallback list ------------------------------------------------------------------------


@pytest.mark.usefixtures("money_path")
def test_a_failing_model_falls_back_to_the_next_and_is_charged_exactly_that_models_price(two: Two):
    cheap = two.model(two.alpha_row, prompt="0.15", completion="0.60")
    dear = two.model(two.beta_row, prompt="2.00", completion="8.00")
    two.alpha.answer({"error": {"message": "down"}}, status=500)
    two.beta.answer(OK)
    body = {"model": cheap.public_id, "models": [dear.public_id], "messages": HI, "max_tokens": 100}

    response = two.post(body)

    assert response.status_code == 200, response.content
    answer = decimal_json(response.content)
    generation_id = response["X-Generation-Id"]
    assert answer["model"] == dear.public_id
    cost = per_million(10, "2.00") + per_million(5, "8.00")
    assert answer["usage"]["cost"] == cost == Decimal("0.00006")
    two.shop.model = dear
    assert_settled_once(two.shop, generation_id, cost)
    generation = Generation.objects.get(pk=generation_id)
    assert (generation.model_id, generation.price.model_id) == (dear.pk, dear.pk)
    # The hold covered the dearer candidate's worst case.
    raw_size = len(json.dumps(body).encode())
    assert generation.hold_amount == worst_case(raw_size, 100, "2.00", "8.00")
    assert Hold.objects.get(reference=generation_id).amount == generation.hold_amount
    for fake in (two.alpha, two.beta):
        (sent,) = fake.received
        assert sent.body == {"model": UPSTREAM_MODEL, "messages": HI, "max_tokens": 100}


@pytest.mark.usefixtures("money_path")
def test_models_alone_serves_the_first_that_answers_and_a_cheaper_fallback_is_charged_its_own_price(two: Two):
    dear = two.model(two.alpha_row, prompt="2.00", completion="8.00")
    cheap = two.model(two.beta_row, prompt="0.15", completion="0.60")
    two.alpha.answer({"error": {"message": "busy"}}, status=429)
    two.beta.answer(OK)
    body = {"models": [dear.public_id, cheap.public_id], "messages": HI, "max_tokens": 50}

    response = two.post(body)

    assert response.status_code == 200, response.content
    assert response.json()["model"] == cheap.public_id
    cost = per_million(10, "0.15") + per_million(5, "0.60")
    two.shop.model = cheap
    assert_settled_once(two.shop, response["X-Generation-Id"], cost)
    generation = Generation.objects.get(pk=response["X-Generation-Id"])
    assert generation.hold_amount == worst_case(len(json.dumps(body).encode()), 50, "2.00", "8.00")
    assert generation.model_id == cheap.pk


def test_the_first_model_that_answers_is_the_one_named_and_charged(two: Two):
    first = two.model(two.alpha_row)
    second = two.model(two.beta_row, prompt="9.00", completion="9.00")
    two.alpha.answer(OK)

    response = two.post({"model": first.public_id, "models": [second.public_id], "messages": HI})

    assert response.json()["model"] == first.public_id
    assert two.beta.received == []
    generation = Generation.objects.get(pk=response["X-Generation-Id"])
    assert generation.model_id == first.pk


def test_unknown_models_in_the_list_are_skipped(two: Two):
    known = two.model(two.alpha_row)
    two.alpha.answer(OK)

    response = two.post({"models": ["nobody/never", known.public_id], "messages": HI})

    assert response.status_code == 200
    assert response.json()["model"] == known.public_id


def test_a_list_of_unknown_models_is_a_404_model_not_found(two: Two):
    response = two.post({"models": ["nobody/a", "nobody/b"], "messages": HI})

    assert response.status_code == 404
    error = response.json()["error"]
    assert (error["code"], error["param"]) == ("model_not_found", "models")
    assert "'nobody/a', 'nobody/b'" in error["message"]


def test_when_every_model_fails_nothing_is_charged(two: Two):
    first = two.model(two.alpha_row)
    second = two.model(two.beta_row)
    two.alpha.answer({"error": {"message": "x"}}, status=503)
    two.beta.answer({"error": {"message": "y"}}, status=500)

    response = two.post({"models": [first.public_id, second.public_id], "messages": HI})

    assert response.status_code == 502
    assert_nothing_moved(two.shop)
    assert Generation.objects.get(account=two.shop.account).model_id == first.pk


# --- never forwarded -----------------------------------------------------------------------------------------


def test_the_routers_own_fields_are_never_forwarded_and_reasoning_becomes_reasoning_effort(two: Two):
    model = two.model(two.alpha_row)
    two.alpha.answer(OK)

    response = two.post(
        {
            "model": model.public_id,
            "models": [model.public_id],
            "messages": HI,
            "provider": {"sort": "price", "allow_fallbacks": True},
            "reasoning": {"effort": "high"},
            "route": "fallback",
            "transforms": ["middle-out"],
            "usage": {"include": True},
            "temperature": 0.3,
        }
    )

    assert response.status_code == 200, response.content
    (sent,) = two.alpha.received
    assert sent.body == {"model": UPSTREAM_MODEL, "messages": HI, "temperature": 0.3, "reasoning_effort": "high"}


@pytest.mark.parametrize(
    ("reasoning", "effort"),
    [
        ({"max_tokens": 1000}, "low"),
        ({"max_tokens": 8000}, "medium"),
        ({"max_tokens": 20000}, "high"),
        ({"max_tokens": 0}, "none"),
        ({"enabled": True}, "medium"),
        ({"enabled": False, "effort": "high"}, None),
        ({"exclude": True}, None),
    ],
)
def test_reasoning_is_mapped_to_the_routes_effort_as_documented(two: Two, reasoning, effort):
    model = two.model(two.alpha_row)
    two.alpha.answer(OK)

    assert two.post({"model": model.public_id, "messages": HI, "reasoning": reasoning}).status_code == 200

    assert two.alpha.received[0].body.get("reasoning_effort") == effort
    assert "reasoning" not in two.alpha.received[0].body


def test_a_reasoning_effort_sent_by_the_client_wins_over_reasoning(two: Two):
    model = two.model(two.alpha_row)
    two.alpha.answer(OK)
    body = {"model": model.public_id, "messages": HI, "reasoning": {"effort": "high"}, "reasoning_effort": "low"}

    assert two.post(body).status_code == 200

    assert two.alpha.received[0].body["reasoning_effort"] == "low"


# --- provider: order, only, ignore, allow_fallbacks --------------------------------------------------------------


def test_provider_order_tries_the_named_providers_first(two: Two):
    model = two.model(two.alpha_row, two.beta_row)
    two.beta.answer(OK)

    response = two.post({"model": model.public_id, "messages": HI, "provider": {"order": ["Beta"]}})

    assert response.status_code == 200
    assert two.alpha.received == []
    assert Generation.objects.get(pk=response["X-Generation-Id"]).provider_id == two.beta_row.pk


def test_after_the_ordered_providers_fail_the_others_are_tried(two: Two):
    model = two.model(two.alpha_row, two.beta_row)
    two.beta.answer({"error": {"message": "down"}}, status=502)
    two.alpha.answer(OK)

    response = two.post({"model": model.public_id, "messages": HI, "provider": {"order": ["beta"]}})

    assert response.status_code == 200
    assert (len(two.beta.received), len(two.alpha.received)) == (1, 1)


def test_without_fallbacks_only_the_ordered_providers_are_tried(two: Two):
    model = two.model(two.alpha_row, two.beta_row)
    two.beta.answer({"error": {"message": "down"}}, status=500)

    response = two.post(
        {"model": model.public_id, "messages": HI, "provider": {"order": ["beta"], "allow_fallbacks": False}}
    )

    assert response.status_code == 502
    assert two.alpha.received == []
    assert_nothing_moved(two.shop)


def test_without_fallbacks_and_order_only_the_first_route_is_tried(two: Two):
    model = two.model(two.alpha_row, two.beta_row)
    two.alpha.answer({"error": {"message": "down"}}, status=500)

    response = two.post({"model": model.public_id, "messages": HI, "provider": {"allow_fallbacks": False}})

    assert response.status_code == 502
    assert two.beta.received == []


def test_only_and_ignore_choose_the_providers(two: Two):
    model = two.model(two.alpha_row, two.beta_row)
    two.beta.answer(OK)
    two.beta.answer(OK)

    assert two.post({"model": model.public_id, "messages": HI, "provider": {"only": ["beta"]}}).status_code == 200
    assert two.post({"model": model.public_id, "messages": HI, "provider": {"ignore": ["alpha"]}}).status_code == 200

    assert two.alpha.received == []
    assert len(two.beta.received) == 2


@pytest.mark.parametrize(
    ("provider", "param"),
    [
        ({"only": ["gamma"]}, "provider.only"),
        ({"ignore": ["alpha", "beta"]}, "provider.ignore"),
        ({"order": ["gamma"], "allow_fallbacks": False}, "provider.order"),
        ({"data_collection": "deny"}, "provider.data_collection"),
        ({"max_price": {"completion": "0.5"}}, "provider.max_price"),
    ],
)
def test_a_filter_that_leaves_no_route_is_a_404_naming_it_and_nothing_is_held(two: Two, provider, param):
    model = two.model(two.alpha_row, two.beta_row)

    response = two.post({"model": model.public_id, "messages": HI, "provider": provider})

    assert response.status_code == 404
    error = response.json()["error"]
    assert (error["type"], error["code"], error["param"]) == ("not_found_error", "no_route", param)
    assert f"'{param}'" in error["message"]
    assert two.alpha.received == two.beta.received == []
    assert not Generation.objects.filter(account=two.shop.account).exists()
    assert not Hold.objects.filter(account=two.shop.account).exists()


def test_data_collection_deny_keeps_only_providers_declared_not_to_collect(two: Two):
    Provider.objects.filter(pk=two.beta_row.pk).update(data_collection=Provider.DataCollection.DENY)
    Provider.objects.filter(pk=two.alpha_row.pk).update(data_collection=Provider.DataCollection.ALLOW)
    model = two.model(two.alpha_row, two.beta_row)
    two.beta.answer(OK)

    response = two.post({"model": model.public_id, "messages": HI, "provider": {"data_collection": "deny"}})

    assert response.status_code == 200
    assert two.alpha.received == []


def test_max_price_skips_the_models_priced_above_it_and_holds_only_for_the_rest(two: Two):
    dear = two.model(two.alpha_row, prompt="3.00", completion="15.00")
    cheap = two.model(two.beta_row, prompt="0.15", completion="0.60")
    two.beta.answer(OK)
    body = {
        "models": [dear.public_id, cheap.public_id],
        "messages": HI,
        "max_tokens": 10,
        "provider": {"max_price": {"prompt": 1, "completion": "1"}},
    }

    response = two.post(body)

    assert response.status_code == 200
    assert response.json()["model"] == cheap.public_id
    assert two.alpha.received == []
    generation = Generation.objects.get(pk=response["X-Generation-Id"])
    assert generation.hold_amount == worst_case(len(json.dumps(body).encode()), 10, "0.15", "0.60")


# --- provider.sort -------------------------------------------------------------------------------------------


def _finished(provider: Provider, model: Model, *, ttft_ms: int, latency_ms: int, tokens: int, account, key) -> None:
    """A completed generation of the last hour, as the request path records one."""
    from billing.selectors import price_current_for

    Generation.objects.create(
        id=f"gen-stat-{Generation.objects.count()}",
        account=account,
        api_key=key,
        model=model,
        price=price_current_for(model.pk),
        provider=provider,
        status=Generation.Status.COMPLETED,
        completion_tokens=tokens,
        ttft_ms=ttft_ms,
        latency_ms=latency_ms,
        stream=True,
        started_at=timezone.now() - timedelta(minutes=5),
    )


@pytest.mark.parametrize(("sort", "fast"), [("latency", "beta"), ("throughput", "beta"), ("price", "alpha")])
def test_sort_orders_routes_by_recent_latency_and_throughput_and_keeps_ties_in_catalog_order(two: Two, sort, fast):
    model = two.model(two.alpha_row, two.beta_row)
    key = two.shop.account.api_keys.get()
    # alpha: 400 ms to the first token, 100 tokens in 1 s; beta: 100 ms, 100 tokens in 0.5 s.
    for provider, ttft, total in ((two.alpha_row, 400, 1400), (two.beta_row, 100, 600)):
        for _ in range(3):
            _finished(provider, model, ttft_ms=ttft, latency_ms=total, tokens=100, account=two.shop.account, key=key)
    fake = two.beta if fast == "beta" else two.alpha
    fake.answer(OK)

    response = two.post({"model": model.public_id, "messages": HI, "provider": {"sort": {"by": sort}}})

    assert response.status_code == 200
    # Without a route cost price both tie on price: the catalog order stands.
    assert len(fake.received) == 1
    assert (two.alpha if fast == "beta" else two.beta).received == []


# --- supported parameters ------------------------------------------------------------------------------------------


def test_a_route_that_declares_its_parameters_gets_only_those(two: Two):
    model = two.model(two.alpha_row, supported_parameters=["temperature", "max_completion_tokens", "reasoning"])
    two.alpha.answer(OK)
    body = {
        "model": model.public_id,
        "messages": HI,
        "max_tokens": 50,
        "temperature": 0.1,
        "top_p": 0.5,
        "top_k": 3,
        "reasoning": {"effort": "low"},
        "whatever": {"x": 1},
    }

    assert two.post(body).status_code == 200

    assert two.alpha.received[0].body == {
        "model": UPSTREAM_MODEL,
        "messages": HI,
        "temperature": 0.1,
        "max_completion_tokens": 50,
        "reasoning_effort": "low",
    }


def test_a_providers_declared_list_applies_to_its_routes_without_their_own(two: Two):
    Provider.objects.filter(pk=two.alpha_row.pk).update(supported_parameters=["top_p"])
    model = two.model(two.alpha_row)
    two.alpha.answer(OK)

    assert two.post({"model": model.public_id, "messages": HI, "top_p": 0.5, "seed": 1}).status_code == 200

    assert two.alpha.received[0].body == {"model": UPSTREAM_MODEL, "messages": HI, "top_p": 0.5}


@pytest.mark.django_db(transaction=True)
def test_a_stream_to_a_declared_route_still_asks_for_usage(two: Two):
    model = two.model(two.alpha_row, supported_parameters=["temperature"])
    two.alpha.stream(["a", "b"], usage={"prompt_tokens": 3, "completion_tokens": 2})

    response = two.post({"model": model.public_id, "messages": HI, "stream": True, "seed": 4})
    b"".join(response.streaming_content)

    assert two.alpha.received[0].body == {
        "model": UPSTREAM_MODEL,
        "messages": HI,
        "stream": True,
        "stream_options": {"include_usage": True},
    }


def test_require_parameters_skips_routes_that_lack_one(two: Two):
    model = two.model(two.alpha_row, two.beta_row)
    model.routes.filter(provider=two.alpha_row).update(supported_parameters=["temperature"])
    two.beta.answer(OK)
    body = {"model": model.public_id, "messages": HI, "temperature": 1, "top_k": 5}

    response = two.post({**body, "provider": {"require_parameters": True}})

    assert response.status_code == 200
    assert two.alpha.received == []
    assert two.beta.received[0].body == {"model": UPSTREAM_MODEL, "messages": HI, "temperature": 1, "top_k": 5}


def test_require_parameters_with_no_route_taking_them_is_a_404(two: Two):
    model = two.model(two.alpha_row, supported_parameters=["temperature"])

    response = two.post(
        {"model": model.public_id, "messages": HI, "top_k": 5, "provider": {"require_parameters": True}}
    )

    assert response.status_code == 404
    error = response.json()["error"]
    assert (error["code"], error["param"]) == ("no_route", "provider.require_parameters")
    assert "top_k" in error["message"]


# --- reasoning in the answer ----------------------------------------------------------------------------------


def reasoning_completion(field: str) -> dict[str, Any]:
    answer = completion("42", {"prompt_tokens": 10, "completion_tokens": 5})
    answer["choices"][0]["message"][field] = "Let me think."
    return answer


@pytest.mark.parametrize("field", ["reasoning", "reasoning_content"])
def test_reasoning_text_comes_back_as_message_reasoning(two: Two, field):
    model = two.model(two.alpha_row)
    two.alpha.answer(reasoning_completion(field))

    response = two.post({"model": model.public_id, "messages": HI})

    assert response.json()["choices"][0]["message"] == {
        "role": "assistant",
        "content": "42",
        "reasoning": "Let me think.",
    }


def test_reasoning_exclude_drops_the_reasoning_text(two: Two):
    model = two.model(two.alpha_row)
    two.alpha.answer(reasoning_completion("reasoning_content"))

    response = two.post({"model": model.public_id, "messages": HI, "reasoning": {"exclude": True}})

    assert response.json()["choices"][0]["message"] == {"role": "assistant", "content": "42"}


def _reasoning_stream(two: Two, field: str) -> None:
    def reply(body: dict[str, Any]) -> tuple[int, str, bytes]:
        def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
            payload = {
                "id": "up-1",
                "object": "chat.completion.chunk",
                "created": 1,
                "model": UPSTREAM_MODEL,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }
            return b"data: " + json.dumps(payload).encode() + b"\n\n"

        usage = {
            "id": "up-1",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": UPSTREAM_MODEL,
            "choices": [],
            "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7},
        }
        events = (
            chunk({"role": "assistant", field: "Hmm."})
            + chunk({field: " Yes."})
            + chunk({"content": "42"})
            + chunk({}, "stop")
            + b"data: "
            + json.dumps(usage).encode()
            + b"\n\ndata: [DONE]\n\n"
        )
        return 200, "text/event-stream", events

    two.alpha.replies.append(reply)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("exclude", [False, True])
def test_streamed_reasoning_comes_as_delta_reasoning_or_not_at_all(two: Two, exclude):
    model = two.model(two.alpha_row)
    _reasoning_stream(two, "reasoning_content")
    body = {"model": model.public_id, "messages": HI, "stream": True, "reasoning": {"exclude": exclude}}

    response = two.post(body)
    chunks = [json.loads(c) for c in sse_data(b"".join(response.streaming_content))[:-1]]

    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    if exclude:
        assert deltas == [{"role": "assistant"}, {}, {"content": "42"}, {}]
    else:
        assert deltas == [{"role": "assistant", "reasoning": "Hmm."}, {"reasoning": " Yes."}, {"content": "42"}, {}]
    assert all(c["model"] == model.public_id for c in chunks)


# --- malformed fields --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"models": "a/b"}, "models"),
        ({"models": []}, "models"),
        ({"models": ["ok/model", 3]}, "models[1]"),
        ({"models": [f"m/{i}" for i in range(11)]}, "models"),
        ({"provider": []}, "provider"),
        ({"provider": {"order": "alpha"}}, "provider.order"),
        ({"provider": {"only": [1]}}, "provider.only"),
        ({"provider": {"ignore": [""]}}, "provider.ignore"),
        ({"provider": {"allow_fallbacks": "no"}}, "provider.allow_fallbacks"),
        ({"provider": {"sort": "cheapest"}}, "provider.sort"),
        ({"provider": {"sort": {"by": "speed"}}}, "provider.sort.by"),
        ({"provider": {"max_price": {"prompt": "-1"}}}, "provider.max_price.prompt"),
        ({"provider": {"max_price": {"completion": "lots"}}}, "provider.max_price.completion"),
        ({"provider": {"max_price": {"tokens": 1}}}, "provider.max_price.tokens"),
        ({"provider": {"require_parameters": 1}}, "provider.require_parameters"),
        ({"provider": {"data_collection": "never"}}, "provider.data_collection"),
        ({"provider": {"zdr": True}}, "provider.zdr"),
        ({"provider": {"allow_fallback": False}}, "provider.allow_fallback"),
        ({"reasoning": "high"}, "reasoning"),
        ({"reasoning": {"effort": "max"}}, "reasoning.effort"),
        ({"reasoning": {"max_tokens": -1}}, "reasoning.max_tokens"),
        ({"reasoning": {"effort": "low", "max_tokens": 100}}, "reasoning"),
        ({"reasoning": {"exclude": "yes"}}, "reasoning.exclude"),
        ({"route": "sort"}, "route"),
        ({"transforms": "middle-out"}, "transforms"),
        ({"usage": {"include": "yes"}}, "usage.include"),
    ],
)
def test_a_malformed_routing_field_is_a_400_naming_it(two: Two, extra, param):
    response = two.post({"model": "a/b", "messages": HI, **extra})

    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["code"], error["param"]) == ("invalid_request", param)
    assert not Generation.objects.filter(account=two.shop.account).exists()


def test_without_model_or_models_it_is_a_400_naming_model(two: Two):
    response = two.post({"messages": HI})

    assert response.status_code == 400
    assert response.json()["error"]["param"] == "model"


def test_accepted_but_ignored_provider_fields_change_nothing(two: Two):
    model = two.model(two.alpha_row)
    two.alpha.answer(OK)
    provider = {"quantizations": ["fp8"], "zdr": False, "max_price": {"image": 1}, "preferred_min_throughput": 10}

    response = two.post({"model": model.public_id, "messages": HI, "provider": provider})

    assert response.status_code == 200
    assert two.alpha.received[0].body == {"model": UPSTREAM_MODEL, "messages": HI}


@pytest.mark.usefixtures("money_path")
def test_sort_price_tries_the_route_that_costs_us_least_first_and_records_its_cost(two: Two):
    model = two.model(two.alpha_row, two.beta_row)
    alpha_route, beta_route = model.routes.order_by("priority")
    earlier = model.created_at - timedelta(seconds=5)
    route_cost_set(route_id=alpha_route.pk, prompt="0.10", completion="0.40", effective_from=earlier)
    route_cost_set(route_id=beta_route.pk, prompt="0.05", completion="0.20", effective_from=earlier)
    two.beta.answer(OK)

    response = two.post({"model": model.public_id, "messages": HI, "provider": {"sort": "price"}})

    assert response.status_code == 200
    assert two.alpha.received == []
    generation = Generation.objects.get(pk=response["X-Generation-Id"])
    assert generation.provider_id == two.beta_row.pk
    upstream = per_million(10, "0.05") + per_million(5, "0.20")
    assert (generation.upstream_cost, generation.margin) == (upstream, generation.cost - upstream)
