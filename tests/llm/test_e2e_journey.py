"""The seed's onboarding journey end to end through each real client and its local server.

The fake provider server plays the model (it serves the rule-based OfflineStandInLLM in
each wire format), so these runs go through the real SDKs, our translation and retries,
the executor loop and the journey's step-scoped tools.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from agent_runtime_framework import AgentContext, JourneyConfig
from agent_runtime_framework.llm import AnthropicClient, OpenAIClient, RetryPolicy
from agent_runtime_framework.testing.fake_providers import (
    FakeProviderServer,
    anthropic_error,
    openai_error,
    standin_responder,
)
from tests.journeys import OnboardingAgent, OnboardingStep

TURNS = [
    ("Hi there", "What is your name?", OnboardingStep.COLLECT_NAME),
    (
        "My name is Ada Lovelace",
        "Great, Ada Lovelace! Now, what's your email?",
        OnboardingStep.COLLECT_EMAIL,
    ),
    ("sure: ada@example.com", "Perfect! You're all set, Ada Lovelace!", OnboardingStep.COMPLETE),
]


def openai_client(server: FakeProviderServer, retry: RetryPolicy) -> Any:
    return OpenAIClient("gpt-test", api_key="sk-test", base_url=server.openai_base_url, retry=retry)


def azure_client(server: FakeProviderServer, retry: RetryPolicy) -> Any:
    return OpenAIClient.azure(
        "onboarding-deployment",
        azure_endpoint=server.url,
        api_version="2024-10-21",
        api_key="k",
        retry=retry,
    )


def anthropic_client(server: FakeProviderServer, retry: RetryPolicy) -> Any:
    return AnthropicClient(
        "claude-test", api_key="sk-ant-test", base_url=server.anthropic_base_url, retry=retry
    )


@pytest.fixture
def model_server():
    with FakeProviderServer(standin_responder()) as server:
        yield server


@pytest.mark.parametrize("stream", [False, True], ids=["generate", "stream"])
@pytest.mark.parametrize(
    ("make_client", "rate_limit"),
    [
        (openai_client, openai_error),
        (azure_client, openai_error),
        (anthropic_client, anthropic_error),
    ],
    ids=["openai", "azure", "anthropic"],
)
async def test_onboarding_runs_end_to_end(
    model_server: FakeProviderServer,
    retry: RetryPolicy,
    sleeps: Any,
    make_client: Callable[[FakeProviderServer, RetryPolicy], Any],
    rate_limit: Callable[..., Any],
    stream: bool,
) -> None:
    # The very first model call is rate limited once: the journey must not notice.
    model_server.enqueue(rate_limit(429, "slow down", headers={"retry-after": "0.5"}))
    agent = OnboardingAgent(
        llm_client=make_client(model_server, retry), config=JourneyConfig(stream=stream)
    )
    conversation_id = uuid.uuid4()

    for text, expected_reply, expected_step in TURNS:
        result = await agent.run(
            AgentContext(
                run_id=uuid.uuid4(),
                conversation_id=conversation_id,
                input_messages=[{"role": "user", "content": text}],
                metadata={},
            )
        )
        assert result.response == expected_reply
        assert result.state.step == expected_step
        assert result.usage.get("total_tokens", 0) > 0

    assert result.state.name == "Ada Lovelace"
    assert result.state.email == "ada@example.com"
    assert result.state.is_complete()
    assert sleeps.calls == [0.5]
    # Each turn: one call that picks a tool, one that answers after the tool ran (+ the 429).
    requests = model_server.requests
    assert len(requests) == 2 * len(TURNS) + 1
    assert all(request.json.get("stream", False) is stream for request in requests)
    _assert_wire_format(requests[-1].json, requests[-2].json)


def _assert_wire_format(last: dict[str, Any], choosing: dict[str, Any]) -> None:
    """The last turn's requests: only the step's tool offered; the result tied to its call."""
    prompt = "Collect the user's email using save_email tool."
    result_text = "Perfect! You're all set, Ada Lovelace!"
    if "system" in choosing:  # Anthropic: system apart, tool_use / tool_result blocks
        assert choosing["system"] == prompt
        assert [tool["name"] for tool in choosing["tools"]] == ["save_email"]
        roles = [message["role"] for message in last["messages"]]
        assert roles[0] == "user" and all(a != b for a, b in itertools.pairwise(roles))
        use = last["messages"][-2]["content"][-1]
        assert use["type"] == "tool_use" and use["input"] == {"email": "ada@example.com"}
        assert last["messages"][-1]["content"] == [
            {"type": "tool_result", "tool_use_id": use["id"], "content": result_text}
        ]
        return
    assert choosing["messages"][0] == {"role": "system", "content": prompt}
    assert [tool["function"]["name"] for tool in choosing["tools"]] == ["save_email"]
    call = last["messages"][-2]["tool_calls"][0]
    assert call["function"] == {"name": "save_email", "arguments": '{"email": "ada@example.com"}'}
    assert last["messages"][-1] == {
        "role": "tool",
        "tool_call_id": call["id"],
        "content": result_text,
    }
