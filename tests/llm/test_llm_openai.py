"""OpenAIClient through the real openai SDK against the local fake provider server."""

from __future__ import annotations

import json
import time
from typing import Any

import openai
import pytest

from agent_runtime_framework.llm import (
    LLMAuthenticationError,
    LLMBadRequestError,
    LLMConnectionError,
    LLMRateLimitError,
    LLMResponse,
    LLMServerError,
    LLMStreamEvent,
    LLMStreamInterruptedError,
    LLMTimeoutError,
    OpenAIClient,
    RetryPolicy,
    StreamingLLMClient,
)
from agent_runtime_framework.testing.fake_providers import (
    FakeProviderServer,
    FakeResponse,
    SSEEvent,
    openai_completion,
    openai_error,
    openai_stream,
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


def make_client(server: FakeProviderServer, retry: RetryPolicy, **kw: Any) -> OpenAIClient:
    return OpenAIClient(
        "gpt-test", api_key="sk-test", base_url=server.openai_base_url, retry=retry, **kw
    )


async def collect(stream: Any) -> tuple[list[str], LLMResponse]:
    deltas: list[str] = []
    final: list[LLMResponse] = []
    async for event in stream:
        assert isinstance(event, LLMStreamEvent)
        if event.response is not None:
            final.append(event.response)
        elif event.delta:
            assert not final, "no delta may follow the final response"
            deltas.append(event.delta)
    assert len(final) == 1, "exactly one final response event"
    return deltas, final[0]


async def test_plain_reply_and_request_shape(fake_server, retry):
    fake_server.enqueue(openai_completion("Hi there!", usage=(9, 3)))
    client = make_client(fake_server, retry, default_params={"temperature": 0.2})

    response = await client.generate(
        [{"role": "system", "content": "Be brief."}, *USER], seed=7, top_k=5
    )

    assert response.message == {"role": "assistant", "content": "Hi there!"}
    assert response.usage == {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12}
    assert response.finish_reason == "stop"
    [request] = fake_server.requests
    assert request.path == "/v1/chat/completions"
    assert request.headers["authorization"] == "Bearer sk-test"
    body = request.json
    assert body["model"] == "gpt-test"
    assert body["messages"][0] == {"role": "system", "content": "Be brief."}
    assert body["temperature"] == 0.2 and body["seed"] == 7
    assert body["top_k"] == 5  # unknown to the SDK: sent through extra_body
    assert "tools" not in body and "stream" not in body


async def test_one_tool_call(fake_server, retry):
    fake_server.enqueue(openai_completion(None, [("save_name", {"name": "Ada"})]))
    client = make_client(fake_server, retry)

    response = await client.generate(USER, tools=[SAVE_NAME], tool_choice="auto")

    assert response.finish_reason == "tool_calls"
    assert response.message["content"] is None
    [call] = response.message["tool_calls"]
    assert call == {
        "id": "call_1",
        "type": "function",
        "function": {"name": "save_name", "arguments": '{"name": "Ada"}'},
    }
    body = fake_server.requests[0].json
    assert body["tools"] == [SAVE_NAME] and body["tool_choice"] == "auto"


async def test_several_tool_calls(fake_server, retry):
    fake_server.enqueue(
        openai_completion(
            "Saving both.", [("save_name", {"name": "Ada"}), ("save_email", {"email": "a@b.io"})]
        )
    )
    response = await make_client(fake_server, retry).generate(USER, tools=[SAVE_NAME])

    names = [call["function"]["name"] for call in response.message["tool_calls"]]
    assert names == ["save_name", "save_email"]
    assert [call["id"] for call in response.message["tool_calls"]] == ["call_1", "call_2"]
    assert response.message["content"] == "Saving both."


async def test_tool_choice_dropped_without_tools(fake_server, retry):
    fake_server.enqueue(openai_completion("ok"))
    await make_client(fake_server, retry).generate(USER, tool_choice="auto")
    assert "tool_choice" not in fake_server.requests[0].json


async def test_history_with_tool_calls_is_sent_in_openai_shape(fake_server, retry):
    fake_server.enqueue(openai_completion("Done"))
    history = [
        *USER,
        {"role": "assistant", "content": "", "tool_calls": []},  # refused by OpenAI as is
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "c1",
                    "type": "function",
                    "function": {"name": "save_name", "arguments": {"name": "Ada"}},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "saved"},
    ]
    await make_client(fake_server, retry).generate(history, tools=[SAVE_NAME])

    sent = fake_server.requests[0].json["messages"]
    assert "tool_calls" not in sent[1]
    assert sent[2]["tool_calls"][0]["function"]["arguments"] == '{"name": "Ada"}'
    assert sent[3] == {"role": "tool", "tool_call_id": "c1", "content": "saved"}


