"""openai-python's `embeddings.create` against the live router (gunicorn + gevent) and the emulator:
deterministic vectors, float and base64, and `usage.cost` exactly what the ledger charged."""

from __future__ import annotations

import base64
import json
import struct
from decimal import Decimal

import openai
import pytest

from completions.models import Generation
from emulator.embeddings import vector

from .conftest import Shop, assert_settled_once, generation_settled, make_shop
from .test_openai_sdk import client

PROMPT_PRICE = Decimal("0.02")


@pytest.fixture
def embed_shop(transactional_db, emulator_url) -> Shop:
    """A model priced $0.02 per 1M input tokens, routed to the emulator's embedding model."""
    return make_shop(emulator_url, prompt=str(PROMPT_PRICE), completion="0", upstream_model="emulator-embed")


def charged(tokens: int) -> Decimal:
    return Decimal(tokens) * PROMPT_PRICE / Decimal(1_000_000)


def test_float_embeddings_report_their_exact_cost_and_charge_it_once(router: str, embed_shop: Shop):
    before = embed_shop.balance()
    api = client(router, embed_shop.key)
    raw = api.embeddings.with_raw_response.create(
        model=embed_shop.model.public_id, input=["the quick brown fox", "jumps"], encoding_format="float"
    )
    answer = raw.parse()
    generation = generation_settled(raw.http_response.headers["X-Generation-Id"])
    # The emulator's rule: 4 + 1 words.
    assert (answer.usage.prompt_tokens, answer.usage.total_tokens) == (5, 5)
    assert json.loads(raw.http_response.text, parse_float=Decimal)["usage"]["cost"] == charged(5)
    assert Decimal(str(answer.usage.model_extra["cost"])) == charged(5)
    assert answer.model == embed_shop.model.public_id
    assert [item.embedding for item in answer.data] == [vector("the quick brown fox", 8), vector("jumps", 8)]
    assert_settled_once(generation, charged(5))
    assert (generation.surface, generation.completion_tokens) == ("embeddings", 0)
    assert before - embed_shop.balance() == charged(5)


def test_base64_embeddings_pack_little_endian_float32_and_dimensions_are_honoured(router: str, embed_shop: Shop):
    api = client(router, embed_shop.key)
    raw = api.embeddings.with_raw_response.create(
        model=embed_shop.model.public_id, input="hello", encoding_format="base64", dimensions=4
    )
    packed = json.loads(raw.http_response.text)["data"][0]["embedding"]
    assert list(struct.unpack("<4f", base64.b64decode(packed))) == vector("hello", 4)
    answer = raw.parse()
    assert Decimal(str(answer.usage.model_extra["cost"])) == charged(1)
    assert_settled_once(generation_settled(raw.http_response.headers["X-Generation-Id"]), charged(1))


def test_the_sdk_decodes_base64_by_default_to_the_same_vectors(router: str, embed_shop: Shop):
    # openai-python asks for base64 when the caller names no encoding, and decodes it itself.
    answer = client(router, embed_shop.key).embeddings.create(model=embed_shop.model.public_id, input=[[1, 2, 3]])
    assert answer.data[0].embedding == vector([1, 2, 3], 8)
    assert answer.usage.prompt_tokens == 3


def test_the_sdk_raises_its_own_errors_for_ours(router: str, embed_shop: Shop, emulator_url: str):
    api = client(router, embed_shop.key)
    with pytest.raises(openai.BadRequestError) as bad:
        api.embeddings.create(model=embed_shop.model.public_id, input="")
    assert bad.value.body["param"] == "input"
    with pytest.raises(openai.NotFoundError):
        api.embeddings.create(model="nobody/nothing", input="x")
    with pytest.raises(openai.AuthenticationError):
        client(router, "sk-wrong").embeddings.create(model=embed_shop.model.public_id, input="x")
    poor = make_shop(emulator_url, funds="0.0000001", upstream_model="emulator-embed")
    with pytest.raises(openai.APIStatusError) as refused:
        client(router, poor.key).embeddings.create(model=poor.model.public_id, input="x")
    assert refused.value.status_code == 402
    assert not Generation.objects.filter(account_id=embed_shop.account_id).exists()


def test_a_chat_request_to_an_embedding_model_is_refused_and_not_charged(router: str, embed_shop: Shop):
    with pytest.raises(openai.BadRequestError) as refused:
        client(router, embed_shop.key).chat.completions.create(
            model=embed_shop.model.public_id, messages=[{"role": "user", "content": "hi"}]
        )
    assert "embedding model" in refused.value.message
    [generation] = Generation.objects.filter(account_id=embed_shop.account_id)
    assert_settled_once(generation_settled(generation.pk), None)
    assert generation.surface == "chat"
