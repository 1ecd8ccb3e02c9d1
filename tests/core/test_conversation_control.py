"""Conversation control: switch and resume journeys, correct earlier answers, global tools,
several facts in one message. Scripted models, through the public agent API."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from enum import Enum
from typing import Literal

import pytest

from agent_runtime_framework import (
    AgentContext,
    BaseJourneyState,
    BaseJourneyTools,
    IntentRouter,
    JourneyAgent,
    JourneyNotParked,
    MemoryManager,
    RouteDefinition,
    RoutedJourneyAgent,
    ToolResult,
    tool,
)
from agent_runtime_framework.agents import SWITCH_TOOL
from agent_runtime_framework.testing import JourneyDriver, ScriptedLLM, tool_call

# -- small journeys ------------------------------------------------------------------------


class SignupStep(str, Enum):
    NAME = "name"
    EMAIL = "email"
    DONE = "done"


@dataclass
class SignupState(BaseJourneyState[SignupStep]):
    step: SignupStep = SignupStep.NAME
    name: str = ""
    email: str = ""

    def is_complete(self) -> bool:
        return self.step == SignupStep.DONE


class SignupTools(BaseJourneyTools[SignupState]):
    @tool(steps=[SignupStep.NAME], revisable=True)
    async def save_name(self, name: str) -> str | ToolResult:
        """Save the name."""
        if not name.replace(" ", "").isalpha():
            return ToolResult.fail("That is not a name. What is your name?")
        self.state.name = name
        self.state.step = SignupStep.EMAIL
        return f"Hi {name}! Your email?"

    @tool(steps=[SignupStep.EMAIL])
    async def save_email(self, email: str) -> str | ToolResult:
        """Save the email address."""
        if "@" not in email:
            return ToolResult.fail("That is not an email address.")
        self.state.email = email
        self.state.step = SignupStep.DONE
        return "All set."

    @tool
    async def policy_faq(self, topic: Literal["cancellation", "excess"]) -> str:
        """Answer a question about the policy (offered at every step)."""
        return {"cancellation": "You may cancel within 14 days.", "excess": "The excess is 100."}[
            topic
        ]


class SignupAgent(JourneyAgent[SignupState, SignupTools, SignupStep]):
    tools_class = SignupTools

    @property
    def key(self) -> str:
        return "signup"

    def get_initial_state(self) -> SignupState:
        return SignupState()

    def get_system_prompt(self, state: SignupState) -> str:
        return f"Step {state.step.value}."


class CoverStep(str, Enum):
    COVER = "cover"
    DRIVER = "driver"
    MORE = "more"
    HOME_VALUE = "home_value"
    START = "start"
    DONE = "done"


@dataclass
class CoverState(BaseJourneyState[CoverStep]):
    step: CoverStep = CoverStep.COVER
    cover: str = ""
    ages: list[int] = field(default_factory=list)
    home_value: int = 0
    start: str = ""

    def is_complete(self) -> bool:
        return self.step == CoverStep.DONE


class CoverTools(BaseJourneyTools[CoverState]):
    @tool(
        steps=[CoverStep.COVER],
        revisable=True,
        invalidates=["ages", "home_value", "start"],
    )
    async def choose_cover(self, cover: Literal["car", "home"]) -> str:
        """Car or home."""
        self.state.cover = cover
        self.state.step = CoverStep.DRIVER if cover == "car" else CoverStep.HOME_VALUE
        return "Age?" if cover == "car" else "Value?"

    @tool(steps=[CoverStep.DRIVER], revisable=True)
    async def add_driver(self, age: int) -> str | ToolResult:
        """A driver's age."""
        if not 17 <= age <= 99:
            return ToolResult.fail(f"{age} is out of range.")
        if self.revising is not None and self.state.ages:
            self.state.ages[-1] = age  # a correction replaces the driver, not adds one
        else:
            self.state.ages.append(age)
        self.state.step = CoverStep.MORE
        return "Another driver?"

    @tool(steps=[CoverStep.MORE])
    async def more_drivers(self, add_another: bool) -> str:
        """Another driver?"""
        self.state.step = CoverStep.DRIVER if add_another else CoverStep.START
        return "Age?" if add_another else "Start date?"

    @tool(steps=[CoverStep.HOME_VALUE])
    async def set_home_value(self, value: int) -> str:
        """Home value."""
        self.state.home_value = value
        self.state.step = CoverStep.START
        return "Start date?"

    @tool(steps=[CoverStep.START])
    async def set_start(self, start: str) -> str:
        """Start date."""
        self.state.start = start
        self.state.step = CoverStep.DONE
        return "Quoted."


