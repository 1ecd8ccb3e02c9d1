"""The management commands: journey_chat (a real conversation) and journey_graph (Mermaid)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from enum import Enum
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from agent_runtime_framework.agents.routed import RoutedJourneyAgent
from agent_runtime_framework.django.host.registry import register_runtime, unregister_runtime
from agent_runtime_framework.django.models import Journey, JourneyMessage
from agent_runtime_framework.router import IntentRouter, RouteDefinition
from agent_runtime_framework.testing import ScriptedLLM
from tests.journeys import OnboardingAgent

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def onboarding() -> Iterator[OnboardingAgent]:
    agent = OnboardingAgent()
    register_runtime(agent)
    yield agent
    unregister_runtime(agent.key)


def _chat(*args: str, text: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("journey_chat", *args, stdin=StringIO(text), stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_journey_chat_plays_turns_and_shows_the_step(onboarding: OnboardingAgent) -> None:
    onboarding.llm_client = (
        ScriptedLLM()
        .call("start")
        .reply("Hi! What's your name?")
        .call("save_name", name="Ada")
        .reply("Thanks Ada, your email?")
    )
    out, err = _chat("onboarding-agent", text="hello\nI am Ada\n/quit\n")
    assert err == ""
    assert "onboarding-agent> Hi! What's your name?" in out
    assert "[step 2 of 4: collect_name]" in out
    assert "[step 3 of 4: collect_email]" in out
    journey = Journey.objects.get(agent_key="onboarding-agent")
    assert journey.state["name"] == "Ada"
    assert f"Conversation: {journey.conversation_id}" in out

    # Resume the same conversation: history first, then the next turn.
    onboarding.llm_client = ScriptedLLM().call("save_email", email="ada@x.org").reply("Done!")
    out, _ = _chat(
        "onboarding-agent", "--conversation", str(journey.conversation_id), text="ada@x.org\n"
    )
    assert "Resuming onboarding-agent at step collect_email." in out
    assert "you: I am Ada" in out
    assert "[step 4 of 4: complete - journey complete]" in out
    assert JourneyMessage.objects.filter(conversation_id=journey.conversation_id).count() == 12


def test_journey_chat_says_when_the_offline_standin_answers(
    onboarding: OnboardingAgent, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "AGENT_RUNTIME_LLM"):
        monkeypatch.delenv(name, raising=False)
    out, _ = _chat("onboarding-agent", text="hello\n")
    assert "offline stand-in" in out and "not an AI" in out
    assert "[step 2 of 4: collect_name]" in out


def test_journey_chat_reports_errors_and_bad_input(onboarding: OnboardingAgent) -> None:
    onboarding.llm_client = ScriptedLLM().fail(ConnectionError("model down"))
    _, err = _chat("onboarding-agent", text="hello\n")
    assert "error: ConnectionError: model down" in err
    with pytest.raises(CommandError, match="No agent registered with key 'nope'"):
        _chat("nope", text="")
    with pytest.raises(CommandError, match="must be a UUID"):
        _chat("onboarding-agent", "--conversation", "xyz", text="")
    with pytest.raises(CommandError, match="No conversation"):
        _chat("onboarding-agent", "--conversation", str(uuid.uuid4()), text="")


def test_journey_graph_prints_mermaid(onboarding: OnboardingAgent) -> None:
    out = StringIO()
    call_command("journey_graph", "onboarding-agent", stdout=out)
    text = out.getvalue()
    lines = text.splitlines()
    assert lines[0] == "flowchart TD"
    assert 'welcome["welcome<br/><small>tools: start()</small>"]' in text
    assert "tools: save_name(name)" in text
    assert 'complete(["complete"]):::terminal' in text
    assert "welcome -->|start| collect_name" in text
    assert "collect_name -->|save_name| collect_email" in text
    assert "collect_email -->|save_email| complete" in text
    # steps appear in enum order
    order = [
        text.index(f'{s}["') if f'{s}["' in text else text.index(f"{s}([")
        for s in ("welcome", "collect_name", "collect_email", "complete")
    ]
    assert order == sorted(order)


def test_journey_graph_of_a_router_and_unknown_keys() -> None:
    class Route(str, Enum):
        ONBOARD = "onboard"

    router = IntentRouter[Route]()
    router.add_route(RouteDefinition(journey=Route.ONBOARD, name="onboard", description="x"))
    front = RoutedJourneyAgent(router, {Route.ONBOARD: OnboardingAgent()}, key="front-desk")
    register_runtime(front)
    try:
        out = StringIO()
        call_command("journey_graph", "front-desk", "--direction", "LR", stdout=out)
    finally:
        unregister_runtime("front-desk")
    text = out.getvalue()
    assert text.startswith("flowchart LR")
    assert 'subgraph sg_onboarding_agent["onboarding-agent"]' in text
    assert "router_front_desk -->|onboard| onboarding_agent__welcome" in text
    with pytest.raises(CommandError, match="No agent registered"):
        call_command("journey_graph", "missing", stdout=StringIO())
