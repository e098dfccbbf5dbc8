"""Tests of the upstream emulator: the pure core, and the WSGI app over real HTTP (gevent and wsgiref)."""

from __future__ import annotations

import io
import itertools
import json
import queue
import threading
import time
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer
from wsgiref.util import setup_testing_defaults

import gevent
import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st

from emulator import core, wsgi

USER = [{"role": "user", "content": "Hello there, emulator!"}]  # 3 words: prompt = 3 + (3 + 3) = 9
TWELVE = "This is the ML Router upstream emulator speaking. It returns deterministic text"
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "required": ["city", "unit"],
            "properties": {
                "city": {"type": "string"},
                "unit": {"enum": ["celsius", "fahrenheit"]},
                "days": {"type": "integer"},
            },
        },
    },
}
SEARCH = {
    "type": "function",
    "function": {
        "name": "search",
        "parameters": {
            "type": "object",
            "properties": {
                "q": {"type": "string"},
                "limit": {"type": "integer"},
                "ratio": {"type": "number"},
                "exact": {"type": "boolean"},
                "tags": {"type": "array", "items": {"type": "string"}},
                "extra": {"type": "object"},
            },
        },
    },
}


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass


def _start_wsgiref(app: Any) -> tuple[str, _ThreadingServer]:
    server = _ThreadingServer(("127.0.0.1", 0), _QuietHandler)
    server.set_app(app)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_port}", server


def _start_gevent(app: Any) -> str:
    ports: queue.Queue[int] = queue.Queue()

    def run() -> None:  # the gevent server lives in its own thread (and hub) for the whole session
        server = wsgi.make_server("127.0.0.1", 0, app)
        server.start()
        ports.put(server.server_port)
        server.serve_forever()

    threading.Thread(target=run, daemon=True).start()
    return f"http://127.0.0.1:{ports.get(timeout=5)}"


@pytest.fixture(scope="module")
def gevent_url() -> str:
    return _start_gevent(wsgi.make_app(api_key="", sleep=gevent.sleep))


@pytest.fixture(scope="module")
def wsgiref_url():
    url, server = _start_wsgiref(wsgi.make_app(api_key=""))
    yield url
    server.shutdown()


@pytest.fixture(params=["gevent", "wsgiref"])
def url(request: pytest.FixtureRequest) -> str:
    return request.getfixturevalue(f"{request.param}_url")


def post(base: str, path: str = "/v1/chat/completions", timeout: float = 5, **body: Any) -> requests.Response:
    body.setdefault("model", "emulator-small")
    body.setdefault("messages", USER)
    return requests.post(base + path, json=body, timeout=timeout)


def sse(text: str) -> list[Any]:
    """Parsed SSE payloads; the [DONE] sentinel is kept as a string."""
    events = [e.removeprefix("data: ") for e in text.split("\n\n") if e]
    return [e if e == "[DONE]" else json.loads(e) for e in events]


def plain(**body: Any) -> dict[str, Any]:
    body.setdefault("messages", USER)
    reply = core.chat_reply(json.dumps(body).encode(), {})
    assert reply.status == 200, reply.body
    return json.loads(reply.body)


def streamed(**body: Any) -> list[Any]:
    body.setdefault("messages", USER)
    reply = core.chat_reply(json.dumps({**body, "stream": True}).encode(), {})
    return sse(b"".join(core.play(reply.events, lambda _: None)).decode())


def test_prompt_tokens_are_three_per_message_plus_words_plus_three() -> None:
    messages = [
        {"role": "system", "content": "You are a helpful assistant."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Describe this picture"},
                {"type": "image_url", "image_url": {"url": "https://x/y.png"}},
                {"type": "text", "text": "briefly"},
            ],
        },
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"city": "Moscow"}'}}
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "sunny and warm"},
    ]
    assert core.count_prompt_tokens(messages) == 3 + (3 + 5) + (3 + 4) + (3 + 2) + (3 + 3)


_TEXT = st.text(alphabet=st.sampled_from("a é\t\n\u3000"), max_size=40)
_PART = st.fixed_dictionaries({"type": st.just("text"), "text": _TEXT})
_CALL = st.fixed_dictionaries({"function": st.fixed_dictionaries({"arguments": _TEXT})})
_MESSAGE = st.fixed_dictionaries(
    {"role": st.text(max_size=3), "content": st.one_of(st.none(), _TEXT, st.lists(_PART, max_size=3))},
    optional={"tool_calls": st.lists(_CALL, max_size=2)},
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_MESSAGE, min_size=1, max_size=5))
def test_prompt_tokens_never_exceed_json_byte_length(messages: list[dict[str, Any]]) -> None:
    compact = json.dumps(messages, separators=(",", ":"), ensure_ascii=False).encode()
    assert core.count_prompt_tokens(messages) <= len(compact)


