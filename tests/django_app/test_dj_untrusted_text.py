"""Hostile text on the real databases: a lone surrogate and NUL from model, user and tools.

On SQLite a stored lone surrogate made every later read of the event stream fail; on
PostgreSQL a NUL failed the turn ("\\u0000 cannot be converted to text"). The suite runs
this file on both (``DATABASE_URL``).
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from agent_runtime_framework import AgentContext, AgentMessage
from agent_runtime_framework.django.models import Journey, JourneyEvent, JourneyMessage
from agent_runtime_framework.django.store.db import run_db
from agent_runtime_framework.django.store.orm import DjangoMemoryManager
from agent_runtime_framework.llm.base import LLMResponse
from agent_runtime_framework.memory.store import StoredMessage
from agent_runtime_framework.testing import ScriptedLLM, tool_call
from agent_runtime_framework.testing.run_context import FakeRunner
from tests.adapter.runtimes import OnboardingAdapter
from tests.journeys import OnboardingAgent

pytestmark = pytest.mark.django_db(transaction=True)


def _rows(cid: uuid.UUID) -> tuple[list[Any], list[Any], list[Any]]:
    messages = list(JourneyMessage.objects.filter(conversation_id=cid).order_by("seq"))
    events = list(JourneyEvent.objects.filter(conversation_id=cid).order_by("id"))
    states = list(Journey.objects.filter(conversation_id=cid).values_list("state", flat=True))
    return messages, events, states


def _streamable(value: Any) -> None:
    """As the event stream writes it: UTF-8 JSON text, no NUL."""
    text = json.dumps(value, ensure_ascii=False)
    text.encode("utf-8")
    assert "\x00" not in text


async def test_hostile_text_from_model_user_and_tool_is_stored_and_streamable() -> None:
    llm = ScriptedLLM(
        [
            tool_call("start"),
            LLMResponse({"role": "assistant", "content": "Your name?\ud800\x00"}, {}),
            tool_call("save_name", raw_arguments='{"name": "Ada\\u0000\\udc00"}'),
            LLMResponse({"role": "assistant", "content": "Thanks \x00Ada\udfff"}, {}),
        ]
    )
    agent = OnboardingAgent(llm_client=llm, memory=DjangoMemoryManager())
    cid = uuid.uuid4()
    first = await agent.run(AgentContext.for_message(cid, "hi\x00 \ud83d"))
    second = await agent.run(AgentContext.for_message(cid, "Ada\x00"))
    assert first.response == "Your name?\ufffd"
    assert second.response == "Thanks Ada\ufffd"
    assert second.state.name == "Ada\ufffd"

    messages, _events, states = await run_db(_rows, cid)
    contents = [m.content for m in messages if m.role in ("user", "assistant") and m.content]
    assert contents == ["hi \ufffd", "Your name?\ufffd", "Ada", "Thanks Ada\ufffd"]
    for m in messages:
        _streamable(m.to_message())
    for state in states:
        _streamable(state)


async def test_events_recorded_from_hostile_tool_calls_read_back_on_both_databases() -> None:
    """The adapter records tool.call/tool.result events: their payloads read back clean."""
    script = ScriptedLLM(
        [
            tool_call("start"),
            "Name?",
            tool_call("save_name", raw_arguments='{"name": "\\u0000Bob\\ud800"}'),
            "Email?\x00",
        ]
    )
    runner = FakeRunner(OnboardingAdapter(llm_client=script))
    await runner.send("hello")
    result = await runner.send("Bob")
    assert result.final_output["response"] == "Email?"
    _messages, events, _states = await run_db(_rows, runner.conversation_id)
    assert {"tool.call", "tool.result"} <= {e.type for e in events}
    calls = [e.payload for e in events if e.type == "tool.call"]
    assert any(p.get("arguments") == {"name": "Bob\ufffd"} for p in calls), calls
    for event in events:
        _streamable(event.payload)


async def test_the_adapter_takes_0_3_0_message_objects_from_the_runner() -> None:
    """django_agent_runtime hands dicts; 0.3.0-era code hands AgentMessage/StoredMessage."""
    adapter = OnboardingAdapter(llm_client=ScriptedLLM([tool_call("start"), "Name?"]))
    runner = FakeRunner(adapter)
    ctx = runner.context("hello")
    ctx.input_messages = [AgentMessage(role="user", content="hello")]
    result = await runner.send("hello", ctx=ctx)
    assert result.final_output["step"] == "collect_name"
    ctx2 = runner.context("Ada")
    ctx2.input_messages = [AgentMessage("assistant", "Name?"), StoredMessage("user", "Ada")]
    adapter.llm_client = ScriptedLLM([tool_call("save_name", name="Ada"), "Email?"])
    second = await runner.send("Ada", ctx=ctx2)
    assert second.final_output["step"] == "collect_email"
