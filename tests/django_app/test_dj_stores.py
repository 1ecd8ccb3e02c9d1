"""ORM stores and DjangoMemoryManager: persistence rules, leases, concurrent turns."""

from __future__ import annotations

import asyncio
import contextvars
import threading
import uuid
from dataclasses import dataclass
from enum import Enum
from typing import Any

import pytest

from agent_runtime_framework import (
    AgentContext,
    AgentMessage,
    BaseJourneyState,
    BaseJourneyTools,
    JourneyAgent,
    ToolSchema,
    ToolSchemaBuilder,
)
from agent_runtime_framework.django.models import (
    Conversation,
    Journey,
    JourneyMessage,
    JourneyStatus,
)
from agent_runtime_framework.django.store.db import run_db
from agent_runtime_framework.django.store.orm import (
    DjangoConversationStore,
    DjangoMemoryManager,
    DjangoStateStore,
    LeaseLost,
)
from agent_runtime_framework.memory import CommitInfo, JourneyBusy, StoredMessage
from agent_runtime_framework.state import StateError
from agent_runtime_framework.testing import JourneyDriver, ScriptedLLM
from tests.journeys import OnboardingAgent, OnboardingState, OnboardingStep

pytestmark = pytest.mark.django_db(transaction=True)


def _messages(cid: Any) -> list[JourneyMessage]:
    return list(JourneyMessage.objects.filter(conversation_id=cid).order_by("seq"))


async def test_onboarding_journey_persists_state_messages_and_counters() -> None:
    llm = (
        ScriptedLLM()
        .call("start")
        .reply("Hi! What's your name?")
        .call("save_name", name="Ada")
        .reply("And your email?")
        .call("save_email", email="ada@example.com")
        .reply("All set!")
    )
    agent = OnboardingAgent(llm_client=llm, memory=DjangoMemoryManager())
    driver = JourneyDriver(agent)
    await driver.say("hello")
    await driver.say("I am Ada")
    await driver.say("ada@example.com")

    cid = driver.conversation_id
    journey = await run_db(Journey.objects.get, conversation_id=cid, agent_key="onboarding-agent")
    assert journey.state["name"] == "Ada"
    assert journey.state["email"] == "ada@example.com"
    assert journey.step == "complete"
    assert journey.status == JourneyStatus.COMPLETE
    assert journey.completed_at is not None
    assert journey.turns == 3
    assert journey.total_tokens == 6 * 15  # two LLM calls per turn

    rows = await run_db(_messages, cid)
    assert [r.seq for r in rows] == list(range(len(rows)))
    assert [r.role for r in rows[:4]] == ["user", "assistant", "tool", "assistant"]
    assert rows[1].tool_calls[0]["function"]["name"] == "start"
    conversation = await run_db(Conversation.objects.get, id=cid)
    assert conversation.next_seq == len(rows)
    assert conversation.lease_token == ""  # released after each turn

    # A fresh manager (another worker) continues from the database.
    history = await agent.memory.conversation_store.get_messages(cid)
    assert history == [r.to_message() for r in rows]
    loaded = await DjangoMemoryManager().load_context(cid, "onboarding-agent")
    assert loaded.state == journey.state
    assert len(loaded.messages) == len(rows)


async def test_get_messages_limit_returns_the_last_messages_in_order() -> None:
    store = DjangoConversationStore()
    cid = uuid.uuid4()
    await store.append_messages(cid, [{"role": "user", "content": f"m{i}"} for i in range(5)])
    await store.append_messages(cid, [{"role": "assistant", "content": "m5"}])
    last = await store.get_messages(cid, 3)
    assert [m["content"] for m in last] == ["m3", "m4", "m5"]
    assert len(await store.get_messages(cid)) == 6
    assert await store.count(cid) == 6
    assert await store.get_messages(uuid.uuid4()) == []
    with pytest.raises(ValueError, match="limit"):
        await store.get_messages(cid, -1)


async def test_save_messages_appends_every_message_given() -> None:
    """0.3.0's meaning on the ORM store too: two new messages after two stored are four."""
    store = DjangoConversationStore()
    cid = uuid.uuid4()
    first = [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]
    await store.save_messages(cid, first)
    await store.save_messages(
        cid, [AgentMessage(role="user", content="c"), StoredMessage("assistant", "d")]
    )
    assert [m["content"] for m in await store.get_messages(cid)] == ["a", "b", "c", "d"]
    await store.clear(cid)
    assert await store.get_messages(cid) == []