def test_it_answers_twelve_fixed_words_with_exact_usage() -> None:
    body = plain(model="my-vendor/any-model", unknown_field={"ignored": True})
    assert body["id"].startswith("chatcmpl-emu-") and body["object"] == "chat.completion"
    assert (body["model"], body["system_fingerprint"]) == ("my-vendor/any-model", "fp_emulator")
    assert body["choices"] == [
        {
            "index": 0,
            "logprobs": None,
            "finish_reason": "stop",
            "message": {"role": "assistant", "content": TWELVE, "refusal": None},
        }
    ]
    assert body["usage"] == {"prompt_tokens": 9, "completion_tokens": 12, "total_tokens": 21}
    assert "emulator_received" not in body


@pytest.mark.parametrize(
    ("limits", "words", "finish"),
    [
        ({"max_tokens": 5}, 5, "length"),
        ({"max_completion_tokens": 3, "max_tokens": 5}, 3, "length"),
        ({"max_tokens": 50}, 12, "stop"),
        ({"max_tokens": 12}, 12, "stop"),
    ],
)
def test_max_tokens_caps_the_completion_with_length_finish(limits: dict, words: int, finish: str) -> None:
    body = plain(**limits)
    assert body["choices"][0]["message"]["content"] == " ".join(TWELVE.split()[:words])
    assert (body["choices"][0]["finish_reason"], body["usage"]["completion_tokens"]) == (finish, words)


def test_completion_tokens_option_cycles_the_word_list_and_n_multiplies_usage() -> None:
    body = plain(n=3, emulator={"completion_tokens": 32})
    assert [c["index"] for c in body["choices"]] == [0, 1, 2]
    content = body["choices"][2]["message"]["content"]
    assert content.split()[:12] == TWELVE.split() and content.split()[-3:] == ["bill.", "This", "is"]
    assert body["usage"] == {"prompt_tokens": 9, "completion_tokens": 96, "total_tokens": 105}


def test_it_reports_cached_tokens_capped_at_prompt_and_provider_cost_as_number() -> None:
    steering = {"cached_tokens": 4, "usage_cost": "0.00123"}
    reply = core.chat_reply(json.dumps({"messages": USER, "emulator": steering}).encode(), {})
    assert b'"cost":0.00123' in reply.body
    assert json.loads(reply.body)["usage"]["prompt_tokens_details"] == {"cached_tokens": 4}
    assert plain(emulator={"cached_tokens": 1000})["usage"]["prompt_tokens_details"] == {"cached_tokens": 9}


def test_it_calls_the_first_tool_with_sample_arguments_for_required_properties() -> None:
    body = plain(tools=[WEATHER, SEARCH])
    choice = body["choices"][0]
    assert choice["finish_reason"] == "tool_calls" and choice["message"]["content"] is None
    assert choice["message"]["tool_calls"] == [
        {
            "id": "call_emu_0",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city":"Moscow","unit":"celsius"}'},
        }
    ]
    assert body["usage"]["completion_tokens"] == 1


def test_tool_choice_forces_the_named_function_and_fills_all_properties_when_none_required() -> None:
    body = plain(
        tools=[WEATHER, SEARCH],
        tool_choice={"type": "function", "function": {"name": "search"}},
        emulator={"tool_calls": 3},
    )
    calls = body["choices"][0]["message"]["tool_calls"]
    assert [c["function"]["name"] for c in calls] == ["search"]
    assert json.loads(calls[0]["function"]["arguments"]) == {
        "q": "sample",
        "limit": 1,
        "ratio": 1,
        "exact": True,
        "tags": [],
        "extra": {},
    }


def test_a_tool_without_parameters_gets_empty_object_arguments() -> None:
    body = plain(tools=[{"type": "function", "function": {"name": "ping"}}])
    assert body["choices"][0]["message"]["tool_calls"][0]["function"] == {"name": "ping", "arguments": "{}"}