class CoverAgent(JourneyAgent[CoverState, CoverTools, CoverStep]):
    tools_class = CoverTools

    @property
    def key(self) -> str:
        return "cover"

    def get_initial_state(self) -> CoverState:
        return CoverState()

    def get_system_prompt(self, state: CoverState) -> str:
        return f"Step {state.step.value}."

    def get_step_path(self, state: CoverState) -> list[CoverStep]:
        branch = {
            "car": [CoverStep.DRIVER, CoverStep.MORE],
            "home": [CoverStep.HOME_VALUE],
        }.get(state.cover, [])
        return [CoverStep.COVER, *branch, CoverStep.START, CoverStep.DONE]


class Service(str, Enum):
    SIGNUP = "signup"
    COVER = "cover"


def desk(llm: ScriptedLLM, **kwargs: object) -> RoutedJourneyAgent[Service]:
    router = IntentRouter[Service](
        [
            RouteDefinition(Service.SIGNUP, "open_account", "Open an account", ["account"]),
            RouteDefinition(Service.COVER, "get_quote", "A quote", ["quote", "car"]),
        ]
    )
    return RoutedJourneyAgent(
        router,
        {Service.SIGNUP: SignupAgent(), Service.COVER: CoverAgent()},
        llm_client=llm,
        **kwargs,  # type: ignore[arg-type]
    )


def names(llm: ScriptedLLM, index: int = -1) -> list[str]:
    return llm.calls[index].tool_names


def results_of(llm: ScriptedLLM, index: int) -> list[str]:
    return [m["content"] for m in llm.calls[index].messages if m["role"] == "tool"]


# -- 1. switching and resuming -------------------------------------------------------------


async def test_switch_mid_flow_parks_the_journey_and_starts_the_other_in_the_same_turn():
    llm = ScriptedLLM(
        [
            tool_call("get_quote"),  # routing
            tool_call("choose_cover", cover="car"),
            "How old is the driver?",
            tool_call(SWITCH_TOOL, journey="signup"),  # "actually, open an account instead"
            "What is your name?",  # the signup journey, same turn
        ]
    )
    agent = desk(llm)
    driver = JourneyDriver(agent)
    await driver.say("a quote for my car")
    assert SWITCH_TOOL in names(llm)  # offered beside the step's tools
    switch_schema = next(t for t in llm.calls[-1].tools if t["function"]["name"] == SWITCH_TOOL)
    assert switch_schema["function"]["parameters"]["properties"]["journey"]["enum"] == ["signup"]

    result = await driver.say("Actually no, I want to open an account instead")
    assert result.response == "What is your name?"
    assert result.metadata["journey"] == "signup"
    assert result.metadata["routed_by"] == "switch"
    assert result.metadata["parked"] == ["cover"]
    kinds = [e["type"] for e in result.metadata["control_events"]]
    assert kinds == ["journey.parked", "journey.started"]
    assert result.metadata["control_events"][0] == {
        "type": "journey.parked",
        "journey": "cover",
        "step": "driver",
    }
    assert await agent.current_journey(driver.conversation_id) == Service.SIGNUP
    assert await agent.parked_journeys(driver.conversation_id) == [Service.COVER]
    # The signup's model call came after the switch, with the signup's own tools.
    assert names(llm)[:2] == ["save_name", "policy_faq"]
    assert result.step == SignupStep.NAME


async def test_switching_back_resumes_the_parked_journey_at_its_step_with_its_answers():
    llm = ScriptedLLM(
        [
            tool_call("get_quote"),
            tool_call("choose_cover", cover="car"),
            tool_call("add_driver", age=40),
            "Another driver?",
            tool_call(SWITCH_TOOL, journey="signup"),
            "Your name?",
            tool_call("save_name", name="Ada"),
            "Your email?",
            tool_call(SWITCH_TOOL, journey="cover"),  # "let's get back to my quote"
            "Another driver?",
        ]
    )
    agent = desk(llm)
    driver = JourneyDriver(agent)
    await driver.say("quote for my car, I am 40")
    await driver.say("open an account instead")
    await driver.say("Ada")
    result = await driver.say("let's get back to my quote")
    assert result.metadata["journey"] == "cover"
    assert result.step == CoverStep.MORE and result.state.ages == [40]
    assert result.metadata["parked"] == ["signup"]
    kinds = [(e["type"], e["journey"]) for e in result.metadata["control_events"]]
    assert kinds == [("journey.parked", "signup"), ("journey.resumed", "cover")]
    assert result.metadata["control_events"][1]["step"] == "more"
    # The parked signup kept its answer and step.
    signup_state = await agent.memory.load_state(driver.conversation_id, "signup")
    assert signup_state["name"] == "Ada" and signup_state["step"] == "email"


