"""Routing across journeys, append-only memory, turn claims, and the testing kit."""

import asyncio
import os
import subprocess
import sys
import textwrap
import uuid
from enum import Enum

import pytest

from agent_runtime_framework import (
    AgentContext,
    ConversationStore,
    IntentDetector,
    IntentRouter,
    JourneyBusy,
    MemoryManager,
    RouteDefinition,
    RoutedJourneyAgent,
)
from agent_runtime_framework.memory import history_window
from agent_runtime_framework.testing import JourneyDriver, ScriptedLLM, ScriptExhausted, tool_call
from tests.core.test_executor_guarantees import QuoteAgent, QuoteStep
from tests.journeys import OnboardingAgent, OnboardingStep


class Desk(str, Enum):
    ONBOARDING = "onboarding"
    QUOTE = "quote"


def front_desk(llm):
    router = IntentRouter[Desk]()
    router.add_route(
        RouteDefinition(
            Desk.ONBOARDING, "start_onboarding", "Open an account", keywords=["account", "sign up"]
        )
    )
    router.add_route(
        RouteDefinition(
            Desk.QUOTE, "get_quote", "Get an insurance quote", keywords=["quote", "insurance"]
        )
    )
    return RoutedJourneyAgent(
        router, {Desk.ONBOARDING: OnboardingAgent(), Desk.QUOTE: QuoteAgent()}, llm_client=llm
    )


async def test_first_turn_routes_by_tool_then_turns_continue_in_the_journey():
    llm = ScriptedLLM(
        [
            tool_call("start_onboarding"),  # routing call
            tool_call("start"),  # the journey, same turn
            "Welcome! Your name?",
            tool_call("save_name", name="Ann"),
            "Thanks, Ann. Email?",
        ]
    )
    agent = front_desk(llm)
    driver = JourneyDriver(agent)
    first = await driver.say("I want to open an account")
    assert first.metadata == {
        "journey": "onboarding",
        "agent_key": "onboarding-agent",
        "routed_by": "model",
    }
    assert first.step == OnboardingStep.COLLECT_NAME
    assert llm.calls[0].tool_names == ["start_onboarding", "get_quote"]
    second = await driver.say("Ann")
    assert second.state.name == "Ann" and "routed_by" not in second.metadata
    assert await agent.current_journey(driver.conversation_id) == Desk.ONBOARDING
    # The choice is persisted state: a new router instance over the same memory continues.
    again = front_desk(ScriptedLLM(["Email please"]))
    again.memory = agent.memory
    assert await again.current_journey(driver.conversation_id) == Desk.ONBOARDING


async def test_keyword_fallback_when_the_model_routes_nowhere():
    llm = ScriptedLLM(["How can I help?", tool_call("choose_cover", cover="car"), "Your age?"])
    agent = front_desk(llm)
    result = await JourneyDriver(agent).say("I need an insurance quote for my car")
    assert result.metadata["routed_by"] == "keywords" and result.step == QuoteStep.AGE


async def test_unclear_first_message_gets_the_routers_question():
    agent = front_desk(ScriptedLLM(["Do you want an account or a quote?"]))
    driver = JourneyDriver(agent)
    result = await driver.say("hmm")
    assert result.response == "Do you want an account or a quote?"
    assert await agent.current_journey(driver.conversation_id) is None
    assert [m["role"] for m in await driver.history()] == ["user", "assistant"]


async def test_handoff_and_completion_return_to_the_router():
    class HandingBack(OnboardingAgent):
        async def execute_tool(self, tools, name, arguments):
            tools.request_handoff("user wants something else")
            return "handing back"

    llm = ScriptedLLM([tool_call("start_onboarding"), tool_call("start"), "Let me hand you back."])
    router = IntentRouter[Desk]([RouteDefinition(Desk.ONBOARDING, "start_onboarding")])
    agent = RoutedJourneyAgent(router, {Desk.ONBOARDING: HandingBack()}, llm_client=llm)
    driver = JourneyDriver(agent)
    result = await driver.say("account")
    assert result.handoff == "user wants something else"
    assert await agent.current_journey(driver.conversation_id) is None


def test_router_refuses_routes_without_agents_and_detector_scores():
    router = IntentRouter[Desk]([RouteDefinition(Desk.QUOTE, "get_quote")])
    with pytest.raises(ValueError, match="No agent"):
        RoutedJourneyAgent(router, {})
    detector = IntentDetector({Desk.QUOTE: ["quote", "price"], Desk.ONBOARDING: ["account"]})
    assert detector.detect("What's the price of a quote?") == Desk.QUOTE
    assert detector.detect("nothing here") is None
    assert router.detector().detect("a QUOTE please") == Desk.QUOTE


# -- memory --------------------------------------------------------------------------------


class CountingStore(ConversationStore):
    def __init__(self):
        super().__init__()
        self.appended = 0

    async def append_messages(self, conversation_id, messages):
        self.appended += len(messages)
        await super().append_messages(conversation_id, messages)