def test_it_makes_parallel_tool_calls_unless_disabled() -> None:
    calls = plain(tools=[WEATHER, SEARCH], emulator={"tool_calls": 2})["choices"][0]["message"]["tool_calls"]
    assert [(c["id"], c["function"]["name"]) for c in calls] == [
        ("call_emu_0", "get_weather"),
        ("call_emu_1", "search"),
    ]
    single = plain(tools=[WEATHER, SEARCH], parallel_tool_calls=False, emulator={"tool_calls": 2})
    assert len(single["choices"][0]["message"]["tool_calls"]) == 1


def test_it_answers_text_when_tool_choice_is_none() -> None:
    body = plain(tools=[WEATHER], tool_choice="none")
    assert body["choices"][0]["message"] == {"role": "assistant", "content": TWELVE, "refusal": None}


def test_it_answers_text_mentioning_the_tool_result_after_a_tool_message() -> None:
    messages = [
        *USER,
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "call_emu_0", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}
            ],
        },
        {"role": "tool", "tool_call_id": "call_emu_0", "content": "22 degrees and sunny"},
    ]
    choice = plain(messages=messages, tools=[WEATHER])["choices"][0]
    assert choice["message"]["content"] == "The tool returned: 22 degrees and sunny This is the ML Router"
    assert choice["finish_reason"] == "stop"


def test_json_object_mode_returns_a_json_object_string() -> None:
    body = plain(response_format={"type": "json_object"})
    assert json.loads(body["choices"][0]["message"]["content"]) == {"answer": TWELVE}
    assert body["usage"]["completion_tokens"] == 12


def test_json_schema_mode_returns_an_object_with_required_keys_and_typed_values() -> None:
    schema = {
        "type": "object",
        "required": ["city", "temperature", "tags", "details", "kind", "when"],
        "properties": {
            "city": {"type": "string"},
            "temperature": {"type": "number", "minimum": 5},
            "tags": {"type": "array", "items": {"type": "string"}, "minItems": 1},
            "details": {"$ref": "#/$defs/details"},
            "kind": {"enum": ["a", "b"]},
            "when": {"type": "string", "format": "date"},
            "optional": {"type": "string"},
        },
        "$defs": {
            "details": {
                "type": "object",
                "required": ["ok", "note"],
                "properties": {"ok": {"type": "boolean"}, "note": {"type": ["string", "null"]}},
            }
        },
    }
    body = plain(response_format={"type": "json_schema", "json_schema": {"name": "w", "schema": schema}})
    assert json.loads(body["choices"][0]["message"]["content"]) == {
        "city": "Moscow",
        "temperature": 5,
        "tags": ["sample"],
        "details": {"ok": True, "note": "sample"},
        "kind": "a",
        "when": "2024-01-01",
    }


def test_it_streams_role_then_one_chunk_per_word_then_finish_then_done() -> None:
    events = streamed(model="m1", emulator={"completion_tokens": 3})
    assert events[-1] == "[DONE]" and len(events) == 6
    chunks = events[:-1]
    assert {(c["id"], c["created"], c["model"], c["object"]) for c in chunks} == {
        (chunks[0]["id"], chunks[0]["created"], "m1", "chat.completion.chunk")
    }
    assert [c["choices"][0]["delta"] for c in chunks] == [
        {"role": "assistant", "content": ""},
        {"content": "This"},
        {"content": " is"},
        {"content": " the"},
        {},
    ]
    assert [c["choices"][0]["finish_reason"] for c in chunks] == [None, None, None, None, "stop"]
    assert all("usage" not in c for c in chunks)


def test_chunk_words_groups_one_two_three_words_a_chunk_in_turn_with_the_same_usage() -> None:
    events = streamed(emulator={"completion_tokens": 8, "chunk_words": 3}, stream_options={"include_usage": True})
    deltas = [c["choices"][0]["delta"].get("content") for c in events[1:-3]]
    assert deltas == ["This", " is the", " ML Router upstream", " emulator", " speaking."]
    assert events[-2]["usage"]["completion_tokens"] == 8


def test_chunk_jitter_spreads_each_gap_between_the_delay_and_the_delay_plus_the_jitter() -> None:
    steering = {"completion_tokens": 40, "chunk_delay_ms": 10, "chunk_jitter_ms": 10}
    reply = core.chat_reply(json.dumps({"messages": USER, "stream": True, "emulator": steering}).encode(), {})
    gaps = [event for event in reply.events if isinstance(event, float)]
    assert len(gaps) == 42  # role, 40 words, finish, [DONE]: one gap between each two
    assert all(0.010 <= gap <= 0.020 for gap in gaps)
    assert len(set(gaps)) > 1


