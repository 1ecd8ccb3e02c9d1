"""The event bus: table rows, signals, emit forwarding, payload bounds, recorder hooks."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from enum import Enum
from typing import Any

import pytest

from agent_runtime_framework import AgentContext
from agent_runtime_framework.django.models import JourneyEvent
from agent_runtime_framework.django.signals import (
    journey_completed,
    journey_event,
    journey_step_changed,
)
from agent_runtime_framework.django.store.db import run_db
from agent_runtime_framework.django.store.events import (
    EventRecorderHooks,
    JourneyEventLog,
    json_safe,
    record_event,
    record_events,
    terminal_steps_of,
)
from agent_runtime_framework.django.store.orm import DjangoMemoryManager
from agent_runtime_framework.testing import ScriptedLLM
from tests.journeys import OnboardingAgent

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def received() -> Iterator[list[tuple[str, dict[str, Any]]]]:
    """Everything the three signals deliver, as (signal name, kwargs)."""
    got: list[tuple[str, dict[str, Any]]] = []

    def on_event(sender: Any, **kw: Any) -> None:
        got.append(("event", kw))

    def on_step(sender: Any, **kw: Any) -> None:
        got.append(("step", kw))

    def on_done(sender: Any, **kw: Any) -> None:
        got.append(("completed", kw))

    journey_event.connect(on_event, weak=False)
    journey_step_changed.connect(on_step, weak=False)
    journey_completed.connect(on_done, weak=False)
    yield got
    journey_event.disconnect(on_event)
    journey_step_changed.disconnect(on_step)
    journey_completed.disconnect(on_done)


def _events(cid: Any) -> list[JourneyEvent]:
    return list(JourneyEvent.objects.filter(conversation_id=cid).order_by("id"))


async def test_recorder_hooks_turn_a_journey_into_events(received: list[Any]) -> None:
    cid = uuid.uuid4()
    agent = OnboardingAgent(
        llm_client=ScriptedLLM()
        .call("start")
        .reply("Name?")
        .call("nope")
        .call("save_name", name="Ada")
        .reply("Email?")
        .call("save_email", email="a@b.c")
        .reply("Done!"),
        memory=DjangoMemoryManager(),
    )
    emitted: list[tuple[str, dict[str, Any]]] = []

    async def emit(event_type: str, payload: dict[str, Any]) -> None:
        emitted.append((event_type, payload))

    for text in ("hi", "Ada", "a@b.c"):
        log = JourneyEventLog(uuid.uuid4(), cid, agent.key, emit=emit)
        await agent.run(
            AgentContext.for_message(cid, text), hooks=EventRecorderHooks(log, agent=agent)
        )

    rows = await run_db(_events, cid)
    types = [r.type for r in rows]
    assert types == [
        "tool.call",
        "tool.result",
        "journey.step_changed",
        "assistant.message",
        "tool.result",  # the rejected call
        "tool.call",
        "tool.result",
        "journey.step_changed",
        "assistant.message",
        "tool.call",
        "tool.result",
        "journey.step_changed",
        "journey.completed",
        "assistant.message",
    ]
    assert rows[4].payload["status"] == "rejected"
    assert "not available" in rows[4].payload["result"]
    assert rows[2].payload == {"from": "welcome", "to": "collect_name"}
    assert rows[12].payload == {"step": "complete"}
    assert rows[3].payload["content"] == "Name?"
    # seq numbers each run from 0
    assert [r.seq for r in rows if r.run_id == rows[0].run_id] == [0, 1, 2, 3]
    assert [t for t, _ in emitted] == types

    steps = [kw for name, kw in received if name == "step"]
    assert [(s["old_step"], s["new_step"]) for s in steps] == [
        ("welcome", "collect_name"),
        ("collect_name", "collect_email"),
        ("collect_email", "complete"),
    ]
    assert steps[0]["conversation_id"] == cid
    assert steps[0]["agent_key"] == "onboarding-agent"
    done = [kw for name, kw in received if name == "completed"]
    assert len(done) == 1 and done[0]["step"] == "complete"
    assert len([1 for name, _ in received if name == "event"]) == len(rows)


async def test_tool_error_and_run_error_are_events() -> None:
    cid = uuid.uuid4()

    class Failing(OnboardingAgent):
        async def execute_tool(self, tools: Any, name: str, arguments: dict[str, Any]) -> Any:
            raise RuntimeError("backend down")

    agent = Failing(
        llm_client=ScriptedLLM().call("start").fail(TimeoutError("llm slow")),
        memory=DjangoMemoryManager(),
    )
    log = JourneyEventLog(None, cid, agent.key)
    with pytest.raises(TimeoutError):
        await agent.run(AgentContext.for_message(cid, "hi"), hooks=EventRecorderHooks(log))
    rows = await run_db(_events, cid)
    assert [r.type for r in rows] == ["tool.call", "tool.result", "error"]
    assert rows[1].payload["status"] == "error"
    assert rows[1].payload["error"] == "backend down"
    assert rows[2].payload == {"message": "llm slow", "type": "TimeoutError"}


async def test_deltas_are_signalled_and_emitted_but_not_stored(received: list[Any]) -> None:
    cid = uuid.uuid4()
    emitted: list[str] = []

    async def emit(event_type: str, payload: dict[str, Any]) -> None:
        emitted.append(event_type)

    log = JourneyEventLog(None, cid, "k", emit=emit)
    await log.record("assistant.delta", {"delta": "He"})
    await log.record("assistant.message", {"content": "Hello"})
    rows = await run_db(_events, cid)
    assert [(r.type, r.seq) for r in rows] == [("assistant.message", 0)]
    assert emitted == ["assistant.delta", "assistant.message"]
    assert [kw["type"] for name, kw in received if name == "event"] == [
        "assistant.delta",
        "assistant.message",
    ]


def test_record_event_sync_numbers_after_the_runs_last_event() -> None:
    run = uuid.uuid4()
    cid = uuid.uuid4()
    first = record_event(run, "run.started", {"a": 1}, conversation_id=cid, agent_key="k")
    more = record_events(
        run, [("progress.update", {"p": 0.5}), ("run.succeeded", None)], conversation_id=cid
    )
    assert [first.seq, *(e.seq for e in more)] == [0, 1, 2]
    assert JourneyEvent.objects.filter(run_id=run).count() == 3
    with pytest.raises(ValueError, match="event_type"):
        record_event(run, "", {})


def test_payloads_are_json_safe_and_bounded() -> None:
    class Color(Enum):
        RED = "red"

    big = "x" * 50
    payload = json_safe(
        {
            "c": Color.RED,
            1: {"s": {3}},
            "u": uuid.UUID(int=1),
            "big": big,
            "b": b"\x00",
            "nan": float("nan"),
        },
        max_chars=10,
    )
    assert payload["c"] == "red"
    assert payload["1"] == {"s": [3]}
    assert payload["u"] == str(uuid.UUID(int=1))
    assert payload["big"] == "x" * 10 + "…[truncated 40 chars]"
    assert payload["nan"] is None
    row = record_event(uuid.uuid4(), "tool.result", {"result": object()})
    assert row.payload["result"].startswith("<object object")


def test_terminal_steps_come_from_the_agent() -> None:
    assert terminal_steps_of(OnboardingAgent()) == frozenset({"complete"})


def test_a_failing_receiver_does_not_break_recording(caplog: pytest.LogCaptureFixture) -> None:
    def broken(sender: Any, **kw: Any) -> None:
        raise RuntimeError("receiver bug")

    journey_event.connect(broken, weak=False)
    try:
        row = record_event(uuid.uuid4(), "run.started")
    finally:
        journey_event.disconnect(broken)
    assert row.pk is not None
    assert "receiver bug" in caplog.text
