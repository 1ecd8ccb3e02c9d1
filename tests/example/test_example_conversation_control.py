"""Issue 10 with the offline stand-in and plain messages: switch and resume journeys at the
front desk, correct earlier answers, several facts in one message, numbers with thousands
separators and currency signs, refusals that say why."""

from __future__ import annotations

import datetime as dt

from agent_runtime_framework.llm.standin import OfflineStandInLLM
from agent_runtime_framework.testing import JourneyDriver
from example_project.journeys import FRONT_DESK_KEY, build_agents

TODAY = dt.date.today()


def agent(key: str = FRONT_DESK_KEY) -> object:
    return build_agents(OfflineStandInLLM())[key]


async def test_switch_from_a_quote_to_a_claim_ask_for_help_and_resume_the_quote() -> None:
    desk = agent()
    driver = JourneyDriver(desk)
    first = await driver.say("I'd like a quote for my car")
    assert first.metadata["journey"] == "quote" and first.step.value == "add_driver"

    switched = await driver.say("Actually no, I want to file a claim instead")
    assert switched.metadata["journey"] == "claim"
    assert switched.step.value == "policy_number"
    assert switched.response == "Sure. What is your policy number?"
    assert switched.metadata["parked"] == ["quote"]

    helped = await driver.say("help")
    assert helped.step.value == "policy_number"
    assert "What is your policy number?" in helped.response
    assert "onboarding, quote" in helped.response  # what it could switch to

    back = await driver.say("let's get back to my quote")
    assert back.metadata["journey"] == "quote"
    assert back.step.value == "add_driver" and back.state.cover == "car"
    assert back.response.startswith("Sure. How old is the driver?")
    assert back.metadata["parked"] == ["claim"]
    events = [(e["type"], e["journey"]) for e in back.metadata["control_events"]]
    assert events == [("journey.parked", "claim"), ("journey.resumed", "quote")]

    # The quote carries on, and the claim is still parked at its step.
    age = await driver.say("19")
    assert age.step.value == "more_drivers" and age.state.driver_ages == [19]
    assert await desk.parked_journeys(driver.conversation_id) == [  # type: ignore[attr-defined]
        desk.router.resolve_tool_call("file_claim")  # type: ignore[attr-defined]
    ]


async def test_a_name_and_an_email_in_one_sentence_at_the_front_desk() -> None:
    driver = JourneyDriver(agent())
    result = await driver.say("Hi, I'm Grace Hopper and my email is grace@example.com")
    assert result.metadata["journey"] == "onboarding"
    assert result.complete and result.state.name == "Grace Hopper"
    assert result.state.email == "grace@example.com"
    assert "You're all set, Grace Hopper" in result.response


async def test_an_email_alone_when_the_name_is_asked_says_why() -> None:
    driver = JourneyDriver(agent("onboarding"))
    await driver.say("Hi")
    result = await driver.say("grace@example.com")
    assert result.step.value == "welcome"
    # Not the bare question again: the stand-in says it cannot use that yet.
    assert result.response != "Welcome to Example Insurance! What is your name?"
    assert "What is your name?" in result.response


async def test_correcting_the_name_at_the_email_step() -> None:
    driver = JourneyDriver(agent("onboarding"))
    await driver.say("I'm Bob")
    result = await driver.say("Actually, my name is Robert")
    assert result.state.name == "Robert" and result.step.value == "collect_email"
    assert result.response == "Thanks, I've corrected that. What is your email address, Robert?"
    done = await driver.say("robert@example.com")
    assert done.complete and "Robert" in done.response


async def test_age_and_cover_from_one_message() -> None:
    driver = JourneyDriver(agent())
    result = await driver.say("I'm 30 and want car insurance")
    assert result.metadata["journey"] == "quote"
    assert result.state.cover == "car" and result.state.driver_ages == [30]
    assert result.step.value == "more_drivers"
    assert "Driver 1 added (age 30)" in result.response


