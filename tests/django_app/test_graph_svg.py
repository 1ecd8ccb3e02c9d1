"""Issue 14: the journey graph drawn server-side as SVG (``graph_svg.journey_svg``), on the
example's quote (car and home branches, the drivers and valuables loops, the way back from
review), with observed counts, and with hostile step names."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from agent_runtime_framework.django.admin.graph_svg import journey_svg, layout_graph
from agent_runtime_framework.django.host.registry import register_runtime, unregister_runtime
from agent_runtime_framework.testing import ScriptedLLM
from example_project.journeys.quote import QuoteAgent

NS = "{http://www.w3.org/2000/svg}"

QUOTE_EDGES = {
    ("choose_cover", "add_driver"),
    ("choose_cover", "home_value"),
    ("add_driver", "more_drivers"),
    ("more_drivers", "add_driver"),
    ("more_drivers", "start_date"),
    ("home_value", "more_items"),
    ("more_items", "add_item"),
    ("more_items", "start_date"),
    ("add_item", "more_items"),
    ("start_date", "review"),
    ("review", "complete"),
    ("review", "choose_cover"),
}
BACK_EDGES = {
    ("more_drivers", "add_driver"),
    ("add_item", "more_items"),
    ("review", "choose_cover"),
}

#: What one car quote with two drivers, one with one driver and one home quote with one
#: valuable did (the funnel's ``edges``), plus a transition no one declared.
OBSERVED = [
    {"from": "choose_cover", "to": "add_driver", "journeys": 2, "transitions": 2},
    {"from": "choose_cover", "to": "home_value", "journeys": 1, "transitions": 1},
    {"from": "add_driver", "to": "more_drivers", "journeys": 2, "transitions": 3},
    {"from": "more_drivers", "to": "add_driver", "journeys": 1, "transitions": 1},
    {"from": "more_drivers", "to": "start_date", "journeys": 2, "transitions": 2},
    {"from": "home_value", "to": "more_items", "journeys": 1, "transitions": 1},
    {"from": "more_items", "to": "add_item", "journeys": 1, "transitions": 1},
    {"from": "add_item", "to": "more_items", "journeys": 1, "transitions": 1},
    {"from": "more_items", "to": "start_date", "journeys": 1, "transitions": 1},
    {"from": "complete", "to": "start_date", "journeys": 1, "transitions": 1},
]


def _quote() -> QuoteAgent:
    return QuoteAgent(ScriptedLLM())


def _parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)  # well-formed XML, or this raises


def _nodes(root: ET.Element) -> dict[str, ET.Element]:
    return {
        g.attrib["data-step"]: g
        for g in root.iter(f"{NS}g")
        if "art-node" in g.attrib.get("class", "").split()
    }


def _edges(root: ET.Element) -> dict[tuple[str, str], ET.Element]:
    return {
        (g.attrib["data-from"], g.attrib["data-to"]): g
        for g in root.iter(f"{NS}g")
        if "art-edge" in g.attrib.get("class", "").split()
    }


def _rect(node: ET.Element) -> tuple[float, float, float, float]:
    rect = node.find(f"{NS}rect")
    assert rect is not None
    x, y = float(rect.attrib["x"]), float(rect.attrib["y"])
    return x, y, x + float(rect.attrib["width"]), y + float(rect.attrib["height"])


def _path(edge: ET.Element) -> ET.Element:
    path = edge.find(f"{NS}path")
    assert path is not None
    return path


def test_the_quote_graph_has_every_step_and_every_declared_transition() -> None:
    agent = _quote()
    root = _parse(journey_svg(agent))
    assert root.tag == f"{NS}svg" and root.attrib["role"] == "img"
    steps = [s.value for s in type(agent.get_initial_state().step)]
    assert set(_nodes(root)) == set(steps)
    edges = _edges(root)
    declared = {
        (str(a.value), str(b.value)) for a, bs in agent.step_transitions.items() for b in bs
    }
    assert set(edges) == declared
    assert set(edges) >= QUOTE_EDGES  # both branches, both loops, the way back
    assert ("add_driver", "home_value") not in edges  # not the enum's straight line
    # Without observed counts: no labels, no counts.
    assert "data-journeys" not in ET.tostring(root, encoding="unicode")
    nodes = _nodes(root)
    assert "art-node-terminal" in nodes["complete"].attrib["class"]
    assert "art-node-initial" in nodes["choose_cover"].attrib["class"]
    assert "art-node-terminal" not in nodes["review"].attrib["class"]


def test_the_layout_reads_in_path_order_with_the_branches_side_by_side() -> None:
    agent = _quote()
    nodes = _nodes(_parse(journey_svg(agent)))
    top = {step: _rect(node)[1] for step, node in nodes.items()}
    left = {step: _rect(node)[0] for step, node in nodes.items()}
    # Down the path: choose_cover, the branch, start_date, review, complete.
    for branch in (["add_driver", "more_drivers"], ["home_value", "more_items", "add_item"]):
        path = ["choose_cover", *branch]
        assert [top[s] for s in path] == sorted(top[s] for s in path)
        assert len({top[s] for s in path}) == len(path)
    assert top["start_date"] > top["more_drivers"] and top["start_date"] > top["more_items"]
    assert top["choose_cover"] < top["add_driver"] < top["start_date"] < top["review"]
    assert top["review"] < top["complete"]
    # The branches side by side: the car's first step and the home's on one row.
    assert top["add_driver"] == top["home_value"]
    assert top["more_drivers"] == top["more_items"]
    assert left["add_driver"] != left["home_value"]
    # Each branch stays in its column.
    assert left["add_driver"] == left["more_drivers"]
    assert left["home_value"] == left["more_items"]
    # No two steps overlap.
    boxes = [_rect(node) for node in nodes.values()]
    for i, a in enumerate(boxes):
        for b in boxes[i + 1 :]:
            assert a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1], (a, b)


def test_loops_and_the_way_back_are_back_edges_drawn_upwards() -> None:
    agent = _quote()
    root = _parse(journey_svg(agent))
    nodes, edges = _nodes(root), _edges(root)
    backward = {key for key, g in edges.items() if "art-edge-backward" in g.attrib["class"].split()}
    assert backward == BACK_EDGES
    for (a, b), edge in edges.items():
        path = _path(edge)
        if (a, b) in BACK_EDGES:
            # Out of the side of the later step, up a lane beside the graph, into the side
            # of the earlier step; dashed.
            match = re.fullmatch(
                r"M([-\d.]+),([-\d.]+) H([-\d.]+) V([-\d.]+) H([-\d.]+)", path.attrib["d"]
            )
            assert match, path.attrib["d"]
            sx, sy, lane, ty, tx = map(float, match.groups())
            assert ty < sy  # upwards
            assert path.attrib.get("stroke-dasharray")
            a_box, b_box = _rect(nodes[a]), _rect(nodes[b])
            assert sx in (a_box[0], a_box[2]) and tx in (b_box[0], b_box[2])
            assert lane > max(a_box[2], b_box[2]) or lane < min(a_box[0], b_box[0])
        else:
            # Forward: from the bottom of one step down to the top of the next; solid.
            match = re.match(r"M([-\d.]+),([-\d.]+) C.* ([-\d.]+),([-\d.]+)$", path.attrib["d"])
            assert match, path.attrib["d"]
            assert float(match.group(2)) == _rect(nodes[a])[3]
            assert float(match.group(4)) == _rect(nodes[b])[1]
            assert "stroke-dasharray" not in path.attrib


def test_observed_counts_label_and_weigh_the_edges() -> None:
    agent = _quote()
    entered = {"choose_cover": 3, "add_driver": 2, "home_value": 1, "start_date": 3}
    svg = journey_svg(agent, OBSERVED, entered=entered)
    root = _parse(svg)
    edges, nodes = _edges(root), _nodes(root)
    assert set(edges) == QUOTE_EDGES | {("complete", "start_date")}

    def label(key: tuple[str, str]) -> str:
        text = edges[key].find(f"{NS}text")
        return "" if text is None else str(text.text)

    def width(key: tuple[str, str]) -> float:
        return float(_path(edges[key]).attrib["stroke-width"])

    assert label(("choose_cover", "add_driver")) == "2 journeys"
    assert label(("choose_cover", "home_value")) == "1 journey"
    assert label(("add_driver", "more_drivers")) == "2 journeys, 3 times"
    assert label(("review", "choose_cover")) == "0 journeys"
    assert edges[("add_driver", "more_drivers")].attrib["data-transitions"] == "3"
    assert edges[("choose_cover", "home_value")].attrib["data-journeys"] == "1"
    # Wider the more journeys took it; a declared edge no journey took is grey.
    assert width(("choose_cover", "add_driver")) > width(("choose_cover", "home_value"))
    assert width(("choose_cover", "home_value")) > width(("start_date", "review"))
    assert "art-edge-untaken" in edges[("start_date", "review")].attrib["class"]
    assert "art-edge-untaken" not in edges[("choose_cover", "home_value")].attrib["class"]
    # Taken but not declared: its own kind (red), and a back-edge here.
    observed = edges[("complete", "start_date")]
    assert "art-edge-observed" in observed.attrib["class"].split()
    assert "art-edge-backward" in observed.attrib["class"].split()
    assert (
        _path(observed).attrib["stroke"] != _path(edges[("start_date", "review")]).attrib["stroke"]
    )
    # The journeys that entered each step are in its box.
    counts = {
        step: [
            t.text for t in node.iter(f"{NS}text") if "art-node-count" in t.attrib.get("class", "")
        ]
        for step, node in nodes.items()
    }
    assert counts["choose_cover"] == ["entered 3"]
    assert counts["home_value"] == ["entered 1"]
    assert counts["review"] == ["entered 0"]


class Hostile(str, Enum):
    START = "start"
    EVIL = "<script>alert('x')</script>"
    DONE = 'done & "dusted"'


@dataclass
class HostileState:
    step: Hostile = Hostile.START

    def is_terminal(self) -> bool:
        return self.step is Hostile.DONE


class HostileAgent:
    key = "<b>hostile</b>"
    step_transitions = {Hostile.START: [Hostile.EVIL], Hostile.EVIL: [Hostile.DONE, Hostile.START]}

    def get_initial_state(self) -> HostileState:
        return HostileState()

    def get_tool_schemas(self, state: HostileState) -> list[Any]:
        return []


def test_step_names_are_escaped_in_the_svg() -> None:
    observed = [
        {"from": "start", "to": "<script>alert('x')</script>", "journeys": 1, "transitions": 1},
        {"from": 'done & "dusted"', "to": "<img src=x onerror=alert(1)>", "journeys": 1},
    ]
    svg = journey_svg(HostileAgent(), observed, id_prefix='x"><script>')
    assert "<script" not in svg and "<img" not in svg and "<b>" not in svg
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in svg
    root = _parse(svg)  # still well-formed: nothing broke out of a text or an attribute
    nodes = _nodes(root)
    assert set(nodes) == {
        "start",
        "<script>alert('x')</script>",
        'done & "dusted"',
        "<img src=x onerror=alert(1)>",
    }
    texts = [t.text for t in root.iter(f"{NS}text")]
    assert "<script>alert('x')</script>" in texts  # drawn as the text it is
    assert 'done & "dusted"' in texts
    assert ("<script>alert('x')</script>", "start") in _edges(root)
    title = root.find(f"{NS}title")
    assert title is not None and title.text == "Graph of the <b>hostile</b> journey"
    assert "art-node-terminal" in nodes['done & "dusted"'].attrib["class"]


def test_long_step_names_are_shortened_in_the_box_and_whole_in_the_tooltip() -> None:
    long = "collect_the_applicants_previous_addresses_for_five_years"
    layout = layout_graph(["a", long], [("a", long)])
    assert layout.layers == {"a": 0, long: 1}
    assert layout.back == set()

    class Step(str, Enum):
        A = "a"
        LONG = long

    @dataclass
    class State:
        step: Step = Step.A

        def is_terminal(self) -> bool:
            return False

    class Agent:
        key = "long"

        def get_initial_state(self) -> State:
            return State()

    root = _parse(journey_svg(Agent()))
    node = _nodes(root)[long]
    title, text = node.find(f"{NS}title"), node.find(f"{NS}text")
    assert title is not None and title.text == long
    assert text is not None and text.text is not None
    assert text.text.endswith("…") and len(text.text) < len(long)


def test_layout_of_a_cycle_without_a_start_and_of_a_self_loop() -> None:
    layout = layout_graph(["a", "b", "c"], [("a", "b"), ("b", "c"), ("c", "a"), ("b", "b")])
    assert layout.back == {("c", "a"), ("b", "b")}
    assert layout.layers == {"a": 0, "b": 1, "c": 2}
    assert layout.rows() == [["a"], ["b"], ["c"]]


# -- the admin's funnel page ---------------------------------------------------------------


@pytest.fixture
def quote_registered() -> Iterator[QuoteAgent]:
    agent = _quote()
    register_runtime(agent)
    yield agent
    unregister_runtime(agent.key)


@pytest.mark.django_db
def test_the_funnel_page_draws_the_graph_above_the_table(
    client: Any, quote_registered: QuoteAgent
) -> None:
    user = get_user_model().objects.create_superuser("root", "root@example.com", "pw")
    client.force_login(user)
    html = client.get(reverse("admin:agent_runtime_journey_funnel_agent", args=["quote"])).content
    page = html.decode()
    match = re.search(r'<svg [^>]*class="art-graph-svg".*?</svg>', page, re.DOTALL)
    assert match, "no SVG graph on the funnel page"
    root = _parse(match.group(0))
    assert set(_edges(root)) == QUOTE_EDGES
    # No journeys yet: every edge counted 0 and grey; the table is kept below the drawing.
    assert {g.attrib["data-journeys"] for g in _edges(root).values()} == {"0"}
    assert page.index('class="art-graph-svg"') < page.index('class="art-graph"')
    assert 'data-testid="journey-graph"' in page
