"""The history a turn reads and sends is bounded by default; the stored history is not."""

from __future__ import annotations

import uuid

from agent_runtime_framework import AgentContext, JourneyConfig, MemoryManager
from agent_runtime_framework.memory import ConversationStore, history_window
from agent_runtime_framework.memory.manager import estimate_tokens
from agent_runtime_framework.testing import ScriptedLLM
from tests.journeys import OnboardingAgent


async def test_the_model_gets_the_newest_history_that_fits_the_token_budget() -> None:
    llm = ScriptedLLM(["ok"] * 40)
    agent = OnboardingAgent(llm_client=llm, config=JourneyConfig(history_token_budget=1000))
    cid = uuid.uuid4()
    for i in range(40):
        await agent.run(AgentContext.for_message(cid, f"message {i} " + "x" * 400))
    sent = llm.calls[-1].messages[1:]  # without the system prompt
    assert sent[-1]["content"].startswith("message 39 ")  # this turn's input is always sent
    assert sent[0]["role"] == "user"  # the window starts at a user message
    assert sum(estimate_tokens(m) for m in sent) <= 1000
    assert len(sent) < 20  # of 80 stored
    stored = await agent.memory.conversation_store.get_messages(cid)
    assert len(stored) == 80  # nothing is lost from the store


async def test_a_turn_reads_at_most_max_history_messages_by_default() -> None:
    class Counting(ConversationStore):
        read: list[int | None] = []

        def get_messages_now(self, conversation_id, limit=None):  # type: ignore[no-untyped-def]
            self.read.append(limit)
            return super().get_messages_now(conversation_id, limit)

    store = Counting()
    memory = MemoryManager(conversation_store=store)
    assert memory.max_history_messages == 200
    cid = uuid.uuid4()
    await memory.save_messages(cid, [{"role": "user", "content": str(i)} for i in range(500)])
    agent = OnboardingAgent(llm_client=ScriptedLLM(["ok"]), memory=memory)
    await agent.run(AgentContext.for_message(cid, "again"))
    assert Counting.read == [200]  # the turn read the newest 200 messages, not 500
    assert len(await store.get_messages(cid)) == 502


def test_the_window_never_starts_with_a_tool_result() -> None:
    call = {"id": "a", "type": "function", "function": {"name": "t", "arguments": "{}"}}
    history = []
    for _ in range(30):
        history += [
            {"role": "user", "content": "u" * 200},
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "a", "content": "r" * 200},
            {"role": "assistant", "content": "a" * 200},
        ]
    for budget in range(50, 2000, 37):
        window = history_window(history, max_tokens=budget)
        assert not window or window[0]["role"] == "user"
        assert sum(estimate_tokens(m) for m in window) <= budget
    assert history_window(history[:4], max_tokens=10_000) == history[:4]
    assert history_window(history, max_tokens=None, max_messages=None) == history
