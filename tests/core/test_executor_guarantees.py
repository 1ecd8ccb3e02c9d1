"""The one loop's guarantees: step scoping, validation, bounds, hooks, streaming."""

import json
import uuid
from dataclasses import dataclass
from enum import Enum
from typing import Literal

import pytest

from agent_runtime_framework import (
    AgentContext,
    BaseJourneyState,
    BaseJourneyTools,
    ExecutorHooks,
    JourneyAgent,
    JourneyConfig,
    LLMExecutor,
    LLMExecutorConfig,
    LLMResponse,
    ToolSchemaBuilder,
    configure,
    tool,
)
from agent_runtime_framework.llm.base import LLMRateLimitError
from agent_runtime_framework.testing import ScriptedLLM, tool_call
from agent_runtime_framework.tools import CallableToolExecutor
from tests.journeys import OnboardingAgent, OnboardingStep


def ctx(conversation_id, text):
    return AgentContext.for_message(conversation_id, text)


async def play(agent, text, conversation_id=None):
    return await agent.run(ctx(conversation_id or uuid.uuid4(), text))


async def collect_name_agent(script):
    """An onboarding agent already at COLLECT_NAME, with ``script`` queued."""
    llm = ScriptedLLM([tool_call("start"), "What's your name?"])
    agent = OnboardingAgent(llm_client=llm)
    conversation = uuid.uuid4()
    await agent.run(ctx(conversation, "hi"))
    llm.script.extend(script)
    return agent, llm, conversation


def last_tool_result(llm, call_index=-1):
    return [m for m in llm.calls[call_index].messages if m["role"] == "tool"][-1]["content"]


# -- step scoping ----------------------------------------------------------------------------


async def test_step_change_gives_new_prompt_and_tools_within_the_turn():
    agent, llm, conversation = await collect_name_agent(
        [tool_call("save_name", name="Ann"), tool_call("save_email", email="a@x.io"), "Done"]
    )
    result = await agent.run(ctx(conversation, "Ann, a@x.io"))
    assert result.step == OnboardingStep.COMPLETE
    prompts = [c.system_prompt for c in llm.calls[-3:]]
    assert prompts == [
        "Collect the user's name using save_name tool.",
        "Collect the user's email using save_email tool.",
        "Thank the user for completing onboarding.",
    ]
    assert [c.tool_names for c in llm.calls[-3:]] == [["save_name"], ["save_email"], []]


async def test_tool_not_offered_at_this_step_is_not_executed():
    agent, llm, conversation = await collect_name_agent(
        [tool_call("save_email", email="a@x.io"), "Sorry, what's your name?"]
    )
    result = await agent.run(ctx(conversation, "a@x.io"))
    assert result.state.email == "" and result.step == OnboardingStep.COLLECT_NAME
    error = last_tool_result(llm)
    assert "save_email" in error and "collect_name" in error
    assert "Tools available now: save_name" in error
    assert [c.status for c in result.tool_calls] == ["rejected"]


async def test_several_calls_in_one_answer_are_each_checked_when_they_run():
    # save_email comes first (not offered yet), then save_name moves the step on,
    # then save_email again (now offered) -- all in one model answer.
    agent, llm, conversation = await collect_name_agent(
        [
            [
                tool_call("save_email", email="early@x.io"),
                tool_call("save_name", name="Ann"),
                tool_call("save_email", email="ann@x.io"),
            ],
            "All done",
        ]
    )
    result = await agent.run(ctx(conversation, "Ann ann@x.io"))
    assert [(c.name, c.status) for c in result.tool_calls] == [
        ("save_email", "rejected"),
        ("save_name", "ok"),
        ("save_email", "ok"),
    ]
    assert result.state.email == "ann@x.io" and result.step == OnboardingStep.COMPLETE
    tool_messages = [m for m in llm.calls[-1].messages if m["role"] == "tool"][-3:]
    ids = [c["id"] for c in llm.calls[-1].messages[-4]["tool_calls"]]
    assert [m["tool_call_id"] for m in tool_messages] == ids  # every call answered, in order