async def test_switching_away_and_back_many_times_loses_nothing_and_duplicates_nothing():
    script: list[object] = [tool_call("get_quote"), tool_call("choose_cover", cover="car"), "Age?"]
    for _ in range(6):
        script += [tool_call(SWITCH_TOOL, journey="signup"), "Name?"]
        script += [tool_call(SWITCH_TOOL, journey="cover"), "Age?"]
    llm = ScriptedLLM(script)
    agent = desk(llm)
    driver = JourneyDriver(agent)
    await driver.say("car quote")
    for _ in range(6):
        await driver.say("account instead")
        result = await driver.say("back to the quote")
        assert result.step == CoverStep.DRIVER and result.state.cover == "car"
        assert result.metadata["parked"] == ["signup"]
    router_state = await agent.memory.load_state(driver.conversation_id, agent.key)
    assert router_state["parked"] == ["signup"] and router_state["journey"] == "cover"
    llm.assert_exhausted()


async def test_a_switch_to_an_unknown_or_the_current_journey_is_a_tool_error_and_changes_nothing():
    llm = ScriptedLLM(
        [
            tool_call("get_quote"),
            tool_call("choose_cover", cover="car"),
            "Age?",
            tool_call(SWITCH_TOOL, journey="mortgage"),
            tool_call(SWITCH_TOOL, journey="cover"),
            "Sorry, how old is the driver?",
        ]
    )
    agent = desk(llm)
    driver = JourneyDriver(agent)
    await driver.say("car quote")
    result = await driver.say("I want a mortgage")
    errors = results_of(llm, -1)[-2:]
    assert all("invalid arguments for tool 'switch_journey'" in e for e in errors)
    assert "signup" in errors[0]  # the model is told what it may switch to
    assert result.metadata["journey"] == "cover" and result.step == CoverStep.DRIVER
    assert "parked" not in result.metadata
    assert await agent.parked_journeys(driver.conversation_id) == []


async def test_several_parked_journeys_at_most_one_active():
    class Third(str, Enum):
        A = "a"
        B = "b"
        C = "c"

    router = IntentRouter[Third](
        [
            RouteDefinition(Third.A, "go_a", "A"),
            RouteDefinition(Third.B, "go_b", "B"),
            RouteDefinition(Third.C, "go_c", "C"),
        ]
    )

    class SignupB(SignupAgent):
        @property
        def key(self) -> str:
            return "signup-b"

    llm = ScriptedLLM(
        [
            tool_call("go_a"),
            tool_call("choose_cover", cover="home"),
            "Value?",
            tool_call(SWITCH_TOOL, journey="b"),
            "Name?",
            tool_call(SWITCH_TOOL, journey="c"),
            "Name?",
        ]
    )
    agent = RoutedJourneyAgent(
        router, {Third.A: CoverAgent(), Third.B: SignupAgent(), Third.C: SignupB()}, llm
    )
    driver = JourneyDriver(agent)
    await driver.say("a")
    await driver.say("b")
    result = await driver.say("c")
    assert result.metadata["parked"] == ["cover", "signup"]
    assert await agent.current_journey(driver.conversation_id) == Third.C


async def test_a_model_bouncing_between_journeys_stops_after_the_switch_limit():
    llm = ScriptedLLM(
        [
            tool_call("get_quote"),
            "Car or home?",
            tool_call(SWITCH_TOOL, journey="signup"),
            tool_call(SWITCH_TOOL, journey="cover"),
            "Car or home?",  # third run of the turn: no switch tool any more
        ]
    )
    agent = desk(llm)
    driver = JourneyDriver(agent)
    await driver.say("quote")
    result = await driver.say("whatever")
    assert SWITCH_TOOL not in names(llm, -1)
    assert result.metadata["journey"] == "cover"
    assert len([m for m in result.messages if m["role"] == "user"]) == 1