def test_it_streams_usage_chunk_when_asked() -> None:
    events = streamed(stream_options={"include_usage": True})
    assert events[-1] == "[DONE]"
    assert events[-2]["choices"] == []
    assert events[-2]["usage"] == {"prompt_tokens": 9, "completion_tokens": 12, "total_tokens": 21}
    assert all(c["usage"] is None for c in events[:-2]) and len(events) == 1 + 12 + 1 + 1 + 1


THOUGHT8 = "First I read the question, then I decide"


def test_the_reasoning_model_thinks_eight_words_before_answering_and_counts_them() -> None:
    body = plain(model="emulator-reasoner")
    message = body["choices"][0]["message"]
    assert (message["reasoning_content"], message["content"]) == (THOUGHT8, TWELVE)
    assert body["usage"] == {
        "prompt_tokens": 9,
        "completion_tokens": 20,
        "total_tokens": 29,
        "completion_tokens_details": {"reasoning_tokens": 8},
    }
    assert "reasoning_content" not in plain()["choices"][0]["message"]


def test_reasoning_options_set_the_length_and_the_field_on_any_model() -> None:
    body = plain(emulator={"reasoning_tokens": 2, "reasoning_field": "reasoning"})
    assert body["choices"][0]["message"]["reasoning"] == "First I"
    assert body["usage"]["completion_tokens_details"] == {"reasoning_tokens": 2}
    assert (
        "reasoning_content"
        not in plain(model="emulator-reasoner", emulator={"reasoning_tokens": 0})["choices"][0]["message"]
    )
    reply = core.chat_reply(json.dumps({"messages": USER, "emulator": {"reasoning_field": "thoughts"}}).encode(), {})
    assert reply.status == 400


def test_the_reasoning_model_streams_its_thoughts_before_the_answer() -> None:
    events = streamed(model="emulator-reasoner", emulator={"completion_tokens": 2, "reasoning_tokens": 3})
    assert [c["choices"][0]["delta"] for c in events[:-1]] == [
        {"role": "assistant", "content": ""},
        {"reasoning_content": "First"},
        {"reasoning_content": " I"},
        {"reasoning_content": " read"},
        {"content": "This"},
        {"content": " is"},
        {},
    ]


def test_it_streams_tool_calls_as_openai_does() -> None:
    events = streamed(tools=[WEATHER, SEARCH], emulator={"tool_calls": 2})
    deltas = [c["choices"][0]["delta"] for c in events[:-1]]
    assert deltas[0] == {"role": "assistant", "content": None}
    assert deltas[1] == {
        "tool_calls": [
            {"index": 0, "id": "call_emu_0", "type": "function", "function": {"name": "get_weather", "arguments": ""}}
        ]
    }
    calls: dict[int, str] = {}
    for delta in deltas[1:-1]:
        (call,) = delta["tool_calls"]
        if "id" not in call:
            assert set(call) == {"index", "function"} and set(call["function"]) == {"arguments"}
        calls[call["index"]] = calls.get(call["index"], "") + call["function"]["arguments"]
    assert calls == {
        0: '{"city":"Moscow","unit":"celsius"}',
        1: '{"q":"sample","limit":1,"ratio":1,"exact":true,"tags":[],"extra":{}}',
    }
    assert len(deltas) == 1 + 2 * (1 + 3) + 1 and events[-2]["choices"][0]["finish_reason"] == "tool_calls"


def test_plain_and_streamed_requests_work_over_http(url: str) -> None:
    assert post(url).json()["choices"][0]["message"]["content"] == TWELVE
    response = post(url, stream=True, stream_options={"include_usage": True})
    assert response.headers["Content-Type"] == "text/event-stream"
    events = sse(response.text)
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in events[:-2]) == TWELVE
    assert events[-2]["usage"]["total_tokens"] == 21 and events[-1] == "[DONE]"


def test_models_lists_emulator_models(url: str) -> None:
    body = requests.get(url + "/v1/models", timeout=5).json()
    assert body["object"] == "list"
    assert [(m["id"], m["object"], m["owned_by"]) for m in body["data"]] == [
        ("emulator-small", "model", "emulator"),
        ("emulator-large", "model", "emulator"),
        ("emulator-reasoner", "model", "emulator"),
        ("emulator-embed", "model", "emulator"),
    ]


