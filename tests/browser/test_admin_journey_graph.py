"""The admin's funnel and graph of a branching journey, in chromium, after real chats.

Three quotes played through the example's chat page with the stand-in, on a server and
database of their own (so the counts are exact): a car quote with two drivers (the drivers
loop twice), a car quote with one, and a home quote with one valuable (the valuables loop).
Each stops once it asks for the start date, before anything is priced or bound. Then the
admin's funnel of the quote shows both branches with their counts, and its graph is drawn
as SVG with the journeys on each edge.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.browser.chatpage import choose, open_chat, say, step
from tests.browser.harness import run_example_server

if TYPE_CHECKING:
    from tests.browser.harness import ExampleServer

PASSWORD = "a-long-graph-test-password"

CAR_TWO_DRIVERS = [
    ("Car insurance, please", "add_driver"),
    ("19", "more_drivers"),
    ("yes", "add_driver"),
    ("She is 52", "more_drivers"),
    ("no", "start_date"),
]
CAR_ONE_DRIVER = [
    ("Car insurance, please", "add_driver"),
    ("35", "more_drivers"),
    ("no", "start_date"),
]
HOME_ONE_VALUABLE = [
    ("I need home cover", "home_value"),
    ("250,000", "more_items"),
    ("yes", "add_item"),
    ("A bicycle worth 1500", "more_items"),
    ("no", "start_date"),
]

QUOTE_STEPS = {
    "choose_cover",
    "add_driver",
    "more_drivers",
    "home_value",
    "more_items",
    "add_item",
    "start_date",
    "review",
    "complete",
}


@pytest.fixture(scope="module")
def graph_server() -> Iterator[ExampleServer]:
    """A server on a fresh database for this module only: no other test's quotes."""
    with run_example_server("graph-server") as server:
        yield server


def _play(page: Any, turns: list[tuple[str, str]]) -> None:
    choose(page, "quote")
    for text, expected in turns:
        say(page, text)
        assert step(page) == expected, f"after {text!r}: {step(page)!r}"


def _log_in(page: Any, server: ExampleServer) -> None:
    server.manage(
        "createsuperuser",
        "--noinput",
        "--username",
        "graph-admin",
        "--email",
        "graph-admin@example.com",
        extra_env={"DJANGO_SUPERUSER_PASSWORD": PASSWORD},
    )
    page.goto(server.url("/admin/login/"))
    page.fill("#id_username", "graph-admin")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_selector("#user-tools")


def _cell(page: Any, step_name: str, css: str) -> str:
    return str(page.inner_text(f'table.art-funnel tr[data-step="{step_name}"] {css}')).strip()


def _edge(page: Any, a: str, b: str) -> Any:
    return page.locator(f'svg.art-graph-svg g.art-edge[data-from="{a}"][data-to="{b}"]')


def _label(page: Any, a: str, b: str) -> str:
    """The count drawn on an edge (SVG text has no innerText: its text content)."""
    return str(_edge(page, a, b).locator("text.art-edge-label").text_content()).strip()