async def test_tool_arguments_not_valid_json_are_passed_through(fake_server, retry):
    fake_server.enqueue(openai_completion(None, [("save_name", '{"name": "Ada"')]))
    response = await make_client(fake_server, retry).generate(USER, tools=[SAVE_NAME])
    assert response.message["tool_calls"][0]["function"]["arguments"] == '{"name": "Ada"'


async def test_dict_arguments_and_missing_ids_are_normalized(fake_server, retry):
    body = openai_completion(None, [("save_name", {})]).json_body
    call = body["choices"][0]["message"]["tool_calls"][0]
    call["function"]["arguments"] = {"name": "Ada"}  # some compatible servers send an object
    del call["id"]
    body["choices"][0]["finish_reason"] = "stop"  # ...and say "stop" anyway
    del body["usage"]
    fake_server.enqueue(FakeResponse(json_body=body))

    response = await make_client(fake_server, retry).generate(USER, tools=[SAVE_NAME])

    [normalized] = response.message["tool_calls"]
    assert json.loads(normalized["function"]["arguments"]) == {"name": "Ada"}
    assert isinstance(normalized["function"]["arguments"], str)
    assert normalized["id"].startswith("call_") and len(normalized["id"]) > 5
    assert response.finish_reason == "tool_calls"
    assert response.usage == {}


async def test_streaming_text(fake_server, retry):
    fake_server.enqueue(openai_stream("The quick brown fox", usage=(20, 4)))
    client = make_client(fake_server, retry)
    assert isinstance(client, StreamingLLMClient)

    deltas, response = await collect(client.stream(USER))

    assert deltas == ["The", " quick", " brown", " fox"]
    assert response.message == {"role": "assistant", "content": "The quick brown fox"}
    assert response.usage == {"prompt_tokens": 20, "completion_tokens": 4, "total_tokens": 24}
    assert response.finish_reason == "stop"
    body = fake_server.requests[0].json
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}


async def test_streaming_tool_calls_split_across_chunks(fake_server, retry):
    fake_server.enqueue(
        openai_stream(
            "Let me save that.",
            [("save_name", {"name": "Ada Lovelace"}), ("save_email", {"email": "ada@example.com"})],
            argument_chunk=3,
        )
    )
    deltas, response = await collect(
        make_client(fake_server, retry).stream(USER, tools=[SAVE_NAME])
    )

    assert "".join(deltas) == "Let me save that."
    calls = response.message["tool_calls"]
    assert [c["id"] for c in calls] == ["call_1", "call_2"]
    assert [c["function"]["name"] for c in calls] == ["save_name", "save_email"]
    assert json.loads(calls[0]["function"]["arguments"]) == {"name": "Ada Lovelace"}
    assert json.loads(calls[1]["function"]["arguments"]) == {"email": "ada@example.com"}
    assert response.finish_reason == "tool_calls"