@pytest.mark.parametrize(
    ("raw", "param"),
    [
        (b"{not json", None),
        (b'{"model": "m"}', "messages"),
        (b'{"messages": [], "emulator": {}}', "messages"),
        (b'{"messages": [{"role": "user"}], "emulator": {"fail": "x"}}', "emulator.fail"),
    ],
)
def test_bad_requests_get_openai_shaped_400(url: str, raw: bytes, param: str | None) -> None:
    response = requests.post(url + "/v1/chat/completions", data=raw, timeout=5)
    error = response.json()["error"]
    assert response.status_code == 400 and set(error) == {"message", "type", "param", "code"}
    assert (error["type"], error["param"]) == ("invalid_request_error", param)


@pytest.mark.parametrize(
    ("mode", "error_type"),
    [
        ("400", "invalid_request_error"),
        ("401", "invalid_request_error"),
        ("429", "requests"),
        ("500", "server_error"),
        ("502", "server_error"),
        ("503", "server_error"),
    ],
)
def test_status_fail_modes_return_that_status_with_openai_error(url: str, mode: str, error_type: str) -> None:
    for stream in (False, True):
        response = post(url, stream=stream, emulator={"fail": mode})
        body = response.json()
        assert response.status_code == int(mode) and set(body) == {"error"}
        assert body["error"]["type"] == error_type and body["error"]["message"]


def test_path_prefix_fails_every_request_with_that_mode(url: str) -> None:
    assert post(url, "/fail/500/v1/chat/completions").status_code == 500
    assert post(url, "/emulator/fail/429/v1/chat/completions", emulator={"fail": "503"}).status_code == 429
    assert requests.get(url + "/fail/503/v1/models", timeout=5).status_code == 503
    assert "usage" not in post(url, "/fail/no_usage/v1/chat/completions").json()
    assert post(url, "/emulator/v1/chat/completions").json()["usage"]["total_tokens"] == 21
    assert requests.get(url + "/elsewhere", timeout=5).status_code == 404


def test_timeout_mode_outlasts_the_callers_read_timeout(gevent_url: str) -> None:
    with pytest.raises(requests.exceptions.ReadTimeout):
        post(gevent_url, timeout=0.3, emulator={"fail": "timeout", "timeout_ms": 1500})
    started = time.monotonic()
    assert post(gevent_url, emulator={"fail": "timeout", "timeout_ms": 120}).status_code == 200
    assert time.monotonic() - started >= 0.12


def test_drop_mid_stream_breaks_the_connection_without_done(gevent_url: str) -> None:
    lines: list[bytes] = []
    with requests.post(
        gevent_url + "/v1/chat/completions",
        stream=True,
        timeout=5,
        json={
            "messages": USER,
            "stream": True,
            "stream_options": {"include_usage": True},
            "emulator": {"fail": "drop_mid_stream"},
        },
    ) as response:
        with pytest.raises(requests.exceptions.ChunkedEncodingError):
            lines.extend(line for line in response.iter_lines() if line)
    assert len(lines) == 1 + 6 and b"[DONE]" not in b"".join(lines)
    assert post(gevent_url, emulator={"fail": "drop_mid_stream"}).status_code == 500


def test_drop_mid_stream_raises_a_quiet_connection_reset_in_the_core() -> None:
    reply = core.chat_reply(
        json.dumps({"messages": USER, "stream": True, "emulator": {"fail": "drop_mid_stream"}}).encode(), {}
    )
    sent: list[bytes] = []
    with pytest.raises(ConnectionResetError):
        sent.extend(core.play(reply.events, lambda _: None))
    assert len(sent) == 7


def test_error_mid_stream_sends_an_error_event_then_stops(url: str) -> None:
    events = sse(post(url, stream=True, emulator={"fail": "error_mid_stream"}).text)
    assert len(events) == 1 + 6 + 1 and "[DONE]" not in events
    assert events[-1] == {"error": {"message": "upstream failure", "type": "server_error", "code": 500}}