# -- malformed and invalid calls --------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "expected"),
    [
        (tool_call("save_name", raw_arguments='{"name": "Ann"'), "not valid JSON"),
        (tool_call("save_name", raw_arguments=""), "missing required argument 'name'"),
        (tool_call("save_name", raw_arguments="[1, 2]"), "must be a JSON object"),
        (tool_call("save_name", {}), "missing required argument 'name'"),
        (tool_call("save_name", name="Ann", age=3), "unexpected argument 'age'"),
        (tool_call("save_name", name={"first": "Ann"}), "argument 'name'"),
        (tool_call("save_name", name=None), "argument 'name'"),
        (tool_call("drop_tables"), "tool 'drop_tables' is not available"),
        (tool_call("", name="Ann"), "no tool name"),
    ],
)
async def test_bad_calls_are_refused_with_a_precise_error(call, expected):
    agent, llm, conversation = await collect_name_agent([call, "Could you repeat?"])
    result = await agent.run(ctx(conversation, "Ann"))
    assert result.response == "Could you repeat?"
    assert result.state.name == "" and result.step == OnboardingStep.COLLECT_NAME
    error = last_tool_result(llm)
    assert expected in error
    assert "Tools available now: save_name" in error
    assert result.tool_calls[0].status == "rejected"


async def test_model_corrects_itself_after_an_error():
    agent, _, conversation = await collect_name_agent(
        [
            tool_call("save_name", raw_arguments="{oops"),
            tool_call("save_name", name="Ann"),
            "Hi Ann",
        ]
    )
    result = await agent.run(ctx(conversation, "Ann"))
    assert result.state.name == "Ann" and result.response == "Hi Ann"


async def test_arguments_given_as_a_dict_instead_of_a_string_are_accepted():
    call = {
        "id": "c1",
        "type": "function",
        "function": {"name": "save_name", "arguments": {"name": "Ann"}},
    }
    agent, llm, conversation = await collect_name_agent([call, "ok"])
    result = await agent.run(ctx(conversation, "Ann"))
    assert result.state.name == "Ann"
    # The transcript keeps the JSON string form that providers expect.
    assistant = llm.calls[-1].messages[-2]
    assert json.loads(assistant["tool_calls"][0]["function"]["arguments"]) == {"name": "Ann"}


async def test_lossless_coercion_and_enum_validation():
    received = {}

    async def book(count: int, plan: str, urgent: bool) -> str:
        received.update(count=count, plan=plan, urgent=urgent)
        return "booked"

    schema = (
        ToolSchemaBuilder("book")
        .param("count", "integer", "How many")
        .param("plan", "string", "Plan", enum=["basic", "premium"])
        .param("urgent", "boolean", "Urgent?")
        .build()
    )
    llm = ScriptedLLM(
        [
            tool_call("book", count="4.5", plan="gold", urgent="maybe"),
            tool_call("book", count="42", plan="premium", urgent="true"),
            "ok",
        ]
    )
    executor = LLMExecutor(llm, CallableToolExecutor({"book": book}))
    result = await executor.run([{"role": "user", "content": "book"}], tools=[schema])
    first_error = result.tool_calls[0].result
    assert "argument 'count'" in first_error and "argument 'plan'" in first_error
    assert "'basic' or 'premium'" in first_error and "argument 'urgent'" in first_error
    assert received == {"count": 42, "plan": "premium", "urgent": True}


async def test_consecutive_failures_are_bounded():
    agent, llm, conversation = await collect_name_agent(
        [tool_call("nope"), tool_call("nope"), tool_call("nope"), "never reached"]
    )
    agent.config = JourneyConfig(max_consecutive_tool_failures=3)
    agent._executor = None
    result = await agent.run(ctx(conversation, "Ann"))
    assert result.stopped_reason == "invalid_tool_calls"
    assert result.response.startswith("Sorry")
    assert llm.remaining == 1


async def test_max_iterations_reached():
    agent, _, conversation = await collect_name_agent(
        [tool_call("save_name", name=f"N{i}") for i in range(5)]
    )
    agent.config = JourneyConfig(max_iterations=2)
    agent._executor = None
    result = await agent.run(ctx(conversation, "Ann"))
    assert result.stopped_reason == "max_iterations" and result.iterations == 2
    assert result.response  # a safe reply, never empty
    history = await agent.memory.conversation_store.get_messages(conversation)
    assert history[-1] == {"role": "assistant", "content": result.response}


async def test_response_with_neither_content_nor_tool_calls():
    llm = ScriptedLLM([LLMResponse(message={"role": "assistant", "content": None})])
    result = await play(OnboardingAgent(llm_client=llm), "hello")
    assert result.stopped_reason == "empty_response"
    assert result.response.startswith("Sorry")


