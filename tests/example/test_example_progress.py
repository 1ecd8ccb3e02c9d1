"""The quote's progress counts only the steps of the chosen branch (as the API reports it)."""

from agent_runtime_framework.django.host import progress_of
from example_project.journeys.quote import QuoteAgent, QuoteState, QuoteStep


def test_car_and_home_quotes_count_their_own_steps():
    agent = QuoteAgent()
    start = progress_of(agent, "choose_cover", QuoteState())
    assert (start["index"], start["total"]) == (1, 9)  # branch unknown yet: every step

    car = QuoteState(step=QuoteStep.MORE_DRIVERS, cover="car")
    progress = progress_of(agent, "more_drivers", agent.state_to_dict(car))
    assert progress == {
        "index": 3,
        "total": 6,
        "steps": ["choose_cover", "add_driver", "more_drivers", "start_date", "review", "complete"],
    }
    home = QuoteState(step=QuoteStep.START_DATE, cover="home")
    progress = progress_of(agent, "start_date", home)
    assert (progress["index"], progress["total"]) == (5, 7)
