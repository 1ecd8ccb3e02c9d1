"""Progress along the journey's own path (``get_step_path`` + ``step_groups``): the quote
counts only its branch, a loop is one position with its round, and progress never steps
back; the onboarding's welcome and name step are one position. One function computes it
(``journey_position``); the API's ``progress_of`` and the admin use it."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from agent_runtime_framework.agents import journey_position
from agent_runtime_framework.django.host.turns import progress_of
from example_project.journeys.onboarding import OnboardingAgent, OnboardingState, OnboardingStep
from example_project.journeys.quote import QuoteAgent, QuoteState, QuoteStep, Valuable


def test_car_and_home_quotes_count_their_own_steps() -> None:
    agent = QuoteAgent()
    start = progress_of(agent, "choose_cover", QuoteState())
    # Branch not chosen yet: the steps every quote has.
    assert start == {
        "index": 1,
        "total": 4,
        "steps": ["choose_cover", "start_date", "review", "complete"],
    }
    car = QuoteState(step=QuoteStep.MORE_DRIVERS, cover="car", driver_ages=[30])
    assert progress_of(agent, "more_drivers", agent.state_to_dict(car)) == {
        "index": 2,
        "total": 5,
        "steps": ["choose_cover", "drivers", "start_date", "review", "complete"],
        "item": "driver",
        "round": 1,
    }
    home = QuoteState(step=QuoteStep.START_DATE, cover="home")
    progress = progress_of(agent, "start_date", home)
    assert (progress["index"], progress["total"]) == (4, 6)
    done = QuoteState(step=QuoteStep.COMPLETE, cover="car", driver_ages=[30])
    assert journey_position(agent, done)["text"] == "step 5 of 5"


def _walk(agent: Any, states: list[Any]) -> list[str]:
    return [journey_position(agent, s)["text"] for s in states]


def test_progress_never_steps_back_in_the_loops() -> None:
    agent = QuoteAgent()
    s = QuoteStep
    car = [
        QuoteState(step=s.ADD_DRIVER, cover="car"),
        QuoteState(step=s.MORE_DRIVERS, cover="car", driver_ages=[30]),
        QuoteState(step=s.ADD_DRIVER, cover="car", driver_ages=[30]),
        QuoteState(step=s.MORE_DRIVERS, cover="car", driver_ages=[30, 40]),
        QuoteState(step=s.START_DATE, cover="car", driver_ages=[30, 40]),
        QuoteState(step=s.REVIEW, cover="car", driver_ages=[30, 40]),
        QuoteState(step=s.COMPLETE, cover="car", driver_ages=[30, 40]),
    ]
    assert _walk(agent, car) == [
        "step 2 of 5 · driver 1",
        "step 2 of 5 · driver 1",
        "step 2 of 5 · driver 2",
        "step 2 of 5 · driver 2",
        "step 3 of 5",
        "step 4 of 5",
        "step 5 of 5",
    ]
    bike = Valuable("bicycle", Decimal(1500))
    home = [
        QuoteState(step=s.HOME_VALUE, cover="home"),
        QuoteState(step=s.MORE_ITEMS, cover="home", home_value=250000),
        QuoteState(step=s.ADD_ITEM, cover="home", home_value=250000),
        QuoteState(step=s.MORE_ITEMS, cover="home", valuables=[bike]),
        QuoteState(step=s.ADD_ITEM, cover="home", valuables=[bike]),
        QuoteState(step=s.MORE_ITEMS, cover="home", valuables=[bike, bike]),
        QuoteState(step=s.START_DATE, cover="home", valuables=[bike, bike]),
    ]
    assert _walk(agent, home) == [
        "step 2 of 6",
        "step 3 of 6",  # "any valuables?": not in a round yet
        "step 3 of 6 · valuable 1",
        "step 3 of 6 · valuable 1",
        "step 3 of 6 · valuable 2",
        "step 3 of 6 · valuable 2",
        "step 4 of 6",
    ]
    for walk in (car, home):
        indexes = [journey_position(agent, state)["index"] for state in walk]
        totals = {journey_position(agent, state)["total"] for state in walk}
        assert indexes == sorted(indexes) and len(totals) == 1


def test_the_onboarding_does_not_jump_a_step_when_the_name_comes_first() -> None:
    agent = OnboardingAgent()
    walk = [OnboardingState(step=step) for step in OnboardingStep]
    assert _walk(agent, walk) == ["step 1 of 3", "step 1 of 3", "step 2 of 3", "step 3 of 3"]
    # "Hi, I'm Ada" at welcome goes to collect_email: 1 -> 2, not 1 -> 3.
    assert journey_position(agent, OnboardingState(step=OnboardingStep.COLLECT_EMAIL))["steps"] == [
        "name",
        "collect_email",
        "complete",
    ]