async def test_switching_to_a_completed_journey_starts_it_afresh_and_resume_refuses():
    llm = ScriptedLLM(
        [
            tool_call("open_account"),
            "Name?",
            tool_call("save_name", name="Ada"),
            "Email?",
            tool_call("save_email", email="ada@example.com"),
            "All set.",  # complete: the next message is routed again
            tool_call("get_quote"),
            "Car or home?",
            tool_call(SWITCH_TOOL, journey="signup"),
            "Name?",
        ]
    )
    agent = desk(llm)
    driver = JourneyDriver(agent)
    await driver.say("account")
    await driver.say("Ada")
    done = await driver.say("ada@example.com")
    assert done.complete and "parked" not in done.metadata
    with pytest.raises(JourneyNotParked):
        await agent.resume(driver.conversation_id, Service.SIGNUP)
    await driver.say("a quote")
    result = await driver.say("another account")
    started = result.metadata["control_events"][-1]
    assert started == {
        "type": "journey.started",
        "journey": "signup",
        "how": "switch",
        "again": True,
    }
    assert result.step == SignupStep.NAME and result.state.name == ""


async def test_resume_and_abandon_for_hosts():
    llm = ScriptedLLM(
        [
            tool_call("get_quote"),
            tool_call("choose_cover", cover="car"),
            "Age?",
            tool_call(SWITCH_TOOL, journey="signup"),
            "Name?",
        ]
    )
    agent = desk(llm)
    driver = JourneyDriver(agent)
    cid = driver.conversation_id
    await driver.say("car quote")
    await driver.say("account")
    events = await agent.resume(cid, Service.COVER)
    assert [e["type"] for e in events] == ["journey.parked", "journey.resumed"]
    assert await agent.current_journey(cid) == Service.COVER
    assert await agent.parked_journeys(cid) == [Service.SIGNUP]
    with pytest.raises(JourneyNotParked, match="active"):
        await agent.resume(cid, Service.COVER)
    assert (await agent.abandon(cid, Service.SIGNUP))[0]["type"] == "journey.abandoned"
    with pytest.raises(JourneyNotParked, match="abandoned"):
        await agent.resume(cid, Service.SIGNUP)
    assert await agent.parked_journeys(cid) == []
    await agent.abandon(cid)  # the active one
    assert await agent.current_journey(cid) is None
    with pytest.raises(JourneyNotParked):
        await agent.abandon(cid)


async def test_two_turns_racing_on_a_switch_are_serialised():
    gate = asyncio.Event()

    class SlowLLM(ScriptedLLM):
        async def generate(self, messages, tools=None, **kwargs):  # type: ignore[no-untyped-def]
            if tools and any(t["function"]["name"] == SWITCH_TOOL for t in tools):
                await gate.wait()
            return await super().generate(messages, tools, **kwargs)

    llm = SlowLLM(
        [
            tool_call("get_quote"),
            "Car or home?",
            tool_call(SWITCH_TOOL, journey="signup"),
            "Name?",
            tool_call(SWITCH_TOOL, journey="cover"),
            "Car or home?",
        ]
    )
    gate.set()
    agent = desk(llm)
    cid = uuid.uuid4()
    await agent.run(AgentContext.for_message(cid, "quote"))
    gate.clear()
    first = asyncio.create_task(agent.run(AgentContext.for_message(cid, "account instead")))
    await asyncio.sleep(0.01)
    second = asyncio.create_task(agent.run(AgentContext.for_message(cid, "back to the quote")))
    await asyncio.sleep(0.01)
    gate.set()
    a, b = await asyncio.gather(first, second)
    assert a.metadata["journey"] == "signup" and b.metadata["journey"] == "cover"
    assert await agent.parked_journeys(cid) == [Service.SIGNUP]


async def test_a_busy_conversation_refuses_a_racing_switch():
    from agent_runtime_framework import JourneyBusy

    gate = asyncio.Event()

    class SlowLLM(ScriptedLLM):
        async def generate(self, messages, tools=None, **kwargs):  # type: ignore[no-untyped-def]
            await gate.wait()
            return await super().generate(messages, tools, **kwargs)

    llm = SlowLLM([tool_call("get_quote"), "Car or home?"])
    agent = desk(llm, memory=MemoryManager(busy_wait=0.05))
    cid = uuid.uuid4()
    first = asyncio.create_task(agent.run(AgentContext.for_message(cid, "quote")))
    await asyncio.sleep(0.01)
    with pytest.raises(JourneyBusy):
        await agent.run(AgentContext.for_message(cid, "account instead"))
    gate.set()
    await first


