"""Conversations played from code: agent resolution, dates, value comparison."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from agent_runtime_framework.django.host import registry
from agent_runtime_framework.testing.conversations import (
    Conversation,
    ConversationError,
    ConversationMismatch,
    Turn,
    expand_dates,
)
from example_project.journeys.onboarding import OnboardingAgent

NAME_TURN = Turn("I'm Ada Lovelace", tools=[{"save_name": {"name": "Ada Lovelace"}}])


async def test_a_registered_agent_is_played_as_a_copy_with_the_model():
    agent = OnboardingAgent()
    registry.register_runtime(agent, key="onboarding-conversation")
    try:
        run = await Conversation(agent="onboarding-conversation", turns=[NAME_TURN]).play("standin")
    finally:
        registry.unregister_runtime("onboarding-conversation")
    assert run.results[0].step_value == "collect_email"
    assert agent.llm_client is None  # the registered instance is untouched


async def test_an_unknown_key_names_the_registered_ones():
    with pytest.raises(ConversationError, match="'nope' is not registered; registered:"):
        await Conversation(agent="nope", turns=[NAME_TURN]).play()


async def test_a_factory_with_several_agents_needs_a_key():
    conversation = Conversation(agent="example_project.journeys.build_agents", turns=[NAME_TURN])
    with pytest.raises(ConversationError, match="say which with 'key'"):
        await conversation.play()
    conversation.key = "onboarding"
    await conversation.play()


async def test_more_model_calls_than_scripted_is_a_mismatch_with_the_transcript():
    turn = Turn("I'm Ada Lovelace", model=[{"call": "save_name", "args": {"name": "Ada"}}])
    with pytest.raises(ConversationMismatch) as info:
        await Conversation(agent=OnboardingAgent, turns=[turn], name="short").play()
    assert "model: the journey called the model more often than turn 1's script" in str(info.value)


def test_today_placeholders():
    today = dt.date(2026, 3, 1)
    assert expand_dates({"a": ["$today", "on $today+1!", "$today-1"]}, today) == {
        "a": ["2026-03-01", "on 2026-03-02!", "2026-02-28"]
    }


def test_numbers_dates_and_enums_compare_by_their_plain_value():
    from agent_runtime_framework.testing.conversations import _differences

    class Obj:
        amount = Decimal("1200.00")
        when = dt.date(2026, 3, 1)
        items = [{"value": 1.5}]

    assert (
        _differences(
            {"amount": 1200, "when": "2026-03-01", "items": [{"value": 1.5}]}, Obj(), "state"
        )
        == []
    )
    assert _differences({"amount": 1201}, Obj(), "state") == [
        "state.amount: expected 1201, got 1200"
    ]
    assert _differences({"colour": "red"}, Obj(), "state") == [
        "state.colour: expected 'red', there is no such field"
    ]
