"""The LiteLLM SDK as a client (pinned in pyproject.toml) against a live router, the way its docs call an
OpenAI-compatible server: `litellm.completion(model="openai/<id>", api_base=..., api_key=...)`."""

from __future__ import annotations

import litellm
import pytest

from tests.e2e.conftest import Shop

from .test_openai_python import TEXT_5
from .test_wire import HELLO

# LiteLLM's own response objects trip pydantic's serializer checks; nothing of ours is involved.
pytestmark = pytest.mark.filterwarnings("ignore:Pydantic serializer warnings:UserWarning")


def complete(router: str, shop: Shop, **kwargs):
    return litellm.completion(
        model=f"openai/{shop.model.public_id}",
        api_base=router,
        api_key=shop.key,
        messages=HELLO,
        max_retries=0,
        timeout=20,
        extra_body={"emulator": {"completion_tokens": 5}},
        **kwargs,
    )


def test_completion_returns_the_text_and_usage(router: str, shop: Shop):
    response = complete(router, shop)
    assert response.choices[0].message.content == TEXT_5
    assert response.choices[0].finish_reason == "stop"
    assert (response.usage.prompt_tokens, response.usage.completion_tokens) == (8, 5)


def test_a_stream_yields_the_text_and_its_finish_reason(router: str, shop: Shop):
    chunks = list(complete(router, shop, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == TEXT_5
    assert [c.choices[0].finish_reason for c in chunks if c.choices[0].finish_reason] == ["stop"]


def test_a_stream_with_include_usage_reports_the_usage(router: str, shop: Shop):
    chunks = list(complete(router, shop, stream=True, stream_options={"include_usage": True}))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == TEXT_5
    usage = [c.usage for c in chunks if getattr(c, "usage", None)][-1]
    assert (usage.prompt_tokens, usage.completion_tokens) == (8, 5)


def test_the_stream_builder_rebuilds_the_whole_response(router: str, shop: Shop):
    # Without include_usage LiteLLM drops a stream's usage and counts tokens itself, by design.
    chunks = list(complete(router, shop, stream=True, stream_options={"include_usage": True}))
    response = litellm.stream_chunk_builder(chunks, messages=HELLO)
    assert response.choices[0].message.content == TEXT_5
    assert (response.usage.prompt_tokens, response.usage.completion_tokens) == (8, 5)