async def test_message_fields_round_trip() -> None:
    store = DjangoConversationStore()
    cid = uuid.uuid4()
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    messages = [
        {"role": "user", "content": "x"},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "c1", "content": "ok"},
        {"role": "tool", "tool_call_id": "c2", "name": "g", "content": "ok"},
    ]
    await store.append_messages(cid, messages)
    assert await store.get_messages(cid) == messages
    with pytest.raises(ValueError, match="role"):
        await store.append_messages(cid, [{"content": "no role"}])


async def test_bad_conversation_id_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="must be a UUID"):
        await DjangoConversationStore().get_messages("not-a-uuid")


async def test_exception_after_state_changing_tool_keeps_state_and_messages() -> None:
    llm = ScriptedLLM().call("start").fail(ConnectionError("model unreachable"))
    agent = OnboardingAgent(llm_client=llm, memory=DjangoMemoryManager())
    cid = uuid.uuid4()
    with pytest.raises(ConnectionError):
        await agent.run(AgentContext.for_message(cid, "hello"))

    journey = await run_db(Journey.objects.get, conversation_id=cid)
    assert journey.step == "collect_name"
    assert journey.state["step"] == "collect_name"
    rows = await run_db(_messages, cid)
    assert [r.role for r in rows] == ["user", "assistant", "tool"]
    assert rows[0].content == "hello"
    conversation = await run_db(Conversation.objects.get, id=cid)
    assert conversation.lease_token == ""  # the claim is released on failure too

    # The next turn continues at collect_name.
    agent.llm_client = ScriptedLLM().call("save_name", name="Bo").reply("Email?")
    result = await agent.run(AgentContext.for_message(cid, "Bo"))
    assert result.step == OnboardingStep.COLLECT_EMAIL


class _BytesTools(BaseJourneyTools[OnboardingState]):
    async def start(self) -> str:
        self.state.step = OnboardingStep.COLLECT_NAME
        self.state.name = b"not json"  # type: ignore[assignment]
        return "ok"


class _BrokenStateAgent(OnboardingAgent):
    def create_tools(self, state: OnboardingState, ctx: AgentContext) -> Any:
        return _BytesTools(state=state)

    async def execute_tool(self, tools: Any, name: str, arguments: dict[str, Any]) -> Any:
        return await getattr(tools, name)(**arguments)


async def test_state_that_is_not_json_fails_before_the_database() -> None:
    agent = _BrokenStateAgent(llm_client=ScriptedLLM().call("start"), memory=DjangoMemoryManager())
    cid = uuid.uuid4()
    with pytest.raises(StateError, match="JSON"):
        await agent.run(AgentContext.for_message(cid, "hi"))
    # The broken state never reached the table (the journey row, made when the user's
    # message was stored before the model call, holds no state yet); what the user said did.
    states = await run_db(
        lambda: list(Journey.objects.filter(conversation_id=cid).values_list("state", flat=True))
    )
    assert states in ([], [{}])
    assert [r.content for r in await run_db(_messages, cid)] == ["hi"]
    manager = DjangoMemoryManager()
    with pytest.raises(StateError):
        await manager.commit(cid, "x", state={"when": {1, 2}})  # type: ignore[dict-item]
    with pytest.raises(StateError, match="round-trip"):
        await manager.commit(cid, "x", state={"pair": (1, 2)})


def _elsewhere(coro: Any) -> asyncio.Task[Any]:
    """Run ``coro`` as another turn would: a task with a fresh context (no held leases)."""
    return asyncio.create_task(coro, context=contextvars.Context())


async def test_second_claim_waits_then_gets_journey_busy() -> None:
    manager = DjangoMemoryManager(busy_wait=0.2)
    other = DjangoMemoryManager(busy_wait=0.2)
    cid = uuid.uuid4()

    async def other_turn() -> None:
        async with other.claim(cid, "k"):
            pass

    async with manager.claim(cid, "k"):
        with pytest.raises(JourneyBusy) as info:
            await _elsewhere(other_turn())
        assert info.value.retry_after >= 1
        # Re-entrant within the same task (a router delegating to its journey).
        async with manager.claim(cid, "k"):
            await manager.commit(cid, "k", messages=[{"role": "user", "content": "x"}])
        # A commit outside any claim is refused while the conversation is held.
        with pytest.raises(JourneyBusy):
            await _elsewhere(other.commit(cid, "k", messages=[{"role": "user", "content": "y"}]))
    await _elsewhere(other_turn())
    assert [m["content"] for m in await manager.conversation_store.get_messages(cid)] == ["x"]


