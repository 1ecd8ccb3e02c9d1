"""The example journeys, driven by a ScriptedLLM: transitions, validation, step scoping.

Each test plays the model's side exactly (which tool, which arguments), so it checks the
journeys' own logic: what each tool does to the state, what it refuses, and which tools
the model is offered at each step.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from agent_runtime_framework import StateSerializer
from agent_runtime_framework.agents.introspect import journey_steps
from agent_runtime_framework.testing import JourneyDriver, ScriptedLLM
from example_project.journeys import build_agents
from example_project.journeys.backend import ClaimsBackendClient
from example_project.journeys.claim import ClaimAgent, ClaimState, ClaimStep
from example_project.journeys.onboarding import OnboardingAgent, OnboardingState, OnboardingStep
from example_project.journeys.quote import (
    MAX_DRIVERS,
    QuoteAgent,
    QuoteState,
    QuoteStep,
    Valuable,
    price_quote,
)

TODAY = dt.date.today()


def in_days(days: int) -> str:
    # The date when the test runs, not when the module was collected: a suite collected
    # before midnight (the process's time zone) and run after it must still pass.
    return (dt.date.today() + dt.timedelta(days=days)).isoformat()


# -- onboarding ------------------------------------------------------------------------------


async def test_onboarding_collects_name_then_email() -> None:
    llm = ScriptedLLM()
    llm.call("save_name", name="Ada Lovelace").reply("Hi Ada, your email?")
    llm.call("save_email", email="Ada@Example.com").reply("All set!")
    driver = JourneyDriver(OnboardingAgent(llm))

    await driver.say("I'm Ada Lovelace")
    driver.assert_step(OnboardingStep.COLLECT_EMAIL)
    assert driver.state.name == "Ada Lovelace"
    # The model was offered both welcome tools on the first call, and the email tool once
    # the name was saved (the name stays on offer as a correction: it is revisable).
    assert set(llm.calls[0].tool_names) == {"open_account", "save_name"}
    assert llm.calls[1].tool_names == ["save_email", "save_name"]
    assert llm.calls[1].tools[1]["function"]["description"].startswith("Correct an earlier")

    result = await driver.say("Ada@Example.com")
    assert result.complete
    assert driver.state.email == "ada@example.com"
    llm.assert_exhausted()


async def test_onboarding_refuses_a_sentence_as_a_name_and_stays() -> None:
    llm = ScriptedLLM()
    llm.call("save_name", name="I would like to open an account").reply("What is your name?")
    driver = JourneyDriver(OnboardingAgent(llm))
    await driver.say("I would like to open an account")
    driver.assert_step(OnboardingStep.WELCOME)
    assert driver.state.name == ""
    tool_result = llm.calls[1].messages[-1]
    assert tool_result["role"] == "tool"
    assert "just need your name" in tool_result["content"]


async def test_onboarding_refuses_a_bad_email() -> None:
    llm = ScriptedLLM()
    llm.call("save_name", name="Ada").reply("Email?")
    llm.call("save_email", email="not-an-email").reply("That is not an email address.")
    driver = JourneyDriver(OnboardingAgent(llm))
    await driver.say("Ada")
    await driver.say("not-an-email")
    driver.assert_step(OnboardingStep.COLLECT_EMAIL)
    assert driver.state.email == ""


async def test_onboarding_tool_of_another_step_is_not_executed() -> None:
    llm = ScriptedLLM()
    llm.call("save_email", email="ada@example.com").reply("Sorry, what is your name?")
    driver = JourneyDriver(OnboardingAgent(llm))
    await driver.say("ada@example.com")
    driver.assert_step(OnboardingStep.WELCOME)
    assert driver.rejected_calls == ["save_email"]


# -- quote -----------------------------------------------------------------------------------


async def test_quote_car_branch_loops_over_drivers_and_refuses_an_underage_driver() -> None:
    llm = ScriptedLLM()
    llm.call("choose_cover", cover="car").reply("How old is the driver?")
    llm.call("add_driver", age=15).reply("Too young, how old?")
    llm.call("add_driver", age=19).reply("Another driver?")
    llm.call("more_drivers", add_another=True).reply("Age?")
    llm.call("add_driver", age=80).reply("Another driver?")
    llm.call("more_drivers", add_another=False).reply("Start date?")
    llm.call("set_start_date", start_date=in_days(-1)).reply("Not in the past.")
    llm.call("set_start_date", start_date=in_days(5)).reply("Accept?")
    # Binding waits for the user's confirmation: the call is held, the run ends.
    llm.call("accept_quote", accept=True)
    llm.call("answer_approval", decision="approve").reply("Done.")
    driver = JourneyDriver(QuoteAgent(llm))

    await driver.say("A car quote please")
    driver.assert_step(QuoteStep.ADD_DRIVER)
    await driver.say("15")
    driver.assert_step(QuoteStep.ADD_DRIVER)  # refused: the step did not move
    assert driver.state.driver_ages == []
    refusal = llm.calls[3].messages[-1]["content"]
    assert "17 to 99" in refusal and "15" in refusal
    await driver.say("19")
    await driver.say("yes")
    driver.assert_step(QuoteStep.ADD_DRIVER)
    await driver.say("80")
    await driver.say("no")
    driver.assert_step(QuoteStep.START_DATE)
    await driver.say("yesterday")
    driver.assert_step(QuoteStep.START_DATE)
    assert driver.state.start_date is None
    await driver.say("in five days")
    driver.assert_step(QuoteStep.REVIEW)
    assert driver.state.driver_ages == [19, 80]
    assert driver.state.annual_premium == Decimal(320 + 450 + 220)
    result = await driver.say("yes")
    assert result.stopped_reason == "approval_pending"
    assert "please confirm: accept this quote and bind the policy" in result.response
    driver.assert_step(QuoteStep.REVIEW)
    assert driver.state.reference == ""  # not bound yet
    result = await driver.say("yes, go ahead")
    assert result.complete
    assert driver.state.reference.startswith("Q-")
    llm.assert_exhausted()


async def test_quote_home_branch_lists_valuables() -> None:
    llm = ScriptedLLM()
    llm.call("choose_cover", cover="home").reply("Rebuild value?")
    llm.call("set_home_value", rebuild_value=2_000).reply("Too low.")
    llm.call("set_home_value", rebuild_value=300_000).reply("Valuables?")
    llm.call("more_items", add_another=True).reply("Which item?")
    llm.call("add_item", description="Road bike worth 2500", value=2500).reply("Another?")
    llm.call("more_items", add_another=False).reply("Start date?")
    llm.call("set_start_date", start_date=in_days(0)).reply("Accept?")
    driver = JourneyDriver(QuoteAgent(llm))

    await driver.say("home insurance")
    # Branching: the home branch's tool is offered, none of the car branch's (beside the
    # global FAQ and the cover, which stays on offer as a correction).
    assert llm.calls[1].tool_names == ["set_home_value", "policy_faq", "choose_cover"]
    await driver.say("2000")
    driver.assert_step(QuoteStep.HOME_VALUE)
    await driver.say("300000")
    await driver.say("yes")
    await driver.say("Road bike worth 2500")
    assert driver.state.valuables == [Valuable("Road bike", Decimal("2500.00"))]
    await driver.say("no more")
    await driver.say("today")
    driver.assert_step(QuoteStep.REVIEW)
    assert driver.state.annual_premium == Decimal("517.50")  # 150 + 330 + 37.50


async def test_quote_declined_starts_over() -> None:
    llm = ScriptedLLM()
    state = QuoteState(
        step=QuoteStep.REVIEW,
        cover="car",
        driver_ages=[40],
        start_date=TODAY,
        annual_premium=Decimal(410),
    )
    agent = QuoteAgent(llm)
    driver = JourneyDriver(agent)
    await agent.memory.save_state(driver.conversation_id, agent.key, state.to_dict())
    llm.call("accept_quote", accept=False).reply("Car or home?")
    await driver.say("no thanks")
    assert driver.state == QuoteState()


async def test_quote_caps_the_number_of_drivers() -> None:
    llm = ScriptedLLM()
    agent = QuoteAgent(llm)
    driver = JourneyDriver(agent)
    full = QuoteState(step=QuoteStep.MORE_DRIVERS, cover="car", driver_ages=[30] * MAX_DRIVERS)
    await agent.memory.save_state(driver.conversation_id, agent.key, full.to_dict())
    llm.call("more_drivers", add_another=True).reply("That is the maximum.")
    await driver.say("yes, one more")
    driver.assert_step(QuoteStep.MORE_DRIVERS)


def test_price_quote_needs_a_cover() -> None:
    with pytest.raises(ValueError, match="kind of cover"):
        price_quote(QuoteState())


def test_quote_state_round_trips_through_json_types() -> None:
    state = QuoteState(
        step=QuoteStep.REVIEW,
        cover="home",
        home_value=250_000,
        valuables=[Valuable("Piano", Decimal("8000.00"))],
        start_date=TODAY,
        annual_premium=Decimal("545.00"),
        reference="Q-ABC123",
    )
    data = StateSerializer.dump(state)
    assert data["start_date"] == TODAY.isoformat()
    assert data["valuables"] == [{"description": "Piano", "value": "8000.00"}]
    assert StateSerializer.load(QuoteState, data) == state


# -- claim -----------------------------------------------------------------------------------


async def test_claim_files_through_the_backend_client() -> None:
    backend = ClaimsBackendClient()
    llm = ScriptedLLM()
    llm.call("save_policy_number", policy_number="my policy is pol 123456").reply("Date?")
    llm.call("save_incident_date", incident_date=in_days(1)).reply("Future dates, no.")
    llm.call("save_incident_date", incident_date=in_days(-400)).reply("Too old.")
    llm.call("save_incident_date", incident_date=in_days(-2)).reply("What happened?")
    llm.call("choose_incident_kind", kind="storm").reply("Describe it.")
    llm.call("describe_incident", description="Tree").reply("More please.")
    llm.call("describe_incident", description="A tree fell on the garage roof").reply("Cost?")
    llm.call("estimate_amount", amount=4800).reply("File it?")
    llm.call("confirm_claim", confirm=True).reply("Filed.")
    driver = JourneyDriver(ClaimAgent(llm, backend_client=backend))

    await driver.say("my policy is pol 123456")
    assert driver.state.policy_number == "POL-123456"
    for text in ("tomorrow", "last year", "two days ago"):
        await driver.say(text)
    driver.assert_step(ClaimStep.INCIDENT_KIND)
    assert driver.state.incident_date == TODAY - dt.timedelta(days=2)
    await driver.say("storm")
    await driver.say("Tree")
    driver.assert_step(ClaimStep.DESCRIPTION)
    await driver.say("A tree fell on the garage roof")
    await driver.say("4800")
    driver.assert_step(ClaimStep.CONFIRM)
    assert backend.filed_count == 0
    result = await driver.say("yes")
    assert result.complete
    reference = driver.state.claim_reference
    assert reference.startswith("CLM-")
    receipt = backend.get_claim(reference)
    assert receipt is not None and receipt.policy_number == "POL-123456"
    llm.assert_exhausted()


async def test_claim_refused_by_the_backend_stays_at_confirm() -> None:
    backend = ClaimsBackendClient(cancelled_policies=frozenset({"POL-999999"}))
    llm = ScriptedLLM()
    agent = ClaimAgent(llm, backend_client=backend)
    driver = JourneyDriver(agent)
    ready = ClaimState(
        step=ClaimStep.CONFIRM,
        policy_number="POL-999999",
        incident_date=TODAY,
        kind="fire",
        description="Kitchen fire",
        amount=Decimal("900.00"),
    )
    await agent.memory.save_state(driver.conversation_id, agent.key, ready.to_dict())
    llm.call("confirm_claim", confirm=True).reply("Sorry, your policy is cancelled.")
    await driver.say("yes")
    driver.assert_step(ClaimStep.CONFIRM)
    assert "cancelled" in llm.calls[1].messages[-1]["content"]
    assert backend.filed_count == 0


async def test_claim_not_confirmed_goes_back_to_the_details() -> None:
    llm = ScriptedLLM()
    agent = ClaimAgent(llm)
    driver = JourneyDriver(agent)
    ready = ClaimState(
        step=ClaimStep.CONFIRM,
        policy_number="POL-123456",
        incident_date=TODAY,
        kind="theft",
        description="Bike stolen",
        amount=Decimal("700.00"),
    )
    await agent.memory.save_state(driver.conversation_id, agent.key, ready.to_dict())
    llm.call("confirm_claim", confirm=False).reply("When did it happen?")
    await driver.say("no, the date is wrong")
    driver.assert_step(ClaimStep.INCIDENT_DATE)


async def test_claims_backend_refuses_bad_input() -> None:
    from example_project.journeys.backend import ClaimRejected

    backend = ClaimsBackendClient()
    with pytest.raises(ClaimRejected, match="not a policy number"):
        await backend.file_claim(
            policy_number="123",
            incident_date=TODAY,
            kind="fire",
            description="x",
            amount=Decimal(1),
        )
    with pytest.raises(ClaimRejected, match="adjuster"):
        await backend.file_claim(
            policy_number="POL-123456",
            incident_date=TODAY,
            kind="fire",
            description="x",
            amount=Decimal(1_000_000),
        )
    first = await backend.file_claim(
        policy_number="POL-123456",
        incident_date=TODAY,
        kind="fire",
        description="x",
        amount=Decimal(10),
    )
    second = await backend.file_claim(
        policy_number="POL-123456",
        incident_date=TODAY,
        kind="fire",
        description="x",
        amount=Decimal(10),
    )
    assert first.reference != second.reference
    assert backend.filed_count == 2


# -- every journey, structurally --------------------------------------------------------------


@pytest.mark.parametrize("key", ["onboarding", "quote", "claim"])
def test_every_step_has_a_prompt_and_only_real_tools(key: str) -> None:
    agent = build_agents(ScriptedLLM())[key]
    state = agent.get_initial_state()
    offered: set[str] = set()
    for step in journey_steps(agent):
        state.step = step
        assert agent.get_system_prompt(state).strip(), f"{key}: no prompt at {step}"
        for schema in agent.get_tool_schemas(state):
            offered.add(schema.name)
            assert callable(getattr(agent.tools_class, schema.name))
            assert schema.description, f"{key}: tool {schema.name} has no description"
    declared = {spec.name for spec, _ in agent.tools_class.declared_tools()}
    assert offered == declared, "every tool is offered at some step"
    # Terminal steps offer no step tools (only global ones: the policy FAQ).
    state.step = journey_steps(agent)[-1]
    assert [s.name for s in agent.get_tool_schemas(state)] in ([], ["policy_faq"])
    assert agent.is_terminal_state(state)


@pytest.mark.parametrize(
    ("state_cls", "step_cls"),
    [(OnboardingState, OnboardingStep), (QuoteState, QuoteStep), (ClaimState, ClaimStep)],
)
def test_states_serialize_without_hand_written_code(state_cls: type, step_cls: type) -> None:
    assert "to_dict" not in vars(state_cls) and "from_dict" not in vars(state_cls)
    state = state_cls()
    assert StateSerializer.load(state_cls, StateSerializer.dump(state)) == state
    assert isinstance(state.step, step_cls)


def test_build_agents_keys_and_front_desk_first() -> None:
    agents = build_agents(ScriptedLLM())
    assert list(agents) == ["front-desk", "onboarding", "quote", "claim"]
    front_desk = agents["front-desk"]
    # The front desk routes to the very journeys registered on their own.
    for journey in front_desk.agents.values():
        assert journey is agents[journey.key]
        assert journey.memory is front_desk.memory


async def test_claim_confirm_with_missing_details_goes_back() -> None:
    llm = ScriptedLLM()
    agent = ClaimAgent(llm)
    driver = JourneyDriver(agent)
    edited = ClaimState(step=ClaimStep.CONFIRM, policy_number="POL-123456")
    await agent.memory.save_state(driver.conversation_id, agent.key, edited.to_dict())
    llm.call("confirm_claim", confirm=True).reply("When did it happen?")
    await driver.say("yes")
    driver.assert_step(ClaimStep.INCIDENT_DATE)
    assert agent.backend_client.filed_count == 0
