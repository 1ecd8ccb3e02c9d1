"""AnthropicClient: message translation, and the real anthropic SDK against the fake server."""

from __future__ import annotations

import itertools
import json
import time
from typing import Any

import anthropic
import pytest

from agent_runtime_framework.llm import (
    AnthropicClient,
    LLMAuthenticationError,
    LLMBadRequestError,
    LLMConnectionError,
    LLMRateLimitError,
    LLMResponse,
    LLMServerError,
    LLMStreamInterruptedError,
    LLMTimeoutError,
    RetryPolicy,
)
from agent_runtime_framework.llm.anthropic_client import (
    CONVERSATION_START,
    from_anthropic_message,
    to_anthropic_messages,
    to_anthropic_tool_choice,
    to_anthropic_tools,
)
from agent_runtime_framework.testing.fake_providers import (
    FakeProviderServer,
    FakeResponse,
    SSEEvent,
    anthropic_error,
    anthropic_message,
    anthropic_stream,
)

USER = [{"role": "user", "content": "Hello"}]
SAVE_NAME = {
    "type": "function",
    "function": {
        "name": "save_name",
        "description": "Save the user's name",
        "parameters": {
            "type": "object",
            "properties": {"name": {"type": "string"}},
            "required": ["name"],
        },
    },
}


def call(call_id: str, name: str, arguments: str) -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


# -- translation ---------------------------------------------------------------------------


def test_system_messages_are_extracted_and_joined():
    system, turns = to_anthropic_messages(
        [
            {"role": "system", "content": "You are helpful."},
            {"role": "user", "content": "Hi"},
            {"role": "system", "content": "Step: collect the name."},
        ]
    )
    assert system == "You are helpful.\n\nStep: collect the name."
    assert turns == [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}]


def test_tool_calls_become_tool_use_and_results_are_grouped():
    system, turns = to_anthropic_messages(
        [
            {"role": "user", "content": "I'm Ada, ada@example.com"},
            {
                "role": "assistant",
                "content": "Saving.",
                "tool_calls": [
                    call("c1", "save_name", '{"name": "Ada"}'),
                    call("c2", "save_email", "{not json"),
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "saved name"},
            {"role": "tool", "tool_call_id": "c2", "content": "Error: invalid JSON"},
        ]
    )
    assert system is None
    assert [turn["role"] for turn in turns] == ["user", "assistant", "user"]
    assert turns[1]["content"] == [
        {"type": "text", "text": "Saving."},
        {"type": "tool_use", "id": "c1", "name": "save_name", "input": {"name": "Ada"}},
        {"type": "tool_use", "id": "c2", "name": "save_email", "input": {"_raw": "{not json"}},
    ]
    assert turns[2]["content"] == [
        {"type": "tool_result", "tool_use_id": "c1", "content": "saved name"},
        {"type": "tool_result", "tool_use_id": "c2", "content": "Error: invalid JSON"},
    ]


def test_roles_alternate_and_tool_results_come_first():
    _, turns = to_anthropic_messages(
        [
            {"role": "user", "content": "a"},
            {"role": "user", "content": "b"},
            {"role": "assistant", "content": None, "tool_calls": [call("c1", "t", "{}")]},
            {"role": "tool", "tool_call_id": "c1", "content": "done"},
            {"role": "user", "content": "c"},
            {"role": "assistant", "content": "x"},
            {"role": "assistant", "content": "y"},
        ]
    )
    roles = [turn["role"] for turn in turns]
    assert roles == ["user", "assistant", "user", "assistant"]
    assert all(a != b for a, b in itertools.pairwise(roles))
    assert [block["text"] for block in turns[0]["content"]] == ["a", "b"]
    assert [block["type"] for block in turns[2]["content"]] == ["tool_result", "text"]
    assert [block["text"] for block in turns[3]["content"]] == ["x", "y"]
    assert turns[1]["content"] == [{"type": "tool_use", "id": "c1", "name": "t", "input": {}}]


def test_tool_results_move_before_text_in_a_merged_user_turn():
    _, turns = to_anthropic_messages(
        [
            {"role": "user", "content": "a"},
            {"role": "assistant", "content": None, "tool_calls": [call("c1", "t", "{}")]},
            {"role": "user", "content": "(typed while the tool ran)"},
            {"role": "tool", "tool_call_id": "c1", "content": "done"},
        ]
    )
    assert [block["type"] for block in turns[2]["content"]] == ["tool_result", "text"]


def test_first_message_must_be_user():
    _, turns = to_anthropic_messages(
        [{"role": "system", "content": "s"}, {"role": "assistant", "content": "Welcome!"}]
    )
    assert turns[0] == {"role": "user", "content": [{"type": "text", "text": CONVERSATION_START}]}
    assert turns[1]["role"] == "assistant"
    _, empty = to_anthropic_messages([{"role": "system", "content": "only a prompt"}])
    assert [turn["role"] for turn in empty] == ["user"]


def test_arguments_that_are_not_objects_are_kept_raw():
    _, turns = to_anthropic_messages(
        [
            {"role": "user", "content": "x"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [call("c1", "t", "[1, 2]"), call("c2", "t", "")],
            },
        ]
    )
    assert turns[1]["content"][0]["input"] == {"_raw": "[1, 2]"}
    assert turns[1]["content"][1]["input"] == {}


def test_content_parts_and_images():
    _, turns = to_anthropic_messages(
        [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is this?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
                    {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
                ],
            }
        ]
    )
    blocks = turns[0]["content"]
    assert blocks[0] == {"type": "text", "text": "What is this?"}
    assert blocks[1]["source"] == {"type": "base64", "media_type": "image/png", "data": "AAAA"}
    assert blocks[2]["source"] == {"type": "url", "url": "https://example.com/a.png"}