# -- 2. corrections ---------------------------------------------------------------------------


async def test_a_correction_of_an_earlier_answer_keeps_the_current_step():
    llm = ScriptedLLM(
        [
            tool_call("save_name", name="Bob"),
            "Your email?",
            tool_call("save_name", name="Robert"),  # "Actually, my name is Robert"
            "Thanks Robert. Your email?",
        ]
    )
    driver = JourneyDriver(SignupAgent(llm))
    await driver.say("Bob")
    offered = {t["function"]["name"]: t for t in llm.calls[-1].tools}
    assert "save_name" in offered and "save_email" in offered
    assert offered["save_name"]["function"]["description"].startswith(
        "Correct an earlier answer (step 'name')"
    )
    result = await driver.say("Actually, my name is Robert")
    assert result.state.name == "Robert" and result.step == SignupStep.EMAIL
    assert results_of(llm, -1)[-1].startswith("Corrected the answer of step 'name'")
    event = result.metadata["control_events"][0]
    assert event["type"] == "journey.revised" and event["continue_at"] == "email"


async def test_no_correction_of_an_unreached_or_non_revisable_step():
    llm = ScriptedLLM(
        [
            tool_call("save_email", email="a@example.com"),  # not reached yet
            "What is your name?",
            tool_call("choose_cover", cover="home"),
            "Value?",
            tool_call("set_home_value", value=300000),
            "Start?",
            tool_call("set_home_value", value=1),  # HOME_VALUE is not revisable
            "Start?",
        ]
    )
    signup = JourneyDriver(SignupAgent(llm))
    result = await signup.say("a@example.com")
    assert "tool 'save_email' is not available at step 'name'" in results_of(llm, -1)[-1]
    assert result.state.email == "" and result.step == SignupStep.NAME
    cover = JourneyDriver(CoverAgent(llm))
    await cover.say("home")
    await cover.say("300000")
    result = await cover.say("make it 1")
    assert "tool 'set_home_value' is not available at step 'start'" in results_of(llm, -1)[-1]
    assert result.state.home_value == 300000 and result.step == CoverStep.START


async def test_a_correction_that_fails_validation_keeps_the_old_answer():
    llm = ScriptedLLM(
        [
            tool_call("save_name", name="Ada"),
            "Email?",
            tool_call("save_name", name="R2-D2"),
            "That is not a name.",
        ]
    )
    driver = JourneyDriver(SignupAgent(llm))
    await driver.say("Ada")
    result = await driver.say("actually it's R2-D2")
    assert result.state.name == "Ada" and result.step == SignupStep.EMAIL
    assert results_of(llm, -1)[-1] == "That is not a name. What is your name?"
    assert "control_events" not in result.metadata


async def test_a_correction_that_changes_the_path_clears_what_it_invalidates():
    llm = ScriptedLLM(
        [
            tool_call("choose_cover", cover="car"),
            tool_call("add_driver", age=30),
            tool_call("more_drivers", add_another=False),
            "Start date?",
            tool_call("choose_cover", cover="home"),  # "actually, home cover instead"
            "Value?",
        ]
    )
    driver = JourneyDriver(CoverAgent(llm))
    await driver.say("car, 30, no more")
    assert driver.step == CoverStep.START
    assert {"choose_cover", "add_driver"} <= set(names(llm))  # both passed and revisable
    result = await driver.say("actually home cover instead")
    assert result.step == CoverStep.HOME_VALUE
    assert result.state.cover == "home" and result.state.ages == []
    assert result.metadata["control_events"][0]["cleared"] == ["ages"]


async def test_an_unchanged_or_compatible_correction_returns_to_the_step_it_was_at():
    llm = ScriptedLLM(
        [
            tool_call("choose_cover", cover="car"),
            tool_call("add_driver", age=30),
            "Another driver?",
            tool_call("choose_cover", cover="car"),  # the same answer again
            "Another driver?",
            tool_call("add_driver", age=31),  # a correction of the driver's age
            "Another driver?",
        ]
    )
    driver = JourneyDriver(CoverAgent(llm))
    await driver.say("car 30")
    same = await driver.say("car, as I said")
    assert same.step == CoverStep.MORE and same.state.ages == [30]
    fixed = await driver.say("sorry, the driver is 31")
    assert fixed.step == CoverStep.MORE and fixed.state.ages == [31]


