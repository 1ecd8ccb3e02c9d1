"""0.3.0's public modules and call shapes, as code written against 0.3.0 uses them.

Facts about 0.3.0 (from its source): ``memory.store`` held ``StoredMessage`` and the
stores (``StateStore.save_state/load_state/delete_state``, ``ConversationStore.add_message/
add_messages/clear_conversation``, messages read back with ``.role``/``.content``);
``memory.context`` held ``MemoryManager`` and an async ``build_memory_context(conversation_id,
agent_key, state_store, conversation_store, message_limit)``; ``agents.base`` held
``BaseAgent`` and ``LLMClient``; ``executor`` exported ``ExecutionResult`` (``response``,
``tool_calls_made``, ``stopped_reason`` ``"text_response"``/``"terminal_tool:<name>"``/
``"max_iterations"``); hooks had ``on_llm_call(messages, tools)`` and
``on_complete(response, stopped_reason)``; ``JourneyConfig`` had ``max_tool_iterations``,
``terminal_tools`` and ``closing_phrases``; ``AgentResult.state`` was the state's dict.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from agent_runtime_framework import (
    AgentContext,
    AgentMessage,
    FrameworkConfig,
    JourneyConfig,
    StateSerializer,
    configure,
    get_config,
    reset_config,
    set_config,
)
from agent_runtime_framework.testing import ScriptedLLM, tool_call
from tests.journeys import OnboardingAgent, OnboardingState, OnboardingStep


def test_the_0_3_0_module_paths_import() -> None:
    from agent_runtime_framework.adapters import DjangoStateStore, create_django_runtime
    from agent_runtime_framework.agents import BaseAgent
    from agent_runtime_framework.agents.base import LLMClient
    from agent_runtime_framework.executor import ExecutionResult, LoggingHooks
    from agent_runtime_framework.executor.hooks import CompositeHooks, ExecutorHooks
    from agent_runtime_framework.executor.loop import (
        CallableToolExecutor,
        MethodToolExecutor,
        ToolExecutor,
    )
    from agent_runtime_framework.memory.context import (
        MemoryContext,
        MemoryManager,
        build_memory_context,
    )
    from agent_runtime_framework.memory.store import (
        ConversationStore,
        InMemoryStore,
        StateStore,
        StoredMessage,
    )
    from agent_runtime_framework.prompts.manager import preference_enricher
    from agent_runtime_framework.router import RouteResult
    from agent_runtime_framework.tools import BaseTool

    assert all(
        [
            DjangoStateStore,
            create_django_runtime,
            BaseAgent,
            LLMClient,
            ExecutionResult,
            LoggingHooks,
            CompositeHooks,
            ExecutorHooks,
            CallableToolExecutor,
            MethodToolExecutor,
            ToolExecutor,
            MemoryContext,
            MemoryManager,
            build_memory_context,
            ConversationStore,
            InMemoryStore,
            StateStore,
            StoredMessage,
            preference_enricher,
            RouteResult,
            BaseTool,
        ]
    )
    assert issubclass(OnboardingAgent, BaseAgent)


async def test_0_3_0_stores_and_memory_context() -> None:
    from agent_runtime_framework.memory.context import MemoryContext, build_memory_context
    from agent_runtime_framework.memory.store import ConversationStore, StateStore, StoredMessage

    states, conversations = StateStore(), ConversationStore()
    cid = uuid.uuid4()
    await states.save_state(cid, "a", {"step": "x"})
    assert await states.load_state(cid, "a") == {"step": "x"}
    await conversations.add_message(cid, StoredMessage("user", "Hello"))
    await conversations.add_messages(cid, [StoredMessage("assistant", "Hi", {"k": 1})])
    got = await conversations.get_messages(cid)
    assert [(m.role, m.content) for m in got] == [("user", "Hello"), ("assistant", "Hi")]
    assert got[1].metadata == {"k": 1} and got[0].to_dict() == {"role": "user", "content": "Hello"}

    context = await build_memory_context(
        conversation_id=cid, agent_key="a", state_store=states, conversation_store=conversations
    )
    assert context.has_state() and len(context.messages) == 2
    empty = await build_memory_context(conversation_id=cid, agent_key="a")
    assert empty.state is None and empty.messages == []
    assert not MemoryContext().has_state()

    await conversations.clear_conversation(cid)
    await states.delete_state(cid, "a")
    assert await conversations.get_messages(cid) == [] and await states.load_state(cid, "a") is None


async def test_executor_result_hooks_and_terminal_tools_as_in_0_3_0() -> None:
    from agent_runtime_framework.executor import (
        ExecutionResult,
        Executor,
        ExecutorConfig,
        ExecutorHooks,
    )
    from agent_runtime_framework.executor.loop import CallableToolExecutor
    from agent_runtime_framework.tools import ToolSchemaBuilder

    seen: list[Any] = []

    class Old(ExecutorHooks):
        async def on_llm_call(self, messages: Any, tools: Any) -> None:
            seen.append(("llm_call", len(tools or ())))

        async def on_complete(self, response: str, stopped_reason: str) -> None:  # type: ignore[override]
            seen.append(("complete", response, stopped_reason))

    async def complete_order() -> str:
        return "Order completed!"

    schema = ToolSchemaBuilder("complete_order").description("Finish").build()
    executor = Executor(
        llm_client=ScriptedLLM([tool_call("complete_order")]),
        tool_executor=CallableToolExecutor({"complete_order": complete_order}),
        config=ExecutorConfig(terminal_tools={"complete_order"}),
        hooks=Old(),
    )
    result = await executor.run(
        messages=[AgentMessage("user", "Complete my order")], tools=[schema]
    )
    assert isinstance(result, ExecutionResult)
    assert result.stopped_reason == "terminal_tool:complete_order"
    assert result.response == "Order completed!" and result.tool_calls_made == 1
    assert seen == [
        ("llm_call", 1),
        ("complete", "Order completed!", "terminal_tool:complete_order"),
    ]

    plain = await Executor(llm_client=ScriptedLLM(["Hello!"])).run(
        messages=[{"role": "user", "content": "Hi"}]
    )
    assert plain.stopped_reason == "text_response" and plain.tool_calls_made == 0
    with pytest.raises(ValueError, match="stop_on_text"):
        ExecutorConfig(stop_on_text=False)


async def test_composite_hooks_accept_both_on_complete_signatures() -> None:
    from agent_runtime_framework.executor.hooks import CompositeHooks, ExecutorHooks

    calls: list[str] = []

    class Old(ExecutorHooks):
        async def on_complete(self, response: str, reason: str) -> None:  # type: ignore[override]
            calls.append(f"old {response} {reason}")

    class New(ExecutorHooks):
        async def on_complete(self, result: Any) -> None:
            calls.append(f"new {result.content} {result.stopped_reason}")

    await CompositeHooks([Old(), New()]).on_complete("response", "reason")
    assert calls == ["old response reason", "new response reason"]


async def test_tool_executors_called_directly_answer_as_0_3_0_did() -> None:
    from agent_runtime_framework.executor.loop import CallableToolExecutor, MethodToolExecutor

    def fail() -> None:
        raise ValueError("Something went wrong")

    try:
        configure(debug=False)
        assert "Unknown tool" in await CallableToolExecutor({}).execute("nope", {})
        assert "Something went wrong" in await CallableToolExecutor({"f": fail}).execute("f", {})
        assert "Unknown tool" in await MethodToolExecutor(object()).execute("nope", {})
        configure(debug=True)
        with pytest.raises(ValueError):
            await CallableToolExecutor({"f": fail}).execute("f", {})
    finally:
        reset_config()


def test_journey_config_0_3_0_fields_and_closing_messages() -> None:
    config = JourneyConfig(max_tool_iterations=5, terminal_tools={"done"}, closing_phrases=["bye"])
    assert config.max_iterations == 5 and config.max_tool_iterations == 5
    assert JourneyConfig().closing_phrases == ["thank you", "thanks", "bye", "goodbye"]
    agent = OnboardingAgent(llm_client=ScriptedLLM())
    assert agent.is_closing_message("Thank you!") and not agent.is_closing_message("a question")


async def test_a_thank_you_after_the_end_needs_no_model_call_and_result_state_reads_as_dict() -> (
    None
):
    llm = ScriptedLLM([tool_call("start"), "Name?"])
    agent = OnboardingAgent(llm_client=llm)
    cid = uuid.uuid4()
    result = await agent.run(AgentContext(uuid.uuid4(), cid, [AgentMessage("user", "Hello")]))
    assert result.state["step"] == "collect_name" and result.state["name"] == ""

    class Done(OnboardingAgent):
        def get_initial_state(self) -> OnboardingState:
            return OnboardingState(step=OnboardingStep.COMPLETE)

    idle = ScriptedLLM()
    closing = await Done(llm_client=idle).run(
        AgentContext(uuid.uuid4(), uuid.uuid4(), [AgentMessage("user", "Thank you!")])
    )
    assert closing.response == "" and idle.calls == []


def test_state_serializer_copy_and_config_mode_switches() -> None:
    state = OnboardingState(step=OnboardingStep.COLLECT_EMAIL, name="Al")
    twin = state.copy()
    assert twin == state and twin is not state
    assert StateSerializer.serialize({"s": OnboardingStep.WELCOME, "id": uuid.UUID(int=1)}) == {
        "s": "welcome",
        "id": "00000000-0000-0000-0000-000000000001",
    }
    assert StateSerializer.deserialize_enum("welcome", OnboardingStep) is OnboardingStep.WELCOME

    try:
        config = FrameworkConfig()
        set_config(config)
        config.enable_debug()
        assert get_config().debug and not get_config().swallow_tool_exceptions
        assert get_config().log_level == "DEBUG"
        config.enable_production()
        assert not get_config().debug and get_config().swallow_tool_exceptions
    finally:
        reset_config()


async def test_0_3_0_adapter_helpers() -> None:
    from agent_runtime_framework.adapters import (
        DjangoRuntimeAdapter,
        DjangoStateStore,
        create_django_runtime,
    )
    from agent_runtime_framework.testing.run_context import FakeRunContext
    from tests.adapter.runtimes import OnboardingAdapter

    class Plain(OnboardingAdapter):
        get_backend_client = DjangoRuntimeAdapter.get_backend_client  # the default

    backend = object()
    adapter = create_django_runtime(Plain, llm_client=ScriptedLLM(), backend_client=backend)
    assert isinstance(adapter, Plain) and adapter.get_backend_client(None) is backend

    ctx = FakeRunContext(conversation_id=uuid.uuid4(), input_messages=[])
    store = DjangoStateStore(ctx, "onboarding-agent")
    assert await store.load() is None
    await store.save({"step": "welcome"})
    assert await ctx.get_state() == {"step": "welcome"}
    assert await DjangoStateStore(ctx, "onboarding-agent").load() == {"step": "welcome"}


def test_prompt_manager_in_both_call_shapes() -> None:
    from agent_runtime_framework import PromptManager, StepPromptMapping
    from agent_runtime_framework.prompts.manager import preference_enricher

    mapping = StepPromptMapping({OnboardingStep.WELCOME: "Hi $user_name"}, default="Hello")
    seed = PromptManager(mapping=mapping, context_enricher=lambda s: {"user_name": s.name})
    assert seed.get_prompt(OnboardingState(name="Al")) == "Hi Al"

    old = PromptManager(step_prompts=mapping).add_enricher(preference_enricher("cover"))
    assert old.get_prompt(OnboardingStep.WELCOME, context={"cover": "car"}, user_name="Bo") == (
        "Hi Bo\n\nNote: User prefers car."
    )
    assert old.get_prompt(OnboardingStep.COMPLETE) == "Hello"