async def test_the_quote_lets_the_user_change_the_age_and_the_cover() -> None:
    driver = JourneyDriver(agent("quote"))
    await driver.say("car")
    await driver.say("19")
    age = await driver.say("Actually the driver is 30")
    assert age.state.driver_ages == [30] and age.step.value == "more_drivers"
    assert age.response.startswith("Thanks, I've corrected that.")
    cover = await driver.say("Actually I'd like home cover instead")
    assert cover.state.cover == "home" and cover.state.driver_ages == []
    assert cover.step.value == "home_value"
    assert "rebuild your home" in cover.response
    value = await driver.say("250,000")
    assert value.state.home_value == 250_000 and value.step.value == "more_items"


async def test_the_claim_lets_the_user_correct_the_date_and_reads_currency() -> None:
    driver = JourneyDriver(agent("claim"))
    await driver.say("POL-123456")
    await driver.say((TODAY - dt.timedelta(days=3)).isoformat())
    await driver.say("theft")
    corrected_day = TODAY - dt.timedelta(days=4)
    fixed = await driver.say(f"Sorry, it actually happened on {corrected_day.isoformat()}")
    assert fixed.state.incident_date == corrected_day
    assert fixed.step.value == "description"
    assert "describe" in fixed.response
    await driver.say("My bike was stolen from the garden shed")
    amount = await driver.say("£1,200")
    assert str(amount.state.amount) == "1200.00" and amount.step.value == "confirm"


async def test_a_refusal_shows_the_reason_not_the_bare_question() -> None:
    driver = JourneyDriver(agent("quote"))
    await driver.say("home")
    refused = await driver.say("£2,000")
    assert "2,000 is out of range" in refused.response
    assert refused.step.value == "home_value"


async def test_a_side_question_keeps_the_step_and_the_next_answer_works() -> None:
    driver = JourneyDriver(agent("quote"))
    await driver.say("car")
    before = driver.state
    side = await driver.say("What is the excess?")
    assert "standard excess is 250" in side.response
    assert side.step.value == "add_driver" and side.state == before
    nxt = await driver.say("45")
    assert nxt.state.driver_ages == [45]


async def test_switching_back_and_forth_through_the_front_desk_keeps_everything() -> None:
    desk = agent()
    driver = JourneyDriver(desk)
    await driver.say("I'd like a quote for my car")
    await driver.say("19")
    for _ in range(3):
        claim = await driver.say("Actually, I want to file a claim instead")
        assert claim.metadata["journey"] == "claim"
        quote = await driver.say("let's get back to my quote")
        assert quote.metadata["journey"] == "quote" and quote.state.driver_ages == [19]
        assert quote.step.value == "more_drivers"
    router_state = await desk.memory.load_state(  # type: ignore[attr-defined]
        driver.conversation_id, FRONT_DESK_KEY
    )
    assert router_state["parked"] == ["claim"]


async def test_the_standin_still_says_it_is_not_an_ai() -> None:
    from agent_runtime_framework.llm import standin

    assert "NOT an AI" in (standin.__doc__ or "")
    assert OfflineStandInLLM.is_offline_standin is True


async def test_route_keywords_switch_only_with_a_word_that_changes_course() -> None:
    driver = JourneyDriver(agent())
    await driver.say("I want to file a claim")
    await driver.say("POL-123456")
    await driver.say((TODAY - dt.timedelta(days=2)).isoformat())
    await driver.say("collision")
    # "car" is a keyword of the quote, but this is the claim's description.
    story = await driver.say("My car was damaged in a crash at the lights")
    assert story.metadata["journey"] == "claim" and story.step.value == "amount"
    # With "actually", a keyword of another route switches.
    switched = await driver.say("Actually, I need to register first")
    assert switched.metadata["journey"] == "onboarding"
    assert switched.metadata["parked"] == ["claim"]
