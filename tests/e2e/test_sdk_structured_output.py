"""Structured output through the official SDK: a json_schema response format comes back parsed."""

from __future__ import annotations

import json

from pydantic import BaseModel

from .conftest import Shop
from .test_openai_sdk import client


class Weather(BaseModel):
    city: str
    temperature_c: int
    sunny: bool


def test_a_json_schema_response_is_parsed_by_the_sdk(router: str, shop: Shop):
    completion = client(router, shop.key).chat.completions.parse(
        model=shop.model.public_id,
        messages=[{"role": "user", "content": "Weather in Moscow as JSON"}],
        response_format=Weather,
    )
    assert completion.choices[0].message.parsed == Weather(city="Moscow", temperature_c=1, sunny=True)


def test_a_raw_json_schema_response_format_returns_matching_json(router: str, shop: Shop):
    schema = {
        "type": "object",
        "properties": {"answer": {"type": "string"}, "items": {"type": "array", "items": {"type": "integer"}}},
        "required": ["answer", "items"],
        "additionalProperties": False,
    }
    completion = client(router, shop.key).chat.completions.create(
        model=shop.model.public_id,
        messages=[{"role": "user", "content": "Answer in JSON"}],
        response_format={"type": "json_schema", "json_schema": {"name": "answer", "strict": True, "schema": schema}},
    )
    assert json.loads(completion.choices[0].message.content) == {"answer": "sample", "items": []}
    assert completion.choices[0].finish_reason == "stop"