async def test_each_turn_appends_only_its_new_messages():
    store = CountingStore()
    script = []
    for i in range(50):
        script += [tool_call("save_name", name=f"N{i}") if i else tool_call("start"), f"reply {i}"]
    agent = OnboardingAgent(
        llm_client=ScriptedLLM(script), memory=MemoryManager(conversation_store=store)
    )
    driver = JourneyDriver(agent)
    await driver.say("hi")
    per_turn = []
    for i in range(1, 50):
        before = store.appended
        agent.get_tool_schemas = lambda state, _a=agent: OnboardingAgent.get_tool_schemas(
            _a, type(state)(step=OnboardingStep.COLLECT_NAME)
        )
        await driver.say(f"name {i}")
        per_turn.append(store.appended - before)
    assert set(per_turn) == {4}  # user, assistant(tool call), tool, assistant -- never the history
    assert await store.count(driver.conversation_id) == 200


async def test_save_messages_appends_what_it_is_given():
    """0.3.0's meaning: every message given is appended; history is never rewritten."""
    store = ConversationStore()
    first = [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]
    await store.save_messages("c", first)
    await store.save_messages(
        "c", [{"role": "user", "content": "c"}, {"role": "assistant", "content": "d"}]
    )
    assert [m["content"] for m in await store.get_messages("c")] == ["a", "b", "c", "d"]
    assert await store.get_messages("c", limit=1) == [{"role": "assistant", "content": "d"}]


def test_history_window_starts_at_a_user_message():
    history = [
        {"role": "user", "content": "1"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": "a", "function": {"name": "x"}}],
        },
        {"role": "tool", "tool_call_id": "a", "content": "r"},
        {"role": "assistant", "content": "2"},
        {"role": "user", "content": "3"},
        {"role": "assistant", "content": "4"},
    ]
    assert history_window(history, max_messages=4) == history[4:]
    assert history_window(history, max_messages=10) == history


async def test_concurrent_turns_on_one_conversation_are_serialised_or_busy():
    class SlowLLM(ScriptedLLM):
        async def generate(self, messages, tools=None, **kw):
            await asyncio.sleep(0.05)
            return await super().generate(messages, tools, **kw)

    llm = SlowLLM([tool_call("start"), "one", tool_call("save_name", name="B"), "two"])
    agent = OnboardingAgent(llm_client=llm)
    conversation = uuid.uuid4()
    first, second = await asyncio.gather(
        agent.run(AgentContext.for_message(conversation, "hi")),
        agent.run(AgentContext.for_message(conversation, "B")),
    )
    assert (first.response, second.response) == ("one", "two")
    assert second.state.name == "B"  # the second turn saw the first turn's state

    agent.memory.busy_wait = 0.01
    llm.script.extend([tool_call("save_email", email="b@x.io"), "three"])
    results = await asyncio.gather(
        agent.run(AgentContext.for_message(conversation, "b@x.io")),
        agent.run(AgentContext.for_message(conversation, "again")),
        return_exceptions=True,
    )
    busy = [r for r in results if isinstance(r, JourneyBusy)]
    assert len(busy) == 1 and busy[0].conversation_id == conversation


# -- testing kit ----------------------------------------------------------------------------


async def test_scripted_llm_fails_loudly_when_the_script_runs_out():
    llm = ScriptedLLM(["only one"])
    await llm.generate([{"role": "user", "content": "a"}])
    with pytest.raises(ScriptExhausted, match="no reply left for call #2"):
        await llm.generate([{"role": "user", "content": "b"}])
    assert [c.messages[-1]["content"] for c in llm.calls] == ["a", "b"]
    with pytest.raises(AssertionError, match="never used"):
        ScriptedLLM(["x"]).assert_exhausted()


def test_pytest_plugin_fixtures_work_in_a_user_project(tmp_path):
    test_file = tmp_path / "test_user_journey.py"
    test_file.write_text(
        textwrap.dedent(
            """
            from tests.journeys import OnboardingAgent, OnboardingStep
            from agent_runtime_framework.testing import tool_call

            async def test_onboarding(scripted_llm, journey_driver):
                scripted_llm.call("start").reply("Name?")
                scripted_llm.call("save_name", name="Kim").reply("Email?")
                driver = journey_driver(OnboardingAgent(llm_client=scripted_llm))
                await driver.say("hi")
                driver.assert_step(OnboardingStep.COLLECT_NAME)
                await driver.say("Kim")
                assert driver.state.name == "Kim" and driver.tool_calls == ["save_name"]
                scripted_llm.assert_exhausted()
            """
        )
    )
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:django",
            "-p",
            "no:cacheprovider",
            "-o",
            "asyncio_mode=auto",
            str(test_file),
            "--rootdir",
            str(tmp_path),
            "-c",
            os.devnull,
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert "1 passed" in proc.stdout, proc.stdout + proc.stderr


def test_core_imports_and_runs_without_django_settings():
    code = textwrap.dedent(
        """
        import asyncio, sys
        from tests.journeys import OnboardingAgent
        from agent_runtime_framework.testing import JourneyDriver, ScriptedLLM, tool_call
        import agent_runtime_framework.adapters, agent_runtime_framework.llm
        d = JourneyDriver(OnboardingAgent(llm_client=ScriptedLLM([tool_call("start"), "hi"])))
        asyncio.run(d.say("hello"))
        assert d.step.value == "collect_name"
        conf = sys.modules.get("django.conf")
        assert conf is None or not conf.settings.configured
        print("ok")
        """
    )
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    env["PYTHONPATH"] = os.getcwd()
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert proc.stdout.strip() == "ok", proc.stderr