async def test_rate_limit_honours_retry_after_then_succeeds(fake_server, retry, sleeps):
    fake_server.enqueue(
        openai_error(
            429, "Rate limit reached", type="rate_limit_exceeded", headers={"Retry-After": "3"}
        ),
        openai_completion("finally"),
    )
    response = await make_client(fake_server, retry).generate(USER)

    assert response.message["content"] == "finally"
    assert sleeps.calls == [3.0]
    assert len(fake_server.requests) == 2


async def test_retry_after_ms_is_preferred(fake_server, retry, sleeps):
    fake_server.enqueue(
        openai_error(429, "slow down", headers={"retry-after-ms": "1500", "retry-after": "9"}),
        openai_completion("ok"),
    )
    await make_client(fake_server, retry).generate(USER)
    assert sleeps.calls == [1.5]


async def test_rate_limit_exhausted_raises_typed_error(fake_server, retry, sleeps):
    for _ in range(3):
        fake_server.enqueue(openai_error(429, "quota exceeded", headers={"retry-after": "1"}))
    with pytest.raises(LLMRateLimitError) as info:
        await make_client(fake_server, retry).generate(USER)
    assert info.value.attempts == 3
    assert info.value.retry_after == 1.0
    assert "quota exceeded" in str(info.value)
    assert len(fake_server.requests) == 3 and sleeps.calls == [1.0, 1.0]


async def test_server_error_then_success_uses_backoff(fake_server, retry, sleeps):
    fake_server.enqueue(
        openai_error(500, "internal", type="server_error"), openai_completion("recovered")
    )
    response = await make_client(fake_server, retry).generate(USER)
    assert response.message["content"] == "recovered"
    assert sleeps.calls == [0.25]
    assert len(fake_server.requests) == 2


async def test_server_errors_exhausted(fake_server, retry, sleeps):
    for _ in range(3):
        fake_server.enqueue(openai_error(503, "overloaded", type="server_error"))
    with pytest.raises(LLMServerError) as info:
        await make_client(fake_server, retry).generate(USER)
    assert info.value.status_code == 503 and info.value.attempts == 3
    assert sleeps.calls == [0.25, 0.5]  # exponential


async def test_timeout_after_retries(fake_server, sleeps):
    policy = RetryPolicy(max_retries=1, base_delay=0.01, jitter=0.0, sleep=sleeps)
    fake_server.enqueue(
        FakeResponse(delay=5.0, json_body={}), FakeResponse(delay=5.0, json_body={})
    )
    client = make_client(fake_server, policy, timeout=0.2)

    started = time.perf_counter()
    with pytest.raises(LLMTimeoutError) as info:
        await client.generate(USER)

    assert time.perf_counter() - started < 2.0
    assert info.value.attempts == 2
    assert len(fake_server.requests) == 2


async def test_connection_dropped_mid_stream_after_text_is_not_retried(fake_server, retry):
    fake_server.enqueue(openai_stream("one two three four", drop_after=3), openai_stream("unused"))
    received: list[str] = []
    with pytest.raises(LLMStreamInterruptedError) as info:
        async for event in make_client(fake_server, retry).stream(USER):
            received.append(event.delta)
    assert isinstance(info.value, LLMConnectionError)
    assert info.value.partial_text == "".join(received) == "one two"
    assert len(fake_server.requests) == 1


async def test_connection_dropped_before_any_text_is_retried(fake_server, retry, sleeps):
    fake_server.enqueue(
        openai_stream("", [("save_name", {"name": "Ada"})], drop_after=2),
        openai_stream("", [("save_name", {"name": "Ada"})]),
    )
    deltas, response = await collect(
        make_client(fake_server, retry).stream(USER, tools=[SAVE_NAME])
    )
    assert deltas == []
    assert response.message["tool_calls"][0]["function"]["arguments"] == '{"name": "Ada"}'
    assert len(fake_server.requests) == 2 and len(sleeps.calls) == 1


