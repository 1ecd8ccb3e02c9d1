"""The fake provider server itself: scripting, recording, and its unscripted default."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

from agent_runtime_framework.testing.fake_providers import (
    FakeProviderServer,
    FakeResponse,
    openai_completion,
    standin_responder,
)


def post(url: str, body: dict) -> tuple[int, dict]:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_queue_is_fifo_and_requests_are_recorded(fake_server: FakeProviderServer):
    fake_server.enqueue(openai_completion("first"), FakeResponse(status=418, json_body={"t": 1}))
    assert fake_server.pending == 2
    status, body = post(f"{fake_server.openai_base_url}/chat/completions", {"n": 1})
    assert status == 200 and body["choices"][0]["message"]["content"] == "first"
    status, body = post(f"{fake_server.openai_base_url}/chat/completions", {"n": 2})
    assert status == 418 and body == {"t": 1}
    assert [r.json for r in fake_server.requests] == [{"n": 1}, {"n": 2}]
    assert fake_server.pending == 0


def test_unscripted_request_gets_a_500_that_says_why(fake_server: FakeProviderServer):
    status, body = post(f"{fake_server.url}/v1/messages", {})
    assert status == 500
    assert "nothing scripted for POST /v1/messages" in body["error"]["message"]


def test_standin_responder_speaks_both_formats():
    with FakeProviderServer(standin_responder()) as server:
        tools = [
            {
                "type": "function",
                "function": {
                    "name": "save_email",
                    "parameters": {"type": "object", "properties": {"email": {"type": "string"}}},
                },
            }
        ]
        _, body = post(
            f"{server.openai_base_url}/chat/completions",
            {"messages": [{"role": "user", "content": "a@b.io"}], "tools": tools},
        )
        call = body["choices"][0]["message"]["tool_calls"][0]
        assert call["function"] == {"name": "save_email", "arguments": '{"email": "a@b.io"}'}
        _, body = post(
            f"{server.url}/v1/messages",
            {
                "system": "Ask for the user's email.",
                "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
            },
        )
        assert body["content"] == [{"type": "text", "text": "What is your email?"}]
        assert body["stop_reason"] == "end_turn"
