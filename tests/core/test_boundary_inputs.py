"""What real callers and real models send, at the core's boundary.

0.3.0 callers pass ``AgentMessage`` objects and 0.3.0's ``StoredMessage``; models emit lone
surrogates, NUL bytes and tool calls without a usable name. Each case here crashed a run
or lost data before the messages boundary (``agent_runtime_framework.messages``) existed.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from agent_runtime_framework import (
    AgentContext,
    AgentMessage,
    LLMExecutor,
    MemoryManager,
    ToolSchemaBuilder,
)
from agent_runtime_framework.llm.base import LLMResponse
from agent_runtime_framework.memory.store import StoredMessage
from agent_runtime_framework.messages import as_message, clean_json, clean_text
from agent_runtime_framework.testing import ScriptedLLM
from agent_runtime_framework.tools import CallableToolExecutor
from tests.journeys import OnboardingAgent, OnboardingStep


def _utf8(value: Any) -> bytes:
    """What a database or an SSE stream does to the value: UTF-8 JSON (raises if it can't)."""
    return json.dumps(value, ensure_ascii=False).encode("utf-8")


# -- 0.3.0's message types go in wherever messages go in ----------------------------------
@pytest.mark.parametrize(
    "message",
    [
        AgentMessage(role="user", content="Hi"),
        StoredMessage("user", "Hi"),
        {"role": "user", "content": "Hi"},
    ],
    ids=["AgentMessage", "StoredMessage", "dict"],
)
async def test_a_run_accepts_every_message_type(message: Any) -> None:
    llm = ScriptedLLM().call("start").reply("What is your name?")
    agent = OnboardingAgent(llm_client=llm)
    ctx = AgentContext(run_id=uuid.uuid4(), conversation_id=uuid.uuid4(), input_messages=[message])
    result = await agent.run(ctx)
    assert result.response == "What is your name?"
    assert result.state.step == OnboardingStep.COLLECT_NAME
    assert llm.calls[0].messages[-1] == {"role": "user", "content": "Hi"}
    assert ctx.get_user_message() == "Hi"


async def test_history_prepended_as_agent_messages_is_not_stored_twice() -> None:
    """A host that prepends earlier messages (as AgentMessage) adds only the new one."""
    memory = MemoryManager()
    agent = OnboardingAgent(llm_client=ScriptedLLM(["Hello!", "Again!"]), memory=memory)
    cid = uuid.uuid4()
    await agent.run(AgentContext(None, cid, [AgentMessage(role="user", content="one")]))
    earlier = [AgentMessage(role="user", content="one"), AgentMessage("assistant", "Hello!")]
    await agent.run(AgentContext(None, cid, [*earlier, AgentMessage("user", "two")]))
    history = await memory.conversation_store.get_messages(cid)
    assert [(m.role, m.content) for m in history] == [
        ("user", "one"),
        ("assistant", "Hello!"),
        ("user", "two"),
        ("assistant", "Again!"),
    ]


async def test_save_messages_appends_every_message_and_drops_none() -> None:
    manager = MemoryManager()
    cid = uuid.uuid4()
    await manager.save_messages(
        cid, [{"role": "user", "content": "a"}, StoredMessage("assistant", "b")]
    )
    await manager.save_messages(
        cid, [AgentMessage("user", "c"), {"role": "assistant", "content": "d"}]
    )
    context = await manager.load_context(cid, "agent")
    assert [m.content for m in context.messages] == ["a", "b", "c", "d"]
    assert context.get_message_dicts()[0] == {"role": "user", "content": "a"}


def test_a_message_without_a_role_is_a_clear_error() -> None:
    with pytest.raises(TypeError, match="role"):
        as_message({"content": "no role"})
    with pytest.raises(TypeError, match="AgentMessage"):
        as_message(42)


# -- untrusted text -------------------------------------------------------------------------
def test_clean_text_replaces_lone_surrogates_and_removes_nul() -> None:
    assert clean_text("a\ud800b\x00c") == "a\ufffdbc"
    assert clean_text("caf\u00e9 \U0001f600") == "caf\u00e9 \U0001f600"  # valid text untouched
    clean = "plain ascii"
    assert clean_text(clean) is clean
    assert clean_json({"k\x00": ["\udfff", 1, None]}) == {"k": ["\ufffd", 1, None]}


async def test_a_reply_with_a_lone_surrogate_and_a_nul_reaches_the_user_storable() -> None:
    memory = MemoryManager()
    llm = ScriptedLLM([LLMResponse({"role": "assistant", "content": "Hi \ud800 there\x00!"})])
    agent = OnboardingAgent(llm_client=llm, memory=memory)
    cid = uuid.uuid4()
    result = await agent.run(AgentContext.for_message(cid, "hello \udc00\x00"))
    assert result.response == "Hi \ufffd there!"
    history = await memory.conversation_store.get_messages(cid)
    assert [m["content"] for m in history] == ["hello \ufffd", "Hi \ufffd there!"]
    _utf8(list(history))


async def test_tool_arguments_with_escaped_nul_and_surrogate_are_cleaned_before_the_tool() -> None:
    seen: list[str] = []

    async def note(text: str) -> str:
        seen.append(text)
        return f"noted {text}\x00"

    schema = ToolSchemaBuilder("note").param("text", "string", required=True).build()
    llm = ScriptedLLM().call("note", raw_arguments='{"text": "a\\u0000b\\ud800"}').reply("ok")
    result = await LLMExecutor(llm, CallableToolExecutor({"note": note})).run(
        [{"role": "user", "content": "x"}], tools=[schema]
    )
    assert seen == ["ab\ufffd"]
    assert result.tool_calls[0].arguments == {"text": "ab\ufffd"}
    assert result.tool_calls[0].result == "noted ab\ufffd"
    _utf8(result.messages)


# -- malformed tool calls -------------------------------------------------------------------
class _Raw:
    """A client answering with raw message dicts, as a misbehaving provider might."""

    def __init__(self, *messages: dict[str, Any]) -> None:
        self.messages = list(messages)
        self.requests: list[list[dict[str, Any]]] = []

    async def generate(self, messages: list[dict[str, Any]], tools: Any = None, **kw: Any) -> Any:
        self.requests.append(json.loads(json.dumps(messages)))
        return LLMResponse(self.messages.pop(0), {})


def _calls(*calls: dict[str, Any]) -> dict[str, Any]:
    return {"role": "assistant", "content": None, "tool_calls": list(calls)}


@pytest.mark.parametrize(
    "call",
    [
        {"id": "c1", "type": "function", "function": {"name": "", "arguments": "{}"}},
        {"id": "c1", "type": "function", "function": {"arguments": "{}"}},
        {"id": "c1", "type": "function", "function": {"name": None, "arguments": "{}"}},
        {"id": "c1", "type": "function", "function": {"name": "save name", "arguments": "{}"}},
        {"id": "c1", "type": "function"},
        {"id": "", "function": {"name": "", "arguments": None}},
    ],
    ids=["empty", "missing", "null", "spaces", "no-function", "no-id"],
)
async def test_a_call_without_a_usable_name_is_answered_in_a_form_providers_accept(
    call: dict[str, Any],
) -> None:
    ran: list[str] = []
    client = _Raw(_calls(call), {"role": "assistant", "content": "Sorry."})
    schema = ToolSchemaBuilder("save_name").param("name", "string", required=True).build()
    executor = LLMExecutor(client, CallableToolExecutor({"save_name": ran.append}))
    result = await executor.run([{"role": "user", "content": "hi"}], tools=[schema])
    assert result.response == "Sorry." and ran == []
    assert result.tool_calls[0].status == "rejected"
    echoed, answer = client.requests[1][-2], client.requests[1][-1]
    (sent,) = echoed["tool_calls"]
    assert sent["function"]["name"] == "invalid_tool_call"  # non-empty, provider-legal
    assert sent["id"] and answer == {
        "role": "tool",
        "tool_call_id": sent["id"],
        "content": result.tool_calls[0].result,
    }
    assert "Tools available now: save_name" in answer["content"]


async def test_several_calls_at_once_run_only_the_valid_offered_ones() -> None:
    ran: list[str] = []
    client = _Raw(
        _calls(
            {"id": "a", "type": "function", "function": {"name": "save_name", "arguments": "{bad"}},
            {"id": "b", "type": "function", "function": {"name": "delete_all", "arguments": "{}"}},
            {"id": "c", "type": "function", "function": {"name": "", "arguments": "{}"}},
            {
                "id": "d",
                "type": "function",
                "function": {"name": "save_name", "arguments": '{"name": 5}'},
            },
            {
                "id": "e",
                "type": "function",
                "function": {"name": "save_name", "arguments": '{"name": "Ann"}'},
            },
        ),
        {"role": "assistant", "content": "Thanks Ann."},
    )
    schema = ToolSchemaBuilder("save_name").param("name", "string", required=True).build()
    executor = LLMExecutor(
        client,
        CallableToolExecutor({"save_name": lambda name: ran.append(name), "delete_all": ran.clear}),
    )
    result = await executor.run([{"role": "user", "content": "I'm Ann"}], tools=[schema])
    assert ran == ["Ann"]
    assert [c.status for c in result.tool_calls] == ["rejected"] * 4 + ["ok"]
    assert result.response == "Thanks Ann."
    # Every call got exactly one answer, in order, so the history is valid for a provider.
    answers = [m["tool_call_id"] for m in client.requests[1] if m["role"] == "tool"]
    assert answers == ["a", "b", "c", "d", "e"]


# -- durability: the user's message is stored before the model is called ------------------
async def test_the_users_message_is_stored_before_the_first_model_call() -> None:
    from agent_runtime_framework.memory import ConversationStore, StateStore

    class DurableConversations(ConversationStore):
        """Not the in-process default: stands for a database."""

    memory = MemoryManager(StateStore(), DurableConversations())
    cid = uuid.uuid4()
    stored_at_call: list[list[str]] = []

    class Watching(ScriptedLLM):
        async def generate(self, messages: Any, tools: Any = None, **kw: Any) -> LLMResponse:
            history = await memory.conversation_store.get_messages(cid)
            stored_at_call.append([m["content"] for m in history])
            raise KeyboardInterrupt  # stands for the process dying mid-call

    agent = OnboardingAgent(llm_client=Watching(), memory=memory)
    with pytest.raises(KeyboardInterrupt):
        await agent.run(AgentContext.for_message(cid, "my name is Ann"))
    assert stored_at_call == [["my name is Ann"]]
    assert [m.content for m in await memory.conversation_store.get_messages(cid)] == [
        "my name is Ann"
    ]