def test_usage_fail_modes_omit_or_corrupt_usage() -> None:
    assert "usage" not in plain(emulator={"fail": "no_usage"})
    events = streamed(stream_options={"include_usage": True}, emulator={"fail": "no_usage"})
    assert events[-1] == "[DONE]" and all("usage" not in c and c["choices"] for c in events[:-1])
    assert plain(emulator={"fail": "negative_usage"})["usage"] == {
        "prompt_tokens": 9,
        "completion_tokens": -5,
        "total_tokens": 4,
    }
    assert plain(emulator={"fail": "absurd_usage"})["usage"]["completion_tokens"] == 10**12


def test_echo_returns_the_body_and_safe_headers_but_never_the_authorization_value(url: str) -> None:
    sent = {
        "model": "x",
        "messages": USER,
        "temperature": 0.5,
        "vendor_field": {"a": [1, 2]},
        "emulator": {"echo": True},
    }
    headers = {"Authorization": "Bearer sk-very-secret-value", "User-Agent": "emulator-test/1.0"}
    response = requests.post(url + "/v1/chat/completions", json=sent, headers=headers, timeout=5)
    assert response.json()["emulator_received"] == {
        "body": sent,
        "headers": {
            "content-type": "application/json",
            "user-agent": "emulator-test/1.0",
            "authorization_present": True,
        },
    }
    assert "sk-very-secret-value" not in response.text
    streamed_events = sse(
        requests.post(url + "/v1/chat/completions", json={**sent, "stream": True}, headers=headers, timeout=5).text
    )
    assert streamed_events[0]["emulator_received"]["body"] == {**sent, "stream": True}
    assert all("emulator_received" not in c for c in streamed_events[1:-1])


def test_api_key_is_enforced_when_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    url, server = _start_wsgiref(wsgi.make_app(api_key="test-key"))
    try:
        missing = requests.post(url + "/v1/chat/completions", json={"messages": USER}, timeout=5)
        assert missing.status_code == 401 and missing.json()["error"]["code"] == "invalid_api_key"
        wrong = requests.get(url + "/v1/models", headers={"Authorization": "Bearer nope"}, timeout=5)
        assert wrong.status_code == 401
        ok = requests.post(
            url + "/v1/chat/completions",
            json={"messages": USER},
            timeout=5,
            headers={"Authorization": "Bearer test-key"},
        )
        assert ok.status_code == 200
    finally:
        server.shutdown()
    monkeypatch.setenv("EMULATOR_API_KEY", "env-key")
    app = wsgi.make_app()
    assert _direct(app, "")[0].startswith("401") and _direct(app, "Bearer env-key")[0].startswith("200")


def _direct(app: Any, authorization: str) -> tuple[str, bytes]:
    raw = json.dumps({"model": "emulator-small", "messages": USER}).encode()
    environ: dict[str, Any] = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/v1/chat/completions",
        "CONTENT_LENGTH": str(len(raw)),
        "wsgi.input": io.BytesIO(raw),
        "HTTP_AUTHORIZATION": authorization,
    }
    setup_testing_defaults(environ)
    status: list[str] = []
    body = b"".join(app(environ, lambda s, h, exc_info=None: status.append(s)))
    return status[0], body


def test_delay_ms_holds_the_first_byte(gevent_url: str) -> None:
    started = time.monotonic()
    post(gevent_url, emulator={"delay_ms": 150})
    assert time.monotonic() - started >= 0.15


def test_stream_chunks_are_flushed_one_by_one_with_delays_and_pauses(gevent_url: str) -> None:
    arrivals: list[float] = []
    steering = {"completion_tokens": 4, "chunk_delay_ms": 30, "pause_ms": 300, "pause_after": 2}
    with requests.post(
        gevent_url + "/v1/chat/completions",
        stream=True,
        timeout=5,
        json={"messages": USER, "stream": True, "emulator": steering},
    ) as r:
        for _ in r.iter_content(chunk_size=None):
            arrivals.append(time.monotonic())
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    assert len(arrivals) == 1 + 4 + 1 + 1  # role, 4 words, finish, [DONE]: each its own HTTP chunk
    assert gaps[2] >= 0.3 and all(0.02 <= g < 0.25 for i, g in enumerate(gaps) if i != 2)


def test_direct_wsgi_calls_answer_well_under_a_millisecond() -> None:
    app = wsgi.make_app(api_key="")
    _direct(app, "")  # warm up
    started = time.perf_counter()
    for _ in range(500):
        status, body = _direct(app, "")
    assert status.startswith("200") and b'"total_tokens":21' in body
    assert (time.perf_counter() - started) / 500 < 0.0005
