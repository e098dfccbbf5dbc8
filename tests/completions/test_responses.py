"""POST /v1/responses translated onto a chat route: the chat body each Responses field becomes (the docs'
translation table, row by row), what is refused with a 400 naming the field, and storage's own rules
(ownership, retention, paging, pruning and its schedule)."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from completions.errors import ApiError
from completions.models import StoredResponse
from completions.stored_responses import input_items_page, response_conversation
from completions.surfaces.responses import call_item, parse_responses_request
from completions.tasks import prune_stored_responses_task
from tests.factories import funded_account


def chat_of(**body: Any) -> dict[str, Any]:
    """The chat body (without `model`) a Responses body is sent upstream as."""
    request = parse_responses_request(json.dumps({"model": "m", **body}).encode())
    return json.loads(request.forward)


def refused(**body: Any) -> ApiError:
    """The 400 a chat route answers: at once, or (what a native route could still take) when it is tried."""
    try:
        error = parse_responses_request(json.dumps({"model": "m", **body}).encode()).untranslatable
    except ApiError as exc:
        error = exc
    assert error is not None and error.status == 400 and error.code == "invalid_request"
    return error


def test_input_as_a_string_is_one_user_message_and_instructions_the_system_message():
    assert chat_of(input="Hi", instructions="Be brief.")["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
    ]


def test_input_items_become_messages_tool_calls_and_tool_results_and_reasoning_is_dropped():
    items = [
        {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "Rules."}]},
        {
            "role": "user",
            "content": [
                {"type": "input_text", "text": "Look"},
                {"type": "input_image", "image_url": "https://x/y.png", "detail": "low"},
            ],
        },
        {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "opaque"},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Checking."}]},
        {"type": "function_call", "call_id": "c1", "name": "weather", "arguments": '{"city":"Oslo"}'},
        {"type": "function_call", "call_id": "c2", "namespace": "ns", "name": "time", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c1", "output": "sunny"},
        {"type": "function_call_output", "call_id": "c2", "output": [{"type": "input_text", "text": "noon"}]},
    ]
    assert chat_of(input=items)["messages"] == [
        {"role": "system", "content": "Rules."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Look"},
                {"type": "image_url", "image_url": {"url": "https://x/y.png", "detail": "low"}},
            ],
        },
        {
            "role": "assistant",
            "content": "Checking.",
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "weather", "arguments": '{"city":"Oslo"}'}},
                {"id": "c2", "type": "function", "function": {"name": "ns__time", "arguments": "{}"}},
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
        {"role": "tool", "tool_call_id": "c2", "content": "noon"},
    ]


def test_tools_tool_choice_format_reasoning_and_limits_translate():
    chat = chat_of(
        input="Hi",
        tools=[
            {"type": "function", "name": "f", "description": "d", "parameters": {"type": "object"}, "strict": True},
            {"type": "namespace", "name": "ns", "tools": [{"type": "function", "name": "g"}]},
        ],
        tool_choice={"type": "function", "name": "f"},
        parallel_tool_calls=False,
        text={"format": {"type": "json_schema", "name": "out", "schema": {"type": "object"}, "strict": True}},
        reasoning={"effort": "high", "summary": "auto"},
        max_output_tokens=99,
        temperature=0.5,
        user="u1",
        prompt_cache_key="k",
        stream=True,
    )
    assert chat["tools"] == [
        {
            "type": "function",
            "function": {"name": "f", "description": "d", "parameters": {"type": "object"}, "strict": True},
        },
        {"type": "function", "function": {"name": "ns__g", "parameters": {"type": "object", "properties": {}}}},
    ]
    assert chat["tool_choice"] == {"type": "function", "function": {"name": "f"}}
    assert chat["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "out", "schema": {"type": "object"}, "strict": True},
    }
    assert (chat["reasoning_effort"], chat["max_tokens"], chat["parallel_tool_calls"]) == ("high", 99, False)
    assert (chat["temperature"], chat["user"], chat["prompt_cache_key"]) == (0.5, "u1", "k")
    assert chat["stream_options"] == {"include_usage": True}
    assert chat_of(input="Hi", text={"format": {"type": "json_object"}})["response_format"] == {"type": "json_object"}
    assert chat_of(input="Hi", tool_choice="required")["tool_choice"] == "required"


def test_responses_own_fields_stay_here_and_a_providers_extension_is_forwarded():
    chat = chat_of(
        input="Hi",
        store=False,
        metadata={"a": "b"},
        include=["reasoning.encrypted_content"],
        client_metadata={"session_id": "s"},
        truncation="disabled",
        service_tier="auto",
        seed=7,
    )
    assert set(chat) == {"messages", "seed"}


def test_a_codex_request_is_accepted():
    body = {
        "model": "m",
        "stream": True,
        "input": [
            {
                "type": "message",
                "id": "msg_1",
                "role": "developer",
                "content": [{"type": "input_text", "text": "You are Codex."}],
            },
            {
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": "ctx"}, {"type": "input_text", "text": "say hi"}],
            },
        ],
        "tools": [
            {
                "type": "function",
                "name": "exec_command",
                "strict": False,
                "parameters": {"type": "object", "properties": {"cmd": {"type": "string"}}},
            },
            {
                "type": "namespace",
                "name": "multi_agent_v1",
                "description": "Agents.",
                "tools": [
                    {"type": "function", "name": "close_agent", "strict": False, "parameters": {"type": "object"}}
                ],
            },
        ],
        "tool_choice": "auto",
        "parallel_tool_calls": True,
        "reasoning": {"summary": "auto"},
        "store": False,
        "include": ["reasoning.encrypted_content"],
        "prompt_cache_key": "p",
        "client_metadata": {"session_id": "s"},
    }
    request = parse_responses_request(json.dumps(body).encode())
    assert (request.store, request.stream, request.items[0]["id"]) == (False, True, "msg_1")
    assert request.items[1]["id"].startswith("msg_")
    assert [m["content"] for m in json.loads(request.forward)["messages"]] == ["You are Codex.", "ctx\n\nsay hi"]
    call = call_item(
        request,
        "fc_1",
        {"id": "c", "function": {"name": "multi_agent_v1__close_agent", "arguments": "{}"}},
        "completed",
    )
    assert (call["namespace"], call["name"], call["call_id"]) == ("multi_agent_v1", "close_agent", "c")


@pytest.mark.parametrize(
    ("body", "param", "words"),
    [
        ({"tools": [{"type": "web_search"}]}, "tools[0]", "'web_search'"),
        ({"tools": [{"type": "file_search", "vector_store_ids": ["v"]}]}, "tools[0]", "'file_search'"),
        ({"tool_choice": {"type": "web_search_preview"}}, "tool_choice", "function"),
        ({"background": True}, "background", "not supported"),
        ({"conversation": "conv_1"}, "conversation", "previous_response_id"),
        ({"input": []}, "input", "non-empty"),
        ({"input": [{"type": "item_reference", "id": "x"}]}, "input[0].type", "'item_reference'"),
        (
            {"input": [{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}]},
            "input[0].content[0].type",
            "input_file",
        ),
        ({"max_output_tokens": 0}, "max_output_tokens", "between 1"),
        ({"store": "yes"}, "store", "boolean"),
        ({"text": {"format": {"type": "json_schema"}}}, "text.format", "schema"),
    ],
)
def test_what_a_chat_route_cannot_do_is_a_400_naming_the_field(body, param, words):
    error = refused(**{"input": "Hi", **body})
    assert error.param == param
    assert words in error.message


@pytest.mark.django_db
def test_a_conversation_is_found_for_its_owner_only_and_only_within_the_retention_time(settings):
    owner, stranger = funded_account("1"), funded_account("1")
    now = timezone.now()
    for pk, days in (("gen-new", 0), ("gen-old", 31)):
        StoredResponse.objects.create(
            id=pk,
            account=owner,
            model="m",
            input_items=[{"id": "msg_1", "type": "message", "role": "user", "content": []}],
            output=[{"id": "msg_2", "type": "message", "role": "assistant", "content": []}],
            body="{}",
            created_at=now - timedelta(days=days),
        )
    assert [i["id"] for i in response_conversation("gen-new", owner.pk)] == ["msg_1", "msg_2"]
    assert response_conversation("gen-new", stranger.pk) is None
    assert response_conversation("gen-old", owner.pk) is None  # past RESPONSES_RETENTION_DAYS (30)
    settings.RESPONSES_RETENTION_DAYS = 40
    assert response_conversation("gen-old", owner.pk) is not None
    settings.RESPONSES_RETENTION_DAYS = 30

    assert prune_stored_responses_task() == 1
    assert list(StoredResponse.objects.values_list("pk", flat=True)) == ["gen-new"]


def test_input_items_page_in_either_order_after_an_item():
    stored = StoredResponse(input_items=[{"id": f"i{n}"} for n in range(5)])
    page, more = input_items_page(stored, limit=2, order="desc", after=None)
    assert ([i["id"] for i in page], more) == (["i4", "i3"], True)
    page, more = input_items_page(stored, limit=2, order="desc", after="i3")
    assert ([i["id"] for i in page], more) == (["i2", "i1"], True)
    page, more = input_items_page(stored, limit=10, order="asc", after="i2")
    assert ([i["id"] for i in page], more) == (["i3", "i4"], False)


@pytest.mark.django_db
def test_pruning_is_scheduled_daily_in_admin():
    task = PeriodicTask.objects.get(task="completions.tasks.prune_stored_responses_task")
    assert (task.enabled, task.interval.every, task.interval.period) == (True, 1, "days")


@pytest.mark.django_db
def test_the_openapi_description_has_the_responses_operations():
    paths = Client().get("/v1/openapi.json").json()["paths"]
    assert paths["/v1/responses"]["post"]["operationId"] == "responses_create"
    assert {"get", "delete"} <= set(paths["/v1/responses/{response_id}"])
    assert "get" in paths["/v1/responses/{response_id}/input_items"]