def test_the_funnel_and_the_graph_of_car_and_home_quotes(
    page: Any, graph_server: ExampleServer, shot: Callable[[str], Path]
) -> None:
    open_chat(page, graph_server)
    _play(page, CAR_TWO_DRIVERS)
    _play(page, CAR_ONE_DRIVER)
    _play(page, HOME_ONE_VALUABLE)
    shot("home quote at its start date")

    _log_in(page, graph_server)
    page.goto(graph_server.url("/admin/agent_runtime/journey/funnel/quote/"))
    content = page.inner_text("#content")
    assert "3 journeys" in content, content

    # The funnel: both branches, each with the journeys that took it; loops as visits.
    entered = {
        "choose_cover": "3",
        "add_driver": "2 (3 visits)",
        "more_drivers": "2 (3 visits)",
        "home_value": "1",
        "more_items": "1 (2 visits)",
        "add_item": "1",
        "start_date": "3",
        "review": "0",
    }
    for step_name, figure in entered.items():
        assert _cell(page, step_name, ".art-entered-n") == figure, step_name
    assert _cell(page, "start_date", ".art-active-n") == "3"
    assert "entered 2 of 3 (66.7%)" in _cell(page, "add_driver", ".art-label")
    assert "entered 1 of 3 (33.3%)" in _cell(page, "home_value", ".art-label")
    branches = page.inner_text(".art-branches")
    assert "choose_cover" in branches
    assert "via add_driver" in branches and "via home_value" in branches

    # The graph, drawn: every step, the edges with the journeys that took them.
    graph = page.locator('[data-testid="journey-graph"] svg.art-graph-svg')
    graph.scroll_into_view_if_needed()
    assert graph.is_visible()
    box = graph.bounding_box()
    assert box is not None and box["width"] > 200 and box["height"] > 300, box
    steps = set(
        page.eval_on_selector_all(
            "svg.art-graph-svg g.art-node", "gs => gs.map(g => g.dataset.step)"
        )
    )
    assert steps >= QUOTE_STEPS, steps
    counts = {
        ("choose_cover", "add_driver"): ("2", "2"),
        ("choose_cover", "home_value"): ("1", "1"),
        ("add_driver", "more_drivers"): ("2", "3"),
        ("more_drivers", "add_driver"): ("1", "1"),
        ("more_drivers", "start_date"): ("2", "2"),
        ("home_value", "more_items"): ("1", "1"),
        ("more_items", "add_item"): ("1", "1"),
        ("add_item", "more_items"): ("1", "1"),
        ("more_items", "start_date"): ("1", "1"),
    }
    for (a, b), (journeys, transitions) in counts.items():
        edge = _edge(page, a, b)
        assert edge.count() == 1, (a, b)
        assert edge.get_attribute("data-journeys") == journeys, (a, b)
        assert edge.get_attribute("data-transitions") == transitions, (a, b)
    assert _label(page, "choose_cover", "add_driver") == "2 journeys"
    assert _label(page, "add_driver", "more_drivers") == "2 journeys, 3 times"
    # The loops and the way back from review are back-edges (drawn up the side, dashed).
    for a, b in (
        ("more_drivers", "add_driver"),
        ("add_item", "more_items"),
        ("review", "choose_cover"),
    ):
        assert "art-edge-backward" in str(_edge(page, a, b).get_attribute("class")), (a, b)
    assert "art-edge-backward" not in str(
        _edge(page, "choose_cover", "home_value").get_attribute("class")
    )
    # A step's box says how many journeys entered it.
    node = page.locator('svg.art-graph-svg g.art-node[data-step="choose_cover"]')
    assert node.locator("text.art-node-count").text_content() == "entered 3"
    # The drawing's nodes sit in path order: the branches side by side below the choice.
    top = {
        name: page.locator(f'svg.art-graph-svg g.art-node[data-step="{name}"] rect').bounding_box()
        for name in ("choose_cover", "add_driver", "home_value", "start_date")
    }
    assert all(top.values()), top
    assert top["choose_cover"]["y"] < top["add_driver"]["y"] == top["home_value"]["y"]
    assert top["add_driver"]["x"] != top["home_value"]["x"]
    assert top["start_date"]["y"] > top["add_driver"]["y"]
    # The accessible fallback: the same edges as a table.
    assert (
        page.locator('table.art-graph tr[data-from="choose_cover"][data-to="home_value"]').count()
        == 1
    )
    shot("quote funnel and graph")

    # One branch's funnel: the journeys that went through home_value.
    page.click(".art-branches >> text=via home_value")
    page.wait_for_url("**through=home_value**")
    assert "1 journeys that went through home_value" in page.inner_text("#content")
    assert _cell(page, "home_value", ".art-entered-n") == "1"
    assert _cell(page, "add_driver", ".art-entered-n") == "0"
    assert _edge(page, "choose_cover", "home_value").get_attribute("data-journeys") == "1"
    assert _edge(page, "choose_cover", "add_driver").get_attribute("data-journeys") == "0"
    shot("quote funnel through home_value")