async def test_stream_without_finish_is_an_error(fake_server, sleeps):
    chunk = {
        "id": "c",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "m",
        "choices": [{"index": 0, "delta": {"role": "assistant"}, "finish_reason": None}],
    }
    fake_server.enqueue(FakeResponse(events=[SSEEvent(chunk), SSEEvent("[DONE]")]))
    policy = RetryPolicy(max_retries=0, sleep=sleeps)
    with pytest.raises(LLMConnectionError, match="ended before"):
        await collect(make_client(fake_server, policy).stream(USER))


async def test_non_json_body_is_a_retryable_server_error(fake_server, retry, sleeps):
    fake_server.enqueue(
        FakeResponse(body="<html>502 Bad Gateway</html>", content_type="text/html"),
        FakeResponse(body='{"choices": [', content_type="application/json"),
        FakeResponse(body="<html>502 Bad Gateway</html>", content_type="text/html"),
    )
    with pytest.raises(LLMServerError) as info:
        await make_client(fake_server, retry).generate(USER)
    assert "Bad Gateway" in str(info.value)
    assert info.value.attempts == 3 and len(sleeps.calls) == 2


async def test_invalid_json_body_message(fake_server, sleeps):
    fake_server.enqueue(FakeResponse(body='{"choices": [', content_type="application/json"))
    with pytest.raises(LLMServerError, match="not valid JSON"):
        await make_client(fake_server, RetryPolicy(max_retries=0, sleep=sleeps)).generate(USER)


async def test_json_without_choices_is_malformed(fake_server, sleeps):
    fake_server.enqueue(FakeResponse(json_body={"id": "x", "object": "chat.completion"}))
    with pytest.raises(LLMServerError, match="no choices"):
        await make_client(fake_server, RetryPolicy(max_retries=0, sleep=sleeps)).generate(USER)


async def test_unauthorized_is_not_retried(fake_server, retry, sleeps):
    fake_server.enqueue(openai_error(401, "Incorrect API key provided", type="invalid_api_key"))
    with pytest.raises(LLMAuthenticationError) as info:
        await make_client(fake_server, retry).generate(USER)
    assert info.value.status_code == 401 and info.value.attempts == 1
    assert "Incorrect API key provided" in str(info.value)
    assert len(fake_server.requests) == 1 and sleeps.calls == []


@pytest.mark.parametrize("status", [400, 404, 422])
async def test_bad_request_is_not_retried_and_keeps_provider_message(
    fake_server, retry, sleeps, status
):
    fake_server.enqueue(openai_error(status, "Invalid schema for function 'save_name'"))
    with pytest.raises(LLMBadRequestError) as info:
        await make_client(fake_server, retry).generate(USER)
    assert "Invalid schema for function 'save_name'" in info.value.message
    assert info.value.provider == "openai" and info.value.status_code == status
    assert len(fake_server.requests) == 1 and sleeps.calls == []


async def test_sdk_retries_are_disabled_even_for_a_given_client(fake_server, sleeps):
    sdk = openai.AsyncOpenAI(api_key="sk", base_url=fake_server.openai_base_url, max_retries=5)
    client = OpenAIClient("gpt-test", client=sdk, retry=RetryPolicy(max_retries=0, sleep=sleeps))
    fake_server.enqueue(openai_error(500, "boom"), openai_completion("should not be reached"))
    with pytest.raises(LLMServerError):
        await client.generate(USER)
    assert len(fake_server.requests) == 1
    assert client.sdk_client.max_retries == 0


async def test_azure_deployment(fake_server, retry):
    fake_server.enqueue(openai_completion("from azure"))
    client = OpenAIClient.azure(
        "my-deployment",
        azure_endpoint=fake_server.url,
        api_version="2024-10-21",
        api_key="azure-key",
        retry=retry,
    )
    response = await client.generate(USER)

    assert response.message["content"] == "from azure"
    assert client.provider == "azure"
    [request] = fake_server.requests
    assert request.path == "/openai/deployments/my-deployment/chat/completions"
    assert "api-version=2024-10-21" in request.query
    assert request.headers["api-key"] == "azure-key"