async def test_journey_level_revisable_steps():
    class Strict(SignupAgent):
        revisable_steps = ()  # nothing but what the tools declare

    class Lenient(CoverAgent):
        revisable_steps = (CoverStep.HOME_VALUE,)

    assert bool(Strict().revisions)  # save_name says revisable=True itself
    llm = ScriptedLLM(
        [
            tool_call("choose_cover", cover="home"),
            tool_call("set_home_value", value=300000),
            "Start?",
            tool_call("set_home_value", value=400000),
            "Start?",
        ]
    )
    driver = JourneyDriver(Lenient(llm))
    await driver.say("home 300000")
    result = await driver.say("make it 400000")
    assert result.state.home_value == 400000 and result.step == CoverStep.START


# -- 3. global tools and side questions ----------------------------------------------------


async def test_a_side_question_is_answered_and_the_journey_stays_at_its_step():
    llm = ScriptedLLM(
        [
            tool_call("save_name", name="Ada"),
            "Email?",
            tool_call("policy_faq", topic="cancellation"),
            "You may cancel within 14 days. Now, your email?",
            tool_call("save_email", email="ada@example.com"),
            "All set.",
        ]
    )
    driver = JourneyDriver(SignupAgent(llm))
    await driver.say("Ada")
    before = driver.state
    result = await driver.say("can I cancel later?")
    assert result.step == SignupStep.EMAIL and result.state == before
    assert results_of(llm, -1)[-1] == "You may cancel within 14 days."
    assert "policy_faq" in names(llm, 0) and "policy_faq" in names(llm, -1)
    nxt = await driver.say("ada@example.com")
    assert nxt.complete and nxt.state.name == "Ada"


# -- 4. several facts in one message -------------------------------------------------------


async def test_several_facts_in_one_answer_move_through_several_steps():
    llm = ScriptedLLM()
    llm.calls_many(
        tool_call("save_name", name="Grace Hopper"),
        tool_call("save_email", email="grace@example.com"),
    ).reply("All set, Grace.")
    driver = JourneyDriver(SignupAgent(llm))
    result = await driver.say("Hi, I'm Grace Hopper and my email is grace@example.com")
    assert result.complete and result.state.email == "grace@example.com"
    assert [c.status for c in result.tool_calls] == ["ok", "ok"]
    assert [c.step_after for c in result.tool_calls] == [SignupStep.EMAIL, SignupStep.DONE]


async def test_several_facts_as_sequential_answers_in_one_turn():
    llm = ScriptedLLM(
        [
            tool_call("choose_cover", cover="car"),
            tool_call("add_driver", age=30),
            "Another driver?",
        ]
    )
    driver = JourneyDriver(CoverAgent(llm))
    result = await driver.say("I'm 30 and want car insurance")
    assert result.step == CoverStep.MORE and result.state.ages == [30]
    assert names(llm, 1)[0] == "add_driver"  # the step's tools were re-read in between


async def test_after_a_journey_completes_routing_back_to_a_parked_one_resumes_it():
    llm = ScriptedLLM(
        [
            tool_call("get_quote"),
            tool_call("choose_cover", cover="car"),
            "Age?",
            tool_call(SWITCH_TOOL, journey="signup"),
            "Name?",
            tool_call("save_name", name="Ada"),
            "Email?",
            tool_call("save_email", email="ada@example.com"),
            "All set.",
            tool_call("get_quote"),  # routing again, now to the parked quote
            "How old is the driver?",
        ]
    )
    agent = desk(llm)
    driver = JourneyDriver(agent)
    await driver.say("car quote")
    await driver.say("account instead")
    await driver.say("Ada")
    done = await driver.say("ada@example.com")
    assert done.complete and done.metadata["parked"] == ["cover"]
    assert await agent.current_journey(driver.conversation_id) is None
    back = await driver.say("back to my quote")
    assert back.metadata["journey"] == "cover" and back.step == CoverStep.DRIVER
    assert back.metadata["control_events"] == [
        {"type": "journey.resumed", "journey": "cover", "step": "driver"}
    ]
    assert "parked" not in back.metadata
