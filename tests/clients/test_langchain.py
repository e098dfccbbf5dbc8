"""LangChain's ChatOpenAI (langchain-openai, pinned in pyproject.toml) against a live router: invoke, stream,
tools and structured output."""

from __future__ import annotations

from langchain_openai import ChatOpenAI
from pydantic import BaseModel

from tests.e2e.conftest import Shop

from .test_openai_python import TEXT_5, Weather


def chat_model(router: str, shop: Shop, **kwargs) -> ChatOpenAI:
    return ChatOpenAI(
        model=shop.model.public_id,
        base_url=router,
        api_key=shop.key,
        max_retries=0,
        timeout=20,
        extra_body={"emulator": {"completion_tokens": 5}},
        **kwargs,
    )


class GetWeather(BaseModel):
    """Get current weather."""

    city: str


def test_invoke_returns_the_text_and_token_usage(router: str, shop: Shop):
    message = chat_model(router, shop).invoke("Hello there")
    assert message.content == TEXT_5
    assert (message.usage_metadata["input_tokens"], message.usage_metadata["output_tokens"]) == (8, 5)
    assert message.response_metadata["finish_reason"] == "stop"


def test_stream_yields_the_text_and_token_usage(router: str, shop: Shop):
    chunks = list(chat_model(router, shop).stream("Hello there"))
    assert "".join(c.content for c in chunks) == TEXT_5
    merged = chunks[0]
    for chunk in chunks[1:]:
        merged += chunk
    assert (merged.usage_metadata["input_tokens"], merged.usage_metadata["output_tokens"]) == (8, 5)
    assert merged.response_metadata["finish_reason"] == "stop"


def test_stream_with_stream_usage_yields_the_text_and_token_usage(router: str, shop: Shop):
    chunks = list(chat_model(router, shop, stream_usage=True).stream("Hello there"))
    assert "".join(c.content for c in chunks) == TEXT_5
    merged = chunks[0]
    for chunk in chunks[1:]:
        merged += chunk
    assert (merged.usage_metadata["input_tokens"], merged.usage_metadata["output_tokens"]) == (8, 5)


def test_bind_tools_returns_a_parsed_tool_call(router: str, shop: Shop):
    message = chat_model(router, shop).bind_tools([GetWeather]).invoke("What's the weather in Moscow?")
    assert [(c["name"], c["args"]) for c in message.tool_calls] == [("GetWeather", {"city": "Moscow"})]


def test_with_structured_output_returns_the_pydantic_model(router: str, shop: Shop):
    weather = chat_model(router, shop).with_structured_output(Weather).invoke("Weather in Moscow")
    assert weather == Weather(city="Moscow", temperature_c=1, sunny=True)


def test_with_structured_output_through_a_tool_call_returns_the_pydantic_model(router: str, shop: Shop):
    structured = chat_model(router, shop).with_structured_output(Weather, method="function_calling")
    assert structured.invoke("Weather in Moscow") == Weather(city="Moscow", temperature_c=1, sunny=True)