async def test_final_commit_releases_the_lease_only_in_the_outermost_claim() -> None:
    manager = DjangoMemoryManager()
    cid = uuid.uuid4()

    async def token() -> str:
        return await run_db(lambda: Conversation.objects.get(id=cid).lease_token)

    async with manager.claim(cid, "router"):
        async with manager.claim(cid, "journey"):  # nested: a journey behind a router
            await manager.commit(cid, "journey", state={"s": 1}, info=CommitInfo(final=True))
            assert await token() != ""  # still held for the router
        await manager.commit(cid, "router", state={"r": 1})
        await manager.commit(cid, "router", info=CommitInfo(final=True))
        assert await token() == ""  # released with the outermost final commit
        # After the release a commit is an ordinary unclaimed one.
        await manager.commit(cid, "router", messages=[{"role": "assistant", "content": "x"}])
    assert await token() == ""
    assert await manager.conversation_store.count(cid) == 1


async def test_waiting_turn_gets_the_conversation_when_released() -> None:
    cid = uuid.uuid4()
    first, second = DjangoMemoryManager(busy_wait=5), DjangoMemoryManager(busy_wait=5)
    order: list[str] = []

    async def hold() -> None:
        async with first.claim(cid, "k"):
            order.append("first in")
            await asyncio.sleep(0.3)
            order.append("first out")

    async def wait() -> None:
        await asyncio.sleep(0.05)
        async with second.claim(cid, "k"):
            order.append("second in")

    await asyncio.gather(_elsewhere(hold()), _elsewhere(wait()))
    assert order == ["first in", "first out", "second in"]


async def test_expired_lease_is_taken_over_and_the_old_commit_fails_loudly() -> None:
    cid = uuid.uuid4()
    crashed = DjangoMemoryManager(lease_seconds=0.2, busy_wait=0)
    rescuer = DjangoMemoryManager(busy_wait=2)
    entered = asyncio.Event()
    release = asyncio.Event()

    async def stale_turn() -> None:
        async with crashed.claim(cid, "k"):
            crashed_heartbeat_stop()
            entered.set()
            await release.wait()
            with pytest.raises(LeaseLost):
                await crashed.commit(cid, "k", state={"v": "stale"})

    def crashed_heartbeat_stop() -> None:
        # Simulate a frozen worker: no heartbeat renews the lease.
        from agent_runtime_framework.django.store.orm import _held

        heartbeat = (_held.get() or {})[cid].heartbeat
        assert heartbeat is not None
        heartbeat.cancel()

    task = _elsewhere(stale_turn())
    await entered.wait()

    async def rescue() -> None:
        async with rescuer.claim(cid, "k"):  # waits for the expiry, then takes over
            await rescuer.commit(cid, "k", state={"v": "fresh"})
            release.set()
            await task

    await _elsewhere(rescue())
    assert (await DjangoStateStore().load(cid, "k")) == {"v": "fresh"}


async def test_heartbeat_keeps_a_long_turn_alive() -> None:
    cid = uuid.uuid4()
    manager = DjangoMemoryManager(lease_seconds=0.3, busy_wait=0)
    async with manager.claim(cid, "k"):
        await asyncio.sleep(0.7)  # > 2 lease lengths; the heartbeat renews

        async def intruder() -> None:
            async with DjangoMemoryManager(busy_wait=0).claim(cid, "k"):
                pass

        with pytest.raises(JourneyBusy):
            await _elsewhere(intruder())
        await manager.commit(cid, "k", state={"ok": True})


