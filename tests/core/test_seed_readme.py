"""Every code example of the seed README (0.3.0) runs here, with a scripted LLM."""

import logging
import uuid
from dataclasses import dataclass
from enum import Enum

import pytest

from agent_runtime_framework import (
    AgentContext,
    BaseJourneyState,
    BaseJourneyTools,
    ConversationStore,
    Executor,
    ExecutorConfig,
    ExecutorHooks,
    FrameworkConfig,
    IntentRouter,
    JourneyAgent,
    LLMExecutor,
    LLMExecutorConfig,
    LoggingHooks,
    MemoryManager,
    MethodToolExecutor,
    PromptManager,
    PromptTemplate,
    RouteDefinition,
    StateStore,
    StepPromptMapping,
    ToolSchema,
    ToolSchemaBuilder,
    configure,
    get_config,
    is_debug,
    reset_config,
    set_config,
    should_swallow_exceptions,
)
from agent_runtime_framework.testing import ScriptedLLM, tool_call
from tests.journeys import OnboardingAgent, OnboardingState, OnboardingStep


def ctx_for(conversation_id, text):
    return AgentContext(
        run_id=uuid.uuid4(),
        conversation_id=conversation_id,
        input_messages=[{"role": "user", "content": text}],
        metadata={},
    )


async def test_quick_start_onboarding_runs_across_turns():
    my_llm_client = ScriptedLLM(
        [
            tool_call("start"),
            "Welcome! What's your name?",
            tool_call("save_name", name="Alice"),
            "Thanks Alice, and your email?",
            tool_call("save_email", email="alice@example.com"),
            "You're all set!",
        ]
    )
    agent = OnboardingAgent(llm_client=my_llm_client)
    conversation = uuid.uuid4()

    result = await agent.run(ctx_for(conversation, "hello"))
    assert result.response == "Welcome! What's your name?"
    assert result.state.step == OnboardingStep.COLLECT_NAME

    result = await agent.run(ctx_for(conversation, "I'm Alice"))
    assert result.state.name == "Alice"
    assert result.state.step == OnboardingStep.COLLECT_EMAIL

    result = await agent.run(ctx_for(conversation, "alice@example.com"))
    assert result.state == OnboardingState(
        step=OnboardingStep.COMPLETE, name="Alice", email="alice@example.com"
    )
    assert result.state.is_complete() and result.complete
    my_llm_client.assert_exhausted()


def test_state_to_dict_from_dict_seed_shape():
    state = OnboardingState(step=OnboardingStep.COLLECT_EMAIL, name="Bo")
    assert state.to_dict() == {"step": "collect_email", "name": "Bo", "email": ""}
    assert OnboardingState.from_dict(state.to_dict()) == state
    assert state.get_step() == OnboardingStep.COLLECT_EMAIL
    state.set_step(OnboardingStep.COMPLETE)
    assert state.is_terminal()


# -- debug and production mode ------------------------------------------------------------


@dataclass
class MyState(BaseJourneyState[OnboardingStep]):
    step: OnboardingStep = OnboardingStep.WELCOME


class MyTools(BaseJourneyTools[MyState]):
    async def process_data(self, data: str) -> str:
        result = int(data)  # ValueError if data is not a number
        return f"Processed: {result}"


class DataAgent(JourneyAgent[MyState, MyTools, OnboardingStep]):
    @property
    def key(self) -> str:
        return "data-agent"

    def get_initial_state(self) -> MyState:
        return MyState()

    def get_system_prompt(self, state: MyState) -> str:
        return "Process data."

    def get_tool_schemas(self, state: MyState) -> list[ToolSchema]:
        return [
            ToolSchemaBuilder("process_data")
            .description("Process")
            .param("data", "string", "Data", required=True)
            .build()
        ]

    def create_tools(self, state: MyState, ctx: AgentContext) -> MyTools:
        return MyTools(state=state)

    async def execute_tool(self, tools: MyTools, name: str, arguments: dict) -> str:
        method = getattr(tools, name)
        return await method(**arguments)


async def test_debug_mode_propagates_tool_exceptions_with_traceback():
    configure(debug=True)
    agent = DataAgent(llm_client=ScriptedLLM([tool_call("process_data", data="abc")]))
    with pytest.raises(ValueError, match="invalid literal for int") as info:
        await agent.run(ctx_for(uuid.uuid4(), "go"))
    assert any(frame.name == "process_data" for frame in info.traceback)


async def test_production_mode_returns_error_and_run_goes_on():
    configure(debug=False)
    llm = ScriptedLLM([tool_call("process_data", data="abc"), "That was not a number."])
    agent = DataAgent(llm_client=llm)
    result = await agent.run(ctx_for(uuid.uuid4(), "go"))
    assert result.response == "That was not a number."
    tool_message = llm.calls[1].messages[-1]
    assert tool_message["role"] == "tool"
    assert tool_message["content"] == (
        "Error executing process_data: invalid literal for int() with base 10: 'abc'"
    )


def test_configuration_api_and_environment(monkeypatch):
    config = configure(debug=True, swallow_tool_exceptions=False, log_level="DEBUG")
    assert config == FrameworkConfig(debug=True, swallow_tool_exceptions=False, log_level="DEBUG")
    assert is_debug() and not should_swallow_exceptions()
    assert logging.getLogger("agent_runtime_framework").level == logging.DEBUG

    set_config(FrameworkConfig(debug=False, swallow_tool_exceptions=True, log_level="WARNING"))
    assert get_config().log_level == "WARNING" and should_swallow_exceptions()
    assert logging.getLogger("agent_runtime_framework").level == logging.WARNING

    configure(debug=False)
    assert not is_debug() and should_swallow_exceptions()

    monkeypatch.setenv("AGENT_RUNTIME_DEBUG", "1")
    monkeypatch.setenv("AGENT_RUNTIME_LOG_LEVEL", "DEBUG")
    assert reset_config() == FrameworkConfig(debug=True, log_level="DEBUG")
    assert not should_swallow_exceptions()
    monkeypatch.setenv("AGENT_RUNTIME_DEBUG", "0")
    monkeypatch.delenv("AGENT_RUNTIME_LOG_LEVEL")
    assert reset_config() == FrameworkConfig(debug=False, log_level="INFO")

    with pytest.raises(ValueError, match="log_level"):
        FrameworkConfig(log_level="LOUD")