async def test_client_returning_something_without_message_fails_clearly():
    class Broken:
        async def generate(self, messages, tools=None, **kw):
            return {"text": "hi"}

    class BrokenNone:
        async def generate(self, messages, tools=None, **kw):
            return None

    with pytest.raises(TypeError, match=r"without a \.message"):
        await LLMExecutor(BrokenNone()).run([{"role": "user", "content": "x"}])
    # A plain dict with OpenAI fields is accepted as the message itself.
    result = await LLMExecutor(Broken()).run([{"role": "user", "content": "x"}])
    assert result.stopped_reason == "empty_response"


async def test_production_tool_error_counts_toward_failures_and_run_goes_on():
    configure(debug=False)

    async def explode() -> str:
        raise RuntimeError("backend down")

    llm = ScriptedLLM([tool_call("explode"), "The backend is down, try later."])
    result = await LLMExecutor(llm, CallableToolExecutor({"explode": explode})).run(
        [{"role": "user", "content": "go"}], tools=[ToolSchemaBuilder("explode").build()]
    )
    assert result.tool_calls[0].status == "error"
    assert result.tool_calls[0].result == "Error executing explode: backend down"
    assert result.content == "The backend is down, try later."


# -- hooks, usage, streaming, cancellation ----------------------------------------------------


class Recorder(ExecutorHooks):
    def __init__(self):
        self.events = []

    async def on_iteration_start(self, iteration):
        self.events.append(("iteration", iteration))

    async def on_llm_start(self, messages, tools):
        self.events.append(("llm_start", len(tools)))

    async def on_llm_delta(self, delta):
        self.events.append(("delta", delta))

    async def on_llm_end(self, message, usage):
        self.events.append(("llm_end", usage["total_tokens"]))

    async def on_tool_calls(self, tool_calls):
        self.events.append(("tool_calls", [c["function"]["name"] for c in tool_calls]))

    async def on_tool_start(self, name, arguments):
        self.events.append(("tool_start", name, arguments))

    async def on_tool_end(self, name, result):
        self.events.append(("tool_end", name))

    async def on_tool_error(self, name, arguments, error):
        self.events.append(("tool_error", name, type(error).__name__))

    async def on_tool_rejected(self, name, arguments, reason):
        self.events.append(("tool_rejected", name))

    async def on_step_change(self, old_step, new_step):
        self.events.append(("step", old_step.value, new_step.value))

    async def on_complete(self, result):
        self.events.append(("complete", result.stopped_reason))

    async def on_error(self, error):
        self.events.append(("error", type(error).__name__))


async def test_hooks_see_every_stage_and_usage_is_summed():
    hooks = Recorder()
    agent, _, conversation = await collect_name_agent(
        [[tool_call("bogus"), tool_call("save_name", name="Ann")], "Hi Ann"]
    )
    agent.hooks = hooks
    result = await agent.run(ctx(conversation, "Ann"))
    assert hooks.events == [
        ("iteration", 1),
        ("llm_start", 1),
        ("llm_end", 15),
        ("tool_calls", ["bogus", "save_name"]),
        ("tool_rejected", "bogus"),
        ("tool_start", "save_name", {"name": "Ann"}),
        ("tool_end", "save_name"),
        ("step", "collect_name", "collect_email"),
        ("iteration", 2),
        ("llm_start", 1),
        ("llm_end", 15),
        ("complete", "text_response"),
    ]
    assert result.usage == {"prompt_tokens": 20, "completion_tokens": 10, "total_tokens": 30}


async def test_streaming_client_deltas_reach_hooks():
    hooks = Recorder()
    llm = ScriptedLLM(["Hello there friend"])
    executor = LLMExecutor(llm, config=LLMExecutorConfig(stream=True), hooks=hooks)
    result = await executor.run([{"role": "user", "content": "hi"}])
    assert [e[1] for e in hooks.events if e[0] == "delta"] == ["Hello", " there", " friend"]
    assert result.content == "Hello there friend"


async def test_cancellation_is_checked_between_llm_calls():
    calls = []

    async def step() -> str:
        calls.append(1)
        return "ok"

    llm = ScriptedLLM([tool_call("step"), "never"])
    result = await LLMExecutor(llm, CallableToolExecutor({"step": step})).run(
        [{"role": "user", "content": "go"}],
        tools=[ToolSchemaBuilder("step").build()],
        cancelled=lambda: bool(calls),
    )
    assert result.stopped_reason == "cancelled" and len(llm.calls) == 1