def test_tools_and_tool_choice_translation():
    assert to_anthropic_tools([SAVE_NAME]) == [
        {
            "name": "save_name",
            "description": "Save the user's name",
            "input_schema": SAVE_NAME["function"]["parameters"],
        }
    ]
    bare = {"type": "function", "function": {"name": "ping"}}
    assert to_anthropic_tools([bare]) == [
        {"name": "ping", "input_schema": {"type": "object", "properties": {}}}
    ]
    native = {"name": "x", "input_schema": {"type": "object"}}
    assert to_anthropic_tools([native]) == [native]
    assert to_anthropic_tool_choice("auto") == {"type": "auto"}
    assert to_anthropic_tool_choice("required") == {"type": "any"}
    assert to_anthropic_tool_choice({"type": "function", "function": {"name": "x"}}) == {
        "type": "tool",
        "name": "x",
    }


def test_answer_translation():
    message, finish, usage = from_anthropic_message(
        {
            "content": [
                {"type": "text", "text": "Part one. "},
                {
                    "type": "tool_use",
                    "id": "toolu_1",
                    "name": "save_name",
                    "input": {"name": "Ada"},
                },
                {"type": "text", "text": "Part two."},
            ],
            "stop_reason": "tool_use",
            "usage": {"input_tokens": 10, "output_tokens": 4, "cache_read_input_tokens": 5},
        }
    )
    assert message["content"] == "Part one. Part two."
    assert message["tool_calls"] == [call("toolu_1", "save_name", '{"name": "Ada"}')]
    assert finish == "tool_calls"
    assert usage == {"prompt_tokens": 15, "completion_tokens": 4, "total_tokens": 19}
    for stop, expected in [
        ("end_turn", "stop"),
        ("max_tokens", "length"),
        ("stop_sequence", "stop"),
    ]:
        assert from_anthropic_message({"content": [], "stop_reason": stop})[1] == expected


# -- over the wire -------------------------------------------------------------------------


def make_client(server: FakeProviderServer, retry: RetryPolicy, **kw: Any) -> AnthropicClient:
    return AnthropicClient(
        "claude-test", api_key="sk-ant-test", base_url=server.anthropic_base_url, retry=retry, **kw
    )


async def collect(stream: Any) -> tuple[list[str], LLMResponse]:
    deltas: list[str] = []
    final: list[LLMResponse] = []
    async for event in stream:
        if event.response is not None:
            final.append(event.response)
        elif event.delta:
            assert not final
            deltas.append(event.delta)
    assert len(final) == 1
    return deltas, final[0]


