"""The emulator's embeddings: deterministic unit vectors, the documented token rule, OpenAI's base64."""

from __future__ import annotations

import base64
import json
import math
import struct
from typing import Any

import pytest
import requests
from hypothesis import given
from hypothesis import strategies as st

from emulator import embeddings
from emulator.embeddings import DEFAULT_DIMENSIONS, embeddings_reply, vector
from tests.emulator.test_emulator import gevent_url, url, wsgiref_url  # noqa: F401 (fixtures)
from tests.emulator.test_routing import routed  # noqa: F401 (fixture)


def answer(**body: Any) -> dict[str, Any]:
    reply = embeddings_reply(json.dumps(body).encode())
    assert reply.status == 200, reply.body
    return json.loads(reply.body)


def test_each_input_gets_the_same_unit_vector_every_time_whatever_else_is_asked() -> None:
    alone = answer(model="emulator-embed", input="hello world")["data"][0]["embedding"]
    together = answer(input=["other", "hello world"])["data"]
    assert len(alone) == DEFAULT_DIMENSIONS
    assert together[1] == {"object": "embedding", "index": 1, "embedding": alone}
    assert together[0]["embedding"] != alone
    assert math.isclose(math.sqrt(sum(v * v for v in alone)), 1.0, rel_tol=1e-6)


def test_dimensions_are_honoured() -> None:
    assert len(answer(input="x", dimensions=3)["data"][0]["embedding"]) == 3
    assert len(answer(input="x", dimensions=embeddings.MAX_DIMENSIONS)["data"][0]["embedding"]) == 4096


def test_base64_packs_the_float_vector_as_little_endian_float32() -> None:
    floats = answer(input="pack me", dimensions=5)["data"][0]["embedding"]
    packed = answer(input="pack me", dimensions=5, encoding_format="base64")["data"][0]["embedding"]
    assert list(struct.unpack("<5f", base64.b64decode(packed))) == floats


def test_tokens_are_words_of_strings_and_lengths_of_token_arrays() -> None:
    assert answer(input="three short words")["usage"] == {"prompt_tokens": 3, "total_tokens": 3}
    assert answer(input=["a b", "c"])["usage"]["prompt_tokens"] == 3
    assert answer(input=[5, 6, 7, 8])["usage"]["prompt_tokens"] == 4
    token_arrays = answer(input=[[1, 2], [3]])
    assert token_arrays["usage"]["prompt_tokens"] == 3
    assert [item["embedding"] for item in token_arrays["data"]] == [vector([1, 2], 8), vector([3], 8)]


@given(st.lists(st.text(min_size=1), min_size=1, max_size=5))
def test_prompt_tokens_never_exceed_the_requests_byte_length(inputs: list[str]) -> None:
    # The router holds one token per byte of the request: the emulator must never report more.
    raw = json.dumps({"input": inputs}).encode()
    assert json.loads(embeddings_reply(raw).body)["usage"]["prompt_tokens"] <= len(raw)


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"input": ""}, "input"),
        ({"input": []}, "input"),
        ({"input": ["a", 1]}, "input"),
        ({"input": ["x"] * (embeddings.MAX_INPUTS + 1)}, "input"),
        ({"input": "x", "dimensions": 0}, "dimensions"),
        ({"input": "x", "dimensions": embeddings.MAX_DIMENSIONS + 1}, "dimensions"),
        ({"input": "x", "encoding_format": "binary"}, "encoding_format"),
    ],
)
def test_bad_requests_get_openai_shaped_400(body: dict[str, Any], param: str) -> None:
    reply = embeddings_reply(json.dumps(body).encode())
    assert reply.status == 400
    assert json.loads(reply.body)["error"]["param"] == param


def test_the_chat_endpoint_refuses_the_embedding_model(url: str) -> None:  # noqa: F811
    response = requests.post(
        url + "/v1/chat/completions",
        json={"model": "emulator-embed", "messages": [{"role": "user", "content": "hi"}]},
        timeout=5,
    )
    assert (response.status_code, response.json()["error"]["param"]) == (400, "model")


def test_embeddings_over_http_and_under_a_fail_mode(url: str) -> None:  # noqa: F811
    ok = requests.post(url + "/any/prefix/v1/embeddings", json={"input": "hi"}, timeout=5)
    assert ok.status_code == 200 and ok.json()["data"][0]["embedding"] == vector("hi", 8)
    failed = requests.post(url + "/fail/503/v1/embeddings", json={"input": "hi"}, timeout=5)
    assert failed.status_code == 503


def test_the_django_adapter_answers_embeddings(routed, client) -> None:  # noqa: F811
    routed(DEBUG=True, EMULATOR_ENABLED=False, EMULATOR_API_KEY="")
    response = client.post("/emulator/v1/embeddings", {"input": "hi there"}, content_type="application/json")
    assert response.status_code == 200
    assert response.json()["usage"]["prompt_tokens"] == 2
    assert response.json()["data"][0]["embedding"] == vector("hi there", 8)
