"""OpenRouter's routing fields against gunicorn + gevent and the emulator: a fallback model serves and is
charged exactly its own price, the router's fields never reach the provider, filters are honoured."""

from __future__ import annotations

import json
from decimal import Decimal

from completions.models import Generation, Route

from .conftest import assert_settled_once, chat, cost_of, emulated_prompt_tokens, generation_settled, make_shop

HELLO = [{"role": "user", "content": "Hello there"}]
PROMPT = emulated_prompt_tokens(HELLO)  # 8


def failing(emulator_url: str) -> str:
    return emulator_url.replace("/v1", "/fail/500/v1")


def test_a_fallback_model_serves_and_is_charged_exactly_its_own_price(router, emulator_url, transactional_db):
    down = make_shop(emulator_url, routes=[failing(emulator_url)], prompt="0.15", completion="0.60")
    up = make_shop(emulator_url, prompt="1.00", completion="3.00")
    before = down.balance()
    body = {
        "model": down.model.public_id,
        "models": [up.model.public_id],
        "messages": HELLO,
        "provider": {"allow_fallbacks": True},
        "route": "fallback",
        "emulator": {"completion_tokens": 4, "echo": True},
    }

    response = chat(router, down.key, body)

    assert response.status_code == 200, response.text
    answer = json.loads(response.text, parse_float=Decimal)
    cost = cost_of(PROMPT, 4, prompt_price="1.00", completion_price="3.00")
    assert (answer["model"], answer["usage"]["cost"]) == (up.model.public_id, cost)
    sent = answer["emulator_received"]["body"]
    assert not {"models", "provider", "route"} & set(sent)
    generation = generation_settled(answer["id"])
    assert (generation.model_id, generation.price.model_id) == (up.model.pk, up.model.pk)
    assert_settled_once(generation, cost)
    assert before - down.balance() == cost


def test_a_streamed_fallback_is_charged_its_models_price(router, emulator_url, transactional_db):
    down = make_shop(emulator_url, routes=[failing(emulator_url)])
    up = make_shop(emulator_url, prompt="2.00", completion="5.00")
    body = {
        "models": [down.model.public_id, up.model.public_id],
        "messages": HELLO,
        "stream": True,
        "emulator": {"completion_tokens": 3},
    }

    response = chat(router, down.key, body, stream=True)
    events = [
        json.loads(line[6:], parse_float=Decimal) for line in response.iter_lines() if line.startswith(b"data: {")
    ]

    cost = cost_of(PROMPT, 3, prompt_price="2.00", completion_price="5.00")
    assert {e["model"] for e in events} == {up.model.public_id}
    assert events[-1]["usage"]["cost"] == cost
    assert_settled_once(generation_settled(response.headers["X-Generation-Id"]), cost)


def test_without_fallbacks_the_ordered_failing_provider_is_the_only_one_tried(router, emulator_url, transactional_db):
    shop = make_shop(emulator_url, routes=[emulator_url, failing(emulator_url)])
    bad = Route.objects.get(model=shop.model, priority=1).provider.name
    before = shop.balance()
    body = {
        "model": shop.model.public_id,
        "messages": HELLO,
        "provider": {"order": [bad], "allow_fallbacks": False},
    }

    response = chat(router, shop.key, body)

    assert response.status_code == 502
    assert response.json()["error"]["code"] == "upstream_error"
    failed = Generation.objects.get(account_id=shop.account_id)
    assert failed.status == Generation.Status.FAILED
    assert_settled_once(failed, None)
    assert shop.balance() == before

    # With fallbacks allowed the next provider answers.
    body["provider"]["allow_fallbacks"] = True
    assert chat(router, shop.key, body).status_code == 200


def test_a_filter_that_leaves_nothing_is_a_404_and_nothing_is_held(router, emulator_url, transactional_db):
    shop = make_shop(emulator_url)

    response = chat(
        router, shop.key, {"model": shop.model.public_id, "messages": HELLO, "provider": {"only": ["nobody"]}}
    )

    assert response.status_code == 404
    assert response.json()["error"]["param"] == "provider.only"
    assert shop.balance() == Decimal("10.00")