async def test_plain_reply_and_request_shape(fake_server, retry):
    fake_server.enqueue(anthropic_message("Hello Ada!", usage=(30, 6)))
    client = make_client(fake_server, retry, max_tokens=300, default_params={"temperature": 0.1})

    response = await client.generate(
        [{"role": "system", "content": "Be warm."}, *USER], stop=["END"], top_k=3
    )

    assert response.message == {"role": "assistant", "content": "Hello Ada!"}
    assert response.usage == {"prompt_tokens": 30, "completion_tokens": 6, "total_tokens": 36}
    assert response.finish_reason == "stop"
    [request] = fake_server.requests
    assert request.path == "/v1/messages"
    body = request.json
    assert body["model"] == "claude-test" and body["max_tokens"] == 300
    assert body["system"] == "Be warm."
    assert body["messages"] == [{"role": "user", "content": [{"type": "text", "text": "Hello"}]}]
    assert body["stop_sequences"] == ["END"] and body["temperature"] == 0.1 and body["top_k"] == 3


async def test_one_tool_call(fake_server, retry):
    fake_server.enqueue(anthropic_message(None, [("save_name", {"name": "Ada"})]))
    response = await make_client(fake_server, retry).generate(
        USER, tools=[SAVE_NAME], tool_choice="required"
    )

    assert response.finish_reason == "tool_calls"
    assert response.message == {
        "role": "assistant",
        "content": None,
        "tool_calls": [call("toolu_1", "save_name", '{"name": "Ada"}')],
    }
    body = fake_server.requests[0].json
    assert body["tools"][0]["input_schema"]["required"] == ["name"]
    assert body["tool_choice"] == {"type": "any"}


async def test_several_tool_calls(fake_server, retry):
    fake_server.enqueue(
        anthropic_message(
            "Both.", [("save_name", {"name": "Ada"}), ("save_email", {"email": "a@b.io"})]
        )
    )
    response = await make_client(fake_server, retry).generate(USER, tools=[SAVE_NAME])
    assert [c["function"]["name"] for c in response.message["tool_calls"]] == [
        "save_name",
        "save_email",
    ]
    assert response.message["content"] == "Both."


async def test_streaming_text(fake_server, retry):
    fake_server.enqueue(anthropic_stream("Hello there, Ada", usage=(25, 5)))
    deltas, response = await collect(make_client(fake_server, retry).stream(USER))

    assert deltas == ["Hello", " there,", " Ada"]
    assert response.message == {"role": "assistant", "content": "Hello there, Ada"}
    assert response.usage == {"prompt_tokens": 25, "completion_tokens": 5, "total_tokens": 30}
    assert fake_server.requests[0].json["stream"] is True


async def test_streaming_tool_calls_from_partial_json(fake_server, retry):
    fake_server.enqueue(
        anthropic_stream(
            "Saving.",
            [("save_name", {"name": "Ada Lovelace"}), ("save_email", {"email": "ada@example.com"})],
            argument_chunk=2,
        )
    )
    deltas, response = await collect(
        make_client(fake_server, retry).stream(USER, tools=[SAVE_NAME])
    )

    assert "".join(deltas) == "Saving."
    calls = response.message["tool_calls"]
    assert [c["id"] for c in calls] == ["toolu_1", "toolu_2"]
    assert json.loads(calls[0]["function"]["arguments"]) == {"name": "Ada Lovelace"}
    assert json.loads(calls[1]["function"]["arguments"]) == {"email": "ada@example.com"}
    assert response.finish_reason == "tool_calls"


async def test_streamed_invalid_tool_json_is_passed_through(fake_server, retry):
    fake_server.enqueue(anthropic_stream("", [("save_name", '{"name": "Ad')]))
    _, response = await collect(make_client(fake_server, retry).stream(USER, tools=[SAVE_NAME]))
    assert response.message["tool_calls"][0]["function"]["arguments"] == '{"name": "Ad'


async def test_rate_limit_honours_retry_after_then_succeeds(fake_server, retry, sleeps):
    fake_server.enqueue(
        anthropic_error(
            429,
            "Number of requests exceeded",
            type="rate_limit_error",
            headers={"retry-after": "4"},
        ),
        anthropic_message("ok"),
    )
    response = await make_client(fake_server, retry).generate(USER)
    assert response.message["content"] == "ok"
    assert sleeps.calls == [4.0]
    assert len(fake_server.requests) == 2