# -- router, memory, prompts, hooks, executor -------------------------------------------


class Journey(str, Enum):
    QUOTE = "quote"
    CLAIM = "claim"
    SUPPORT = "support"


def test_intent_router_example():
    router = IntentRouter[Journey]()
    router.add_route(
        RouteDefinition(
            journey=Journey.QUOTE, name="start_quote", description="Get a new insurance quote"
        )
    )
    router.add_route(
        RouteDefinition(
            journey=Journey.CLAIM, name="file_claim", description="File or check on a claim"
        )
    )
    tools = router.get_tool_schemas()
    assert [t.to_openai_format()["function"]["name"] for t in tools] == [
        "start_quote",
        "file_claim",
    ]
    assert router.resolve_tool_call("start_quote") == Journey.QUOTE
    assert router.resolve_tool_call("nope") is None
    with pytest.raises(ValueError):
        router.add_route(RouteDefinition(journey=Journey.SUPPORT, name="start_quote"))


async def test_memory_manager_example():
    state_store = StateStore()
    conversation_store = ConversationStore()
    manager = MemoryManager(state_store, conversation_store)
    conversation_id = uuid.uuid4()

    context = await manager.load_context(conversation_id, "my-agent")
    assert context.state is None and context.messages == [] and context.is_new

    new_state = OnboardingState(step=OnboardingStep.COLLECT_EMAIL, name="Al")
    messages = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    await manager.save_state(conversation_id, "my-agent", new_state)
    await manager.save_messages(conversation_id, messages)

    context = await manager.load_context(conversation_id, "my-agent")
    assert OnboardingState.from_dict(context.state) == new_state
    assert context.messages == messages
    # save_messages appends the messages given (0.3.0's meaning); nothing is dropped.
    await manager.save_messages(conversation_id, [{"role": "user", "content": "again"}])
    assert await conversation_store.count(conversation_id) == 3


def test_prompt_examples():
    class MyStep(str, Enum):
        WELCOME = "welcome"
        COLLECTING = "collecting"
        OTHER = "other"

    prompts = StepPromptMapping[MyStep](
        prompts={
            MyStep.WELCOME: "Welcome! How can I help?",
            MyStep.COLLECTING: "Please provide your information.",
        },
        default="I'm here to assist you.",
    )
    template = PromptTemplate("Hello $name! You are at step ${step}.", defaults={"name": "there"})
    prompts.add(MyStep.WELCOME, template)
    assert prompts.get(MyStep.WELCOME, name="Alice", step="welcome") == (
        "Hello Alice! You are at step welcome."
    )
    assert prompts.get(MyStep.OTHER) == "I'm here to assist you."
    assert template.render(step="x") == "Hello there! You are at step x."
    with pytest.raises(KeyError, match="step"):
        template.render()

    @dataclass
    class S:
        step: MyStep
        name: str

    manager = PromptManager[MyStep](
        mapping=StepPromptMapping(prompts={MyStep.WELCOME: template}),
        context_enricher=lambda state: {"name": state.name},
    )
    assert manager.get_prompt(S(MyStep.WELCOME, "Zed")) == "Hello Zed! You are at step welcome."


async def test_hooks_and_executor_examples(capsys):
    class MyHooks(ExecutorHooks):
        async def on_tool_start(self, name: str, arguments: dict) -> None:
            print(f"Calling tool: {name}")

        async def on_tool_end(self, name: str, result: str) -> None:
            print(f"Tool completed: {name}")

    class Tools:
        async def my_tool(self, arg1: str, arg2: float | None = None) -> str:
            return f"{arg1}/{arg2}"

    tool_schema = (
        ToolSchemaBuilder("my_tool")
        .description("What the tool does")
        .param("arg1", "string", "Description", required=True)
        .param("arg2", "number", "Description", required=False)
        .build()
    )
    my_llm = ScriptedLLM([tool_call("my_tool", arg1="x", arg2="2.5"), "Done."])
    executor = LLMExecutor(
        llm_client=my_llm,
        tool_executor=MethodToolExecutor(Tools()),
        config=LLMExecutorConfig(max_iterations=10),
        hooks=MyHooks(),
    )
    result = await executor.run(
        messages=[{"role": "user", "content": "Hello"}],
        tools=[tool_schema],
        system_prompt="You are helpful.",
    )
    assert result.content == "Done." and result.stopped_reason == "text_response"
    assert result.tool_calls[0].result == "x/2.5"  # "2.5" coerced losslessly to 2.5
    assert capsys.readouterr().out == "Calling tool: my_tool\nTool completed: my_tool\n"
    assert my_llm.calls[0].system_prompt == "You are helpful."
    assert tool_schema.to_openai_format()["function"]["parameters"]["required"] == ["arg1"]

    # 0.3.0 names still work, and LoggingHooks is a drop-in.
    assert Executor is LLMExecutor and ExecutorConfig is LLMExecutorConfig
    executor = Executor(llm_client=ScriptedLLM(["hi"]), hooks=LoggingHooks())
    assert (await executor.run(messages=[{"role": "user", "content": "x"}])).content == "hi"