async def test_commit_writes_state_messages_and_counters_together() -> None:
    manager = DjangoMemoryManager()
    cid = uuid.uuid4()
    await manager.ensure_conversation(cid, "k", session_key="sess")
    await manager.commit(
        cid,
        "k",
        state={"step": "a", "_version": 2},
        messages=[{"role": "user", "content": "1"}],
        info=CommitInfo(step="a", new_turn=True, tokens=7),
    )
    await manager.commit(
        cid,
        "k",
        state={"step": "b"},
        messages=[{"role": "assistant", "content": "2"}],
        info=CommitInfo(step="b", complete=True, tokens=3),
    )
    journey = await run_db(Journey.objects.get, conversation_id=cid, agent_key="k")
    assert (journey.step, journey.status, journey.turns, journey.total_tokens) == (
        "b",
        JourneyStatus.COMPLETE,
        1,
        10,
    )
    assert journey.session_key == "sess"
    assert journey.completed_at is not None
    assert (await run_db(Conversation.objects.get, id=cid)).next_seq == 2


@dataclass
class _CounterState(BaseJourneyState["_CounterStep"]):
    step: _CounterStep = None  # type: ignore[assignment]
    count: int = 0

    def __post_init__(self) -> None:
        if self.step is None:
            self.step = _CounterStep.COUNTING

    def to_dict(self) -> dict[str, Any]:
        return {"step": self.step.value, "count": self.count}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> _CounterState:
        return cls(step=_CounterStep(data["step"]), count=data["count"])


class _CounterStep(str, Enum):
    COUNTING = "counting"


class _CounterTools(BaseJourneyTools[_CounterState]):
    async def increment(self) -> str:
        self.state.count += 1
        await asyncio.sleep(0.01)  # widen the race window
        return str(self.state.count)


class _CounterAgent(JourneyAgent[_CounterState, _CounterTools, _CounterStep]):
    @property
    def key(self) -> str:
        return "counter"

    def get_initial_state(self) -> _CounterState:
        return _CounterState()

    def get_system_prompt(self, state: _CounterState) -> str:
        return "Count."

    def get_tool_schemas(self, state: _CounterState) -> list[ToolSchema]:
        return [ToolSchemaBuilder("increment").description("Add one").build()]

    def create_tools(self, state: _CounterState, ctx: AgentContext) -> _CounterTools:
        return _CounterTools(state=state)


def test_concurrent_turns_on_one_conversation_lose_no_update() -> None:
    """Threads with their own event loops and connections: every increment survives."""
    cid = uuid.uuid4()
    workers, turns = 4, 5
    errors: list[BaseException] = []

    def worker() -> None:
        async def play() -> None:
            llm = ScriptedLLM()
            for _ in range(turns):
                llm.call("increment").reply("done")
            agent = _CounterAgent(llm_client=llm, memory=DjangoMemoryManager(busy_wait=60))
            for _ in range(turns):
                await agent.run(AgentContext.for_message(cid, "+1"))

        try:
            asyncio.run(play())
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    journey = Journey.objects.get(conversation_id=cid, agent_key="counter")
    assert journey.state["count"] == workers * turns
    assert journey.turns == workers * turns
    rows = _messages(cid)
    assert len(rows) == workers * turns * 4  # user, call, result, reply
    assert [r.seq for r in rows] == list(range(len(rows)))
    assert Conversation.objects.get(id=cid).lease_token == ""


async def test_a_turn_failing_at_the_model_keeps_the_message_and_the_next_starts_clean() -> None:
    """The user's message is stored before the model call; the journey row made then holds
    no state, and the next turn starts from the initial state (not from ``{}``)."""

    class StrictState(OnboardingState):
        @classmethod
        def from_dict(cls, data: dict) -> OnboardingState:  # type: ignore[override]
            return OnboardingState(step=OnboardingStep(data["step"]), name=data["name"])

    class StrictAgent(OnboardingAgent):
        def get_initial_state(self) -> OnboardingState:
            return StrictState()

    llm = ScriptedLLM().fail(ConnectionError("provider down")).call("start").reply("Name?")
    agent = StrictAgent(llm_client=llm, memory=DjangoMemoryManager())
    cid = uuid.uuid4()
    with pytest.raises(ConnectionError):
        await agent.run(AgentContext.for_message(cid, "hello"))
    assert [r.content for r in await run_db(_messages, cid)] == ["hello"]
    result = await agent.run(AgentContext.for_message(cid, "hello again"))
    assert result.response == "Name?" and result.state.step == OnboardingStep.COLLECT_NAME
    assert [r.content for r in await run_db(_messages, cid) if r.role == "user"] == [
        "hello",
        "hello again",
    ]
