"""openai-python (the version pinned in pyproject.toml) against a live router: sync, async, both stream forms
read with the loop from OpenAI's docs, tools, and structured output through `parse`."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal

import jsonschema
import openai
import pytest
from pydantic import BaseModel

from tests.e2e.conftest import Shop, cost_of

from .test_wire import HELLO, WEATHER_TOOL

TEXT_5 = "This is the ML Router"  # the emulator's first five words


class Weather(BaseModel):
    city: str
    temperature_c: int
    sunny: bool


def client(router: str, shop: Shop) -> openai.OpenAI:
    return openai.OpenAI(base_url=router, api_key=shop.key, max_retries=0, timeout=20)


def cost(usage) -> Decimal:
    return Decimal(str(usage.model_extra["cost"]))


def test_a_completion_has_its_text_usage_cost_and_request_id(router: str, shop: Shop):
    completion = client(router, shop).chat.completions.create(
        model=shop.model.public_id, messages=HELLO, extra_body={"emulator": {"completion_tokens": 5}}
    )
    assert completion.choices[0].message.content == TEXT_5
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (8, 5)
    assert cost(completion.usage) == cost_of(8, 5)
    assert completion._request_id


def test_the_async_client_gets_the_same_completion(router: str, shop: Shop):
    async def ask():
        async with openai.AsyncOpenAI(base_url=router, api_key=shop.key, max_retries=0, timeout=20) as api:
            return await api.chat.completions.create(
                model=shop.model.public_id, messages=HELLO, extra_body={"emulator": {"completion_tokens": 5}}
            )

    completion = asyncio.run(ask())
    assert completion.choices[0].message.content == TEXT_5
    assert cost(completion.usage) == cost_of(8, 5)
    assert completion._request_id


def test_the_docs_stream_loop_reads_every_chunk_without_include_usage(router: str, shop: Shop):
    stream = client(router, shop).chat.completions.create(
        model=shop.model.public_id, messages=HELLO, stream=True, extra_body={"emulator": {"completion_tokens": 5}}
    )
    deltas, chunks = [], []
    for chunk in stream:  # OpenAI's docs: `for chunk in stream: print(chunk.choices[0].delta)`
        deltas.append(chunk.choices[0].delta)
        chunks.append(chunk)
    assert "".join(d.content or "" for d in deltas) == TEXT_5
    final = chunks[-1]
    assert final.choices[0].finish_reason == "stop"
    assert (final.usage.prompt_tokens, final.usage.completion_tokens) == (8, 5)
    assert cost(final.usage) == cost_of(8, 5)
    assert stream.response.headers.get("x-request-id")


def test_the_docs_stream_loop_raises_api_error_on_a_failure_midway(router: str, shop: Shop):
    stream = client(router, shop).chat.completions.create(
        model=shop.model.public_id,
        messages=HELLO,
        stream=True,
        extra_body={"emulator": {"completion_tokens": 8, "fail": "error_mid_stream"}},
    )
    deltas = []
    with pytest.raises(openai.APIError):
        for chunk in stream:
            deltas.append(chunk.choices[0].delta)
    assert "".join(d.content or "" for d in deltas) == "This is the ML"


def test_a_stream_with_include_usage_ends_with_the_usage_chunk(router: str, shop: Shop):
    stream = client(router, shop).chat.completions.create(
        model=shop.model.public_id,
        messages=HELLO,
        stream=True,
        stream_options={"include_usage": True},
        extra_body={"emulator": {"completion_tokens": 5}},
    )
    text, chunks = "", []
    for chunk in stream:  # OpenAI's docs for include_usage: the last chunk has no choices
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
        chunks.append(chunk)
    assert text == TEXT_5
    assert all(c.choices and c.usage is None for c in chunks[:-1])
    assert chunks[-1].choices == []
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (8, 5)
    assert cost(chunks[-1].usage) == cost_of(8, 5)


def test_the_async_docs_stream_loop_reads_every_chunk(router: str, shop: Shop):
    async def read():
        async with openai.AsyncOpenAI(base_url=router, api_key=shop.key, max_retries=0, timeout=20) as api:
            stream = await api.chat.completions.create(model=shop.model.public_id, messages=HELLO, stream=True)
            return [chunk.choices[0].delta async for chunk in stream]

    deltas = asyncio.run(read())
    assert "".join(d.content or "" for d in deltas).startswith(TEXT_5)


def test_a_tool_call_round_trips(router: str, shop: Shop):
    api = client(router, shop)
    question = {"role": "user", "content": "What's the weather in Moscow?"}
    first = api.chat.completions.create(model=shop.model.public_id, messages=[question], tools=[WEATHER_TOOL])
    call = first.choices[0].message.tool_calls[0]
    assert (first.choices[0].finish_reason, call.function.name) == ("tool_calls", "get_weather")
    assert json.loads(call.function.arguments) == {"city": "Moscow"}
    second = api.chat.completions.create(
        model=shop.model.public_id,
        messages=[
            question,
            first.choices[0].message.model_dump(exclude_none=True),
            {"role": "tool", "tool_call_id": call.id, "content": "Sunny, +5"},
        ],
        tools=[WEATHER_TOOL],
    )
    assert "Sunny" in second.choices[0].message.content


def test_parse_returns_the_pydantic_model(router: str, shop: Shop):
    completion = client(router, shop).chat.completions.parse(
        model=shop.model.public_id, messages=[{"role": "user", "content": "Weather in Moscow"}], response_format=Weather
    )
    assert completion.choices[0].message.parsed == Weather(city="Moscow", temperature_c=1, sunny=True)


def test_the_stream_helper_parses_the_pydantic_model(router: str, shop: Shop):
    with client(router, shop).chat.completions.stream(
        model=shop.model.public_id, messages=[{"role": "user", "content": "Weather in Moscow"}], response_format=Weather
    ) as stream:
        completion = stream.get_final_completion()
    assert completion.choices[0].message.parsed == Weather(city="Moscow", temperature_c=1, sunny=True)


def test_a_json_schema_response_format_returns_conforming_json(router: str, shop: Shop):
    schema = {
        "type": "object",
        "properties": {"answer": {"type": "string"}, "items": {"type": "array", "items": {"type": "integer"}}},
        "required": ["answer", "items"],
        "additionalProperties": False,
    }
    completion = client(router, shop).chat.completions.parse(
        model=shop.model.public_id,
        messages=[{"role": "user", "content": "Answer in JSON"}],
        response_format={"type": "json_schema", "json_schema": {"name": "answer", "strict": True, "schema": schema}},
    )
    jsonschema.validate(json.loads(completion.choices[0].message.content), schema)


def test_the_model_list_names_the_model(router: str, shop: Shop):
    assert shop.model.public_id in {m.id for m in client(router, shop).models.list()}