async def test_provider_error_keeps_committed_state_and_the_user_message():
    hooks = Recorder()
    agent, _, conversation = await collect_name_agent(
        [tool_call("save_name", name="Ann"), LLMRateLimitError("slow down", retry_after=3)]
    )
    agent.hooks = hooks
    with pytest.raises(LLMRateLimitError):
        await agent.run(ctx(conversation, "Ann"))
    assert ("error", "LLMRateLimitError") in hooks.events
    stored = await agent.memory.load_state(conversation, agent.key)
    assert stored["name"] == "Ann" and stored["step"] == "collect_email"
    history = await agent.memory.conversation_store.get_messages(conversation)
    assert [m["role"] for m in history[-3:]] == ["user", "assistant", "tool"]
    assert history[-3]["content"] == "Ann"


async def test_user_message_is_kept_when_the_first_llm_call_fails():
    agent, _, conversation = await collect_name_agent([LLMRateLimitError("busy")])
    with pytest.raises(LLMRateLimitError):
        await agent.run(ctx(conversation, "my name is Ann"))
    history = await agent.memory.conversation_store.get_messages(conversation)
    assert history[-1] == {"role": "user", "content": "my name is Ann"}


async def test_interrupted_tool_calls_are_answered_on_the_next_turn():
    configure(debug=True)

    class Flaky:
        calls = 0

    agent, llm, conversation = await collect_name_agent([])
    original = agent.execute_tool

    async def flaky_execute(tools, name, arguments):
        Flaky.calls += 1
        if Flaky.calls == 2:
            raise RuntimeError("worker died")
        return await original(tools, name, arguments)

    agent.execute_tool = flaky_execute
    llm.script.append([tool_call("save_name", name="Ann"), tool_call("save_email", email="a@b.io")])
    with pytest.raises(RuntimeError):
        await agent.run(ctx(conversation, "Ann a@b.io"))
    llm.script.extend(["Sorry, what was your email again?"])
    await agent.run(ctx(conversation, "hello?"))
    sent = llm.calls[-1].messages
    open_call = next(m for m in sent if m.get("tool_calls") and len(m["tool_calls"]) == 2)
    answered = {m["tool_call_id"] for m in sent if m["role"] == "tool"}
    assert {c["id"] for c in open_call["tool_calls"]} <= answered


# -- a journey built the low-boilerplate way ------------------------------------------------


class Cover(str, Enum):
    CAR = "car"
    HOME = "home"


class QuoteStep(str, Enum):
    COVER = "cover"
    AGE = "age"
    DONE = "done"


@dataclass
class QuoteState(BaseJourneyState[QuoteStep]):
    step: QuoteStep = QuoteStep.COVER
    cover: Cover | None = None
    age: int | None = None

    def is_complete(self) -> bool:
        return self.step == QuoteStep.DONE


class QuoteTools(BaseJourneyTools[QuoteState]):
    @tool(steps=[QuoteStep.COVER])
    async def choose_cover(self, cover: Cover) -> str:
        """Record the kind of cover.

        Args:
            cover: The kind of cover the user wants.
        """
        self.state.cover = cover
        self.state.step = QuoteStep.AGE
        return f"{cover.value} cover chosen"

    @tool(steps=[QuoteStep.AGE])
    def set_age(self, age: int, unit: Literal["years"] = "years") -> str:
        """Record the driver's age.

        Args:
            age: Age in years, 18 to 99.
            unit: Always years.
        """
        if not 18 <= age <= 99:
            return f"Refused: {age} is out of range (18-99). Ask again."
        self.state.age = age
        self.state.step = QuoteStep.DONE
        return "age recorded"


class QuoteAgent(JourneyAgent[QuoteState, QuoteTools, QuoteStep]):
    tools_class = QuoteTools
    key = "quote"  # type: ignore[assignment]

    def get_initial_state(self) -> QuoteState:
        return QuoteState()

    def get_system_prompt(self, state: QuoteState) -> str:
        return f"Step {state.step.value}"


async def test_tools_class_with_decorated_methods_needs_no_schema_code():
    llm = ScriptedLLM(
        [
            tool_call("choose_cover", cover="boat"),
            tool_call("choose_cover", cover="car"),
            tool_call("set_age", age="15"),
            tool_call("set_age", age=40),
            "Quote ready",
        ]
    )
    result = await play(QuoteAgent(llm_client=llm), "car insurance, I'm 40")
    assert result.state == QuoteState(step=QuoteStep.DONE, cover=Cover.CAR, age=40)
    assert "'car' or 'home'" in result.tool_calls[0].result
    assert result.tool_calls[2].result.startswith("Refused")
    assert llm.calls[0].tool_names == ["choose_cover"]
    assert llm.calls[2].tool_names == ["set_age"]
    params = llm.calls[0].tools[0]["function"]["parameters"]
    assert params["properties"]["cover"]["description"] == "The kind of cover the user wants."
