"""The example journeys complete with the offline stand-in model and plain user messages.

This is the promise of the demo: with no API key, a newcomer types natural answers and
reaches the end of every journey, directly or through the front desk. The stand-in is
deterministic, so each reply can be checked.
"""

from __future__ import annotations

import datetime as dt

import pytest

from agent_runtime_framework.llm.standin import OfflineStandInLLM
from agent_runtime_framework.testing import JourneyDriver
from example_project.journeys import build_agents

TODAY = dt.date.today()
START = (TODAY + dt.timedelta(days=10)).isoformat()
INCIDENT = (TODAY - dt.timedelta(days=3)).isoformat()

# (user message, expected step after the turn, a phrase the reply contains)
Turn = tuple[str, str | None, str]
#: Accepting a quote binds the policy only once the user confirms it (issue 11).
CONFIRM = "Before I go ahead, please confirm: accept this quote and bind the policy."

ONBOARDING: list[Turn] = [
    ("Hi", "welcome", "What is your name?"),
    ("I'm Ada Lovelace", "collect_email", "Great, Ada Lovelace!"),
    ("ada@example.com", "complete", "You're all set, Ada Lovelace"),
]

QUOTE_CAR: list[Turn] = [
    ("Hello", "choose_cover", "car or home cover?"),
    ("Car insurance, please", "add_driver", "How old is the main driver?"),
    ("I'm 15", "add_driver", "so 15 is out of range"),
    ("19", "more_drivers", "Driver 1 added (age 19)"),
    ("yes", "add_driver", "next driver"),
    ("She is 52", "more_drivers", "Driver 2 added (age 52)"),
    ("no", "start_date", "When should the cover start?"),
    ("2020-01-01", "start_date", "is out of range"),
    (START, "review", "Would you like to accept this quote?"),
    ("yes", "review", CONFIRM),
    ("yes", "complete", "Your quote reference is Q-"),
]

QUOTE_HOME: list[Turn] = [
    ("I need home cover", "home_value", "rebuild your home"),
    ("25,000", "home_value", "so 25,000 is out of range"),
    ("250,000", "more_items", "Rebuild value set to 250,000"),
    ("yes", "add_item", "What is the item"),
    ("A bicycle worth 1500", "more_items", "Added A bicycle (1,500)"),
    ("no", "start_date", "When should the cover start?"),
    (START, "review", "home cover"),
    ("yes please", "review", CONFIRM),
    ("no", "review", "All right, I haven't done that. Would you like to accept this quote?"),
    ("ok", "review", CONFIRM),
    ("Sure, go ahead", "complete", "Your quote reference is Q-"),
]

CLAIM: list[Turn] = [
    ("I want to file a claim", "policy_number", "What is your policy number?"),
    ("It's POL-123456", "incident_date", "On what date did it happen?"),
    (INCIDENT, "incident_kind", "collision, theft, fire"),
    ("theft", "description", "Sorry to hear about the theft"),
    ("My bike was stolen from the garden shed", "amount", "how much"),
    ("about 1200", "confirm", "Shall I file it now?"),
    ("yes", "complete", "Your claim reference is CLM-"),
]


async def play(agent: object, turns: list[Turn]) -> JourneyDriver:
    driver = JourneyDriver(agent)
    for text, step, phrase in turns:
        result = await driver.say(text)
        # A held call ends the turn on the question that asks for the confirmation.
        expected = "approval_pending" if phrase == CONFIRM else "text_response"
        assert result.stopped_reason == expected, (text, result.stopped_reason)
        assert phrase in result.response, f"after {text!r}: {result.response!r}"
        assert result.step_value == step, f"after {text!r}: step {result.step_value!r}"
    assert driver.last.complete
    return driver


@pytest.mark.parametrize(
    ("key", "turns"),
    [
        ("onboarding", ONBOARDING),
        ("quote", QUOTE_CAR),
        ("quote", QUOTE_HOME),
        ("claim", CLAIM),
    ],
    ids=["onboarding", "quote-car", "quote-home", "claim"],
)
async def test_each_journey_completes_with_the_standin(key: str, turns: list[Turn]) -> None:
    agent = build_agents(OfflineStandInLLM())[key]
    driver = await play(agent, turns)
    if key == "quote":
        assert driver.state.reference.startswith("Q-")


async def test_claim_with_the_standin_reaches_the_backend() -> None:
    agents = build_agents(OfflineStandInLLM())
    driver = await play(agents["claim"], CLAIM)
    backend = agents["claim"].backend_client
    assert backend.get_claim(driver.state.claim_reference) is not None
    assert driver.state.description == "My bike was stolen from the garden shed"


@pytest.mark.parametrize(
    ("first_message", "journey", "step"),
    [
        ("I'd like to open an account", "onboarding", "collect_name"),
        # Routed by keyword; the stand-in then offers the sentence as a name, which
        # save_name refuses, asking for the name (the step stays at welcome).
        ("I want to sign up", "onboarding", "welcome"),
        ("Can I get a quote for my car?", "quote", "add_driver"),
        ("How much would home insurance cost?", "quote", "home_value"),
        ("I need to file a claim", "claim", "policy_number"),
        ("Someone crashed into me", "claim", "policy_number"),
    ],
)
async def test_front_desk_routes_the_first_message(
    first_message: str, journey: str, step: str
) -> None:
    front_desk = build_agents(OfflineStandInLLM())["front-desk"]
    driver = JourneyDriver(front_desk)
    result = await driver.say(first_message)
    assert result.metadata["agent_key"] == journey
    assert result.step_value == step
    assert result.response.endswith("?"), result.response


async def test_front_desk_asks_when_unclear_then_completes_a_journey() -> None:
    front_desk = build_agents(OfflineStandInLLM())["front-desk"]
    driver = JourneyDriver(front_desk)
    result = await driver.say("Hello")
    assert "open an account, get a quote, or file a claim?" in result.response
    assert "agent_key" not in result.metadata
    for text, step, phrase in [("I'd like to open an account", "collect_name", "name")] + [
        turn for turn in ONBOARDING[1:]
    ]:
        result = await driver.say(text)
        assert result.metadata["agent_key"] == "onboarding"
        assert result.step_value == step and phrase in result.response
    assert result.complete
    # Complete: the next message is routed afresh.
    result = await driver.say("Now I need a quote for my home")
    assert result.metadata["agent_key"] == "quote"
    assert result.step_value == "home_value"