async def test_retry_after_beyond_the_cap_gives_up_at_once(fake_server, sleeps):
    policy = RetryPolicy(max_retries=3, max_retry_after=30, sleep=sleeps)
    fake_server.enqueue(
        anthropic_error(
            429, "daily quota", type="rate_limit_error", headers={"retry-after": "3600"}
        )
    )
    with pytest.raises(LLMRateLimitError) as info:
        await make_client(fake_server, policy).generate(USER)
    assert info.value.retry_after == 3600 and info.value.attempts == 1 and sleeps.calls == []


async def test_overloaded_then_success(fake_server, retry, sleeps):
    fake_server.enqueue(
        anthropic_error(529, "Overloaded", type="overloaded_error"), anthropic_message("ok")
    )
    response = await make_client(fake_server, retry).generate(USER)
    assert response.message["content"] == "ok" and sleeps.calls == [0.25]


async def test_error_event_in_stream_is_retried_before_text(fake_server, retry, sleeps):
    error = SSEEvent(
        {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}, "error"
    )
    fake_server.enqueue(FakeResponse(events=[error]), anthropic_stream("fine"))
    deltas, _response = await collect(make_client(fake_server, retry).stream(USER))
    assert deltas == ["fine"] and len(sleeps.calls) == 1


async def test_timeout_after_retries(fake_server, sleeps):
    policy = RetryPolicy(max_retries=1, base_delay=0.01, jitter=0.0, sleep=sleeps)
    fake_server.enqueue(
        FakeResponse(delay=5.0, json_body={}), FakeResponse(delay=5.0, json_body={})
    )
    started = time.perf_counter()
    with pytest.raises(LLMTimeoutError) as info:
        await make_client(fake_server, policy, timeout=0.2).generate(USER)
    assert time.perf_counter() - started < 2.0
    assert info.value.attempts == 2 and len(fake_server.requests) == 2


async def test_connection_dropped_mid_stream(fake_server, retry):
    # message_start, ping, block start, "one", " two" -> dropped
    fake_server.enqueue(anthropic_stream("one two three", drop_after=5))
    with pytest.raises(LLMStreamInterruptedError) as info:
        await collect(make_client(fake_server, retry).stream(USER))
    assert isinstance(info.value, LLMConnectionError)
    assert info.value.partial_text == "one two"
    assert len(fake_server.requests) == 1


async def test_connection_dropped_before_text_is_retried(fake_server, retry):
    fake_server.enqueue(anthropic_stream("hello", drop_after=2), anthropic_stream("hello"))
    deltas, _ = await collect(make_client(fake_server, retry).stream(USER))
    assert deltas == ["hello"] and len(fake_server.requests) == 2


async def test_non_json_body(fake_server, sleeps):
    fake_server.enqueue(FakeResponse(body="upstream connect error", content_type="text/plain"))
    with pytest.raises(LLMServerError, match="upstream connect error"):
        await make_client(fake_server, RetryPolicy(max_retries=0, sleep=sleeps)).generate(USER)


async def test_unauthorized_is_not_retried(fake_server, retry, sleeps):
    fake_server.enqueue(anthropic_error(401, "invalid x-api-key", type="authentication_error"))
    with pytest.raises(LLMAuthenticationError) as info:
        await make_client(fake_server, retry).generate(USER)
    assert "invalid x-api-key" in str(info.value) and info.value.attempts == 1
    assert len(fake_server.requests) == 1 and sleeps.calls == []


async def test_bad_request_keeps_provider_message(fake_server, retry, sleeps):
    fake_server.enqueue(anthropic_error(400, "messages: roles must alternate"))
    with pytest.raises(LLMBadRequestError) as info:
        await make_client(fake_server, retry).generate(USER)
    assert "messages: roles must alternate" in info.value.message
    assert info.value.status_code == 400 and info.value.provider == "anthropic"
    assert len(fake_server.requests) == 1 and sleeps.calls == []


async def test_sdk_retries_are_disabled_for_a_given_client(fake_server, sleeps):
    sdk = anthropic.AsyncAnthropic(
        api_key="k", base_url=fake_server.anthropic_base_url, max_retries=4
    )
    client = AnthropicClient(
        "claude-test", client=sdk, retry=RetryPolicy(max_retries=0, sleep=sleeps)
    )
    fake_server.enqueue(
        anthropic_error(500, "boom", type="api_error"), anthropic_message("unreached")
    )
    with pytest.raises(LLMServerError):
        await client.generate(USER)
    assert len(fake_server.requests) == 1
