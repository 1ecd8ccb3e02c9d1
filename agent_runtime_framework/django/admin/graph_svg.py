"""A journey's graph as a server-side SVG: no script, no CDN, no build step.

``journey_svg(agent, observed)`` draws the steps and transitions that ``journey_graph``
prints as Mermaid (``journey_edges``: the declared transitions, else the step order, plus
the observed ones) as a layered graph:

- cycles are broken by a depth-first walk from the initial step (children in the step
  enum's order): the edges that close a cycle (a loop's "another one?", the way back from a
  review) are *back-edges*, drawn dashed along the side of the graph;
- every other edge points down: a step's layer is the longest path to it from the initial
  step, so the steps read in path order top to bottom and a branch's steps sit side by
  side;
- within a layer, steps are ordered by the mean position of the steps they come from
  (fewer crossings), then by the enum's order.

With ``observed`` (the funnel's ``edges``) each edge is labelled with the journeys that took
it (and the transitions, when a loop repeated it) and drawn thicker the more journeys took
it; declared transitions no journey took are grey, transitions taken but not declared red.
Every string from the journey (step names are the author's, and observed steps come from
the database) is escaped; the result is markup for ``mark_safe``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from html import escape
from typing import Any

from ...agents.introspect import journey_steps, step_value

__all__ = ["GraphLayout", "journey_svg", "layout_graph", "render_svg"]

NODE_HEIGHT = 40
LAYER_GAP = 74
COLUMN_GAP = 44
LANE_GAP = 22
MAX_LABEL = 28
MARGIN = 12

_COLOURS = {
    "edge": "#417690",
    "observed": "#ba2121",
    "untaken": "#9a9a9a",
    "node": "#417690",
}


@dataclass
class GraphLayout:
    """Where each step sits: ``layers[step]`` (0 = top), ``slots[step]`` (x in columns,
    centred on 0), and which edges are ``back`` edges (drawn upwards along the side)."""

    nodes: list[str]
    layers: dict[str, int] = field(default_factory=dict)
    slots: dict[str, float] = field(default_factory=dict)
    back: set[tuple[str, str]] = field(default_factory=set)

    def rows(self) -> list[list[str]]:
        """The steps of each layer, left to right."""
        depth = max(self.layers.values(), default=-1) + 1
        rows: list[list[str]] = [[] for _ in range(depth)]
        for node in self.nodes:
            rows[self.layers[node]].append(node)
        return [sorted(row, key=lambda n: self.slots[n]) for row in rows]


def layout_graph(
    nodes: Sequence[str], edges: Sequence[tuple[str, str]], start: str | None = None
) -> GraphLayout:
    """Layers, columns and back-edges of a directed graph (see the module docstring)."""
    order = list(dict.fromkeys([*nodes, *(n for e in edges for n in e)]))
    rank = {n: i for i, n in enumerate(order)}
    children: dict[str, list[str]] = {n: [] for n in order}
    for a, b in edges:
        if b not in children[a]:
            children[a].append(b)
    for targets in children.values():
        targets.sort(key=rank.__getitem__)

    # Back-edges: an edge to a step on the walk's current path closes a cycle.
    back: set[tuple[str, str]] = set()
    state: dict[str, int] = {}  # 1: on the path, 2: done
    roots = ([start] if start in rank else []) + order
    for root in roots:
        if root in state:
            continue
        state[root] = 1
        stack = [(root, iter(children[root]))]
        while stack:
            node, pending = stack[-1]
            child = next(pending, None)
            if child is None:
                state[node] = 2
                stack.pop()
            elif state.get(child) == 1:
                back.add((node, child))
            elif child not in state:
                state[child] = 1
                stack.append((child, iter(children[child])))

    forward = {n: [c for c in children[n] if (n, c) not in back] for n in order}
    parents: dict[str, list[str]] = {n: [] for n in order}
    for a, targets in forward.items():
        for b in targets:
            parents[b].append(a)

    # Longest path from the sources (Kahn's order: the forward edges are acyclic).
    layers = {n: 0 for n in order}
    indegree = {n: len(parents[n]) for n in order}
    ready = [n for n in order if indegree[n] == 0]
    while ready:
        node = ready.pop(0)
        for child in forward[node]:
            layers[child] = max(layers[child], layers[node] + 1)
            indegree[child] -= 1
            if indegree[child] == 0:
                ready.append(child)

    layout = GraphLayout(nodes=order, layers=layers, back=back)
    by_layer: dict[int, list[str]] = {}
    for node in order:
        by_layer.setdefault(layers[node], []).append(node)
    for depth in sorted(by_layer):
        row = by_layer[depth]

        def centre(node: str) -> float:
            above = [layout.slots[p] for p in parents[node] if p in layout.slots]
            return sum(above) / len(above) if above else 0.0

        row.sort(key=lambda n: (centre(n), rank[n]))
        for i, node in enumerate(row):
            layout.slots[node] = i - (len(row) - 1) / 2
    return layout


def _short(text: str) -> str:
    return text if len(text) <= MAX_LABEL else text[: MAX_LABEL - 1] + "…"


def _count_label(edge: Mapping[str, Any]) -> str:
    if "journeys" not in edge:
        return ""
    journeys, transitions = int(edge["journeys"]), int(edge.get("transitions", 0))
    text = f"{journeys} journey{'' if journeys == 1 else 's'}"
    if transitions != journeys:
        text += f", {transitions} times"
    return text


def _text_width(text: str, size: float = 12) -> float:
    return len(text) * size * 0.6


def render_svg(
    layout: GraphLayout,
    edges: Sequence[Mapping[str, Any]],
    *,
    title: str,
    terminal: set[str] | frozenset[str] = frozenset(),
    initial: str | None = None,
    entered: Mapping[str, int] | None = None,
    id_prefix: str = "art-graph",
) -> str:
    """The SVG markup of a laid-out graph; ``edges`` as ``journey_edges`` returns them."""
    longest = max((len(_short(n)) for n in layout.nodes), default=8)
    width = max(120.0, min(longest * 7.4 + 28, MAX_LABEL * 7.4 + 28))
    height = NODE_HEIGHT + (12 if entered is not None else 0)
    column = width + COLUMN_GAP
    pos = {
        n: (layout.slots[n] * column, layout.layers[n] * (height + LAYER_GAP)) for n in layout.nodes
    }  # the centre-top of each node
    box = [0.0, 0.0, 0.0, 0.0]  # min x, min y, max x, max y of everything drawn

    def grow(x0: float, y0: float, x1: float, y1: float) -> None:
        box[0], box[1] = min(box[0], x0), min(box[1], y0)
        box[2], box[3] = max(box[2], x1), max(box[3], y1)

    most = max((int(e.get("journeys", 0)) for e in edges), default=0)
    counted = any("journeys" in e for e in edges)
    pid = escape(id_prefix)
    parts: list[str] = []

    # Where forward edges leave and enter a node: spread side by side when several.
    outgoing: dict[str, list[str]] = {}
    incoming: dict[str, list[str]] = {}
    for e in edges:
        a, b = str(e["from"]), str(e["to"])
        if (a, b) not in layout.back:
            outgoing.setdefault(a, []).append(b)
            incoming.setdefault(b, []).append(a)

    def port(node: str, others: list[str], other: str) -> float:
        ranked = sorted(others, key=lambda n: pos[n][0])
        return pos[node][0] + (ranked.index(other) - (len(ranked) - 1) / 2) * 14

    lanes = {"left": 0, "right": 0}
    for e in edges:
        a, b, kind = str(e["from"]), str(e["to"]), str(e.get("kind", "next"))
        journeys = int(e.get("journeys", 0))
        colour = _COLOURS["edge"]
        classes = ["art-edge", f"art-edge-{kind}"]
        if kind == "observed":
            colour = _COLOURS["observed"]
        elif counted and journeys == 0:
            colour = _COLOURS["untaken"]
            classes.append("art-edge-untaken")
        marker = {
            _COLOURS["edge"]: "arrow",
            _COLOURS["observed"]: "arrow-observed",
            _COLOURS["untaken"]: "arrow-untaken",
        }[colour]
        stroke = 1.5 + (4.5 * journeys / most if most else 0)
        dashed = (a, b) in layout.back
        label = _count_label(e)
        (ax, ay), (bx, by) = pos[a], pos[b]
        if (a, b) in layout.back:
            classes.append("art-edge-backward")
            top, bottom = sorted((layout.layers[a], layout.layers[b]))
            spanned = [n for n in layout.nodes if top <= layout.layers[n] <= bottom]
            side = "right" if ax >= 0 else "left"
            lanes[side] += 1
            offset = LANE_GAP * lanes[side]
            if side == "right":
                lane = max(pos[n][0] + width / 2 for n in spanned) + offset
                sx, tx = ax + width / 2, bx + width / 2
            else:
                lane = min(pos[n][0] - width / 2 for n in spanned) - offset
                sx, tx = ax - width / 2, bx - width / 2
            sy, ty = ay + height / 2 + 6, by + height / 2 - 6
            d = f"M{sx:.1f},{sy:.1f} H{lane:.1f} V{ty:.1f} H{tx:.1f}"
            lx, ly = lane + (5 if side == "right" else -5), (sy + ty) / 2
            anchor = "start" if side == "right" else "end"
            grow(lane - 4, min(sy, ty), lane + 4, max(sy, ty))
        else:
            sx = port(a, outgoing[a], b)
            tx = port(b, incoming[b], a)
            sy, ty = ay + height, by
            middle = (sy + ty) / 2
            d = f"M{sx:.1f},{sy:.1f} C{sx:.1f},{middle:.1f} {tx:.1f},{middle:.1f} {tx:.1f},{ty:.1f}"
            lx, ly, anchor = (sx + tx) / 2 + 4, middle + 4, "start"
        tip = f"{a} → {b}" + (f": {label}" if label else "")
        if kind == "observed":
            tip += " (taken, not declared)"
        parts.append(
            f'<g class="{" ".join(classes)}" data-from="{escape(a)}" data-to="{escape(b)}"'
            + (
                f' data-journeys="{journeys}" data-transitions="{int(e.get("transitions", 0))}"'
                if "journeys" in e
                else ""
            )
            + f"><title>{escape(tip)}</title>"
            f'<path d="{d}" fill="none" stroke="{colour}" stroke-width="{stroke:.2f}"'
            + (' stroke-dasharray="6 4"' if dashed else "")
            + f' marker-end="url(#{pid}-{marker})"/>'
        )
        if label:
            w = _text_width(label, 11)
            grow(
                lx - (w if anchor == "end" else 0),
                ly - 11,
                lx + (w if anchor == "start" else 0),
                ly + 3,
            )
            parts.append(
                f'<text class="art-edge-label" x="{lx:.1f}" y="{ly:.1f}" text-anchor="{anchor}"'
                f' font-size="11" fill="{colour}" stroke="#fff" stroke-width="3"'
                f' paint-order="stroke">{escape(label)}</text>'
            )
        parts.append("</g>")

    for node in layout.nodes:
        x, y = pos[node]
        classes = ["art-node"]
        if node in terminal:
            classes.append("art-node-terminal")
        if node == initial:
            classes.append("art-node-initial")
        grow(x - width / 2, y, x + width / 2, y + height)
        lines = [
            f'<text x="{x:.1f}" y="{y + 17:.1f}" text-anchor="middle" font-size="13"'
            f' fill="#333">{escape(_short(node))}</text>'
        ]
        if entered is not None:
            n = int(entered.get(node, 0))
            lines.append(
                f'<text class="art-node-count" x="{x:.1f}" y="{y + 34:.1f}" text-anchor="middle"'
                f' font-size="11" fill="#666">entered {n}</text>'
            )
        parts.append(
            f'<g class="{" ".join(classes)}" data-step="{escape(node)}"><title>{escape(node)}'
            "</title>"
            f'<rect x="{x - width / 2:.1f}" y="{y:.1f}" width="{width:.1f}" height="{height}"'
            f' rx="{height / 2 if node in terminal else 6}" fill="#f8f8f8"'
            f' stroke="{_COLOURS["node"]}" stroke-width="{3 if node in terminal else 1.5}"/>'
            + "".join(lines)
            + "</g>"
        )

    x0, y0 = box[0] - MARGIN, box[1] - MARGIN
    w, h = box[2] - box[0] + 2 * MARGIN, box[3] - box[1] + 2 * MARGIN
    markers = "".join(
        f'<marker id="{pid}-{name}" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="9"'
        f' markerHeight="9" markerUnits="userSpaceOnUse" orient="auto-start-reverse">'
        f'<path d="M0,0 L10,5 L0,10 z" fill="{colour}"/></marker>'
        for name, colour in (
            ("arrow", _COLOURS["edge"]),
            ("arrow-observed", _COLOURS["observed"]),
            ("arrow-untaken", _COLOURS["untaken"]),
        )
    )
    n_edges = len(edges)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="art-graph-svg" role="img"'
        f' aria-labelledby="{pid}-title {pid}-desc" width="{w:.0f}" height="{h:.0f}"'
        f' viewBox="{x0:.1f} {y0:.1f} {w:.1f} {h:.1f}" font-family="sans-serif">'
        f'<title id="{pid}-title">{escape(title)}</title>'
        f'<desc id="{pid}-desc">{len(layout.nodes)} steps and {n_edges} transitions; '
        "dashed edges go back (loops, ways back).</desc>"
        f"<defs>{markers}</defs>" + "".join(parts) + "</svg>"
    )


def journey_svg(
    agent: Any,
    observed: list[dict[str, Any]] | None = None,
    *,
    entered: Mapping[str, int] | None = None,
    id_prefix: str = "art-graph",
) -> str:
    """The journey's graph as SVG markup (escaped; safe to insert into a page).

    ``observed``: the funnel's ``edges`` (counts on the edges); ``entered``: journeys that
    entered each step (shown in the node). Raises ``ValueError`` for an agent whose state
    has no step enum.
    """
    from ..management.commands.journey_graph import _is_terminal, journey_edges

    steps = journey_steps(agent)
    if not steps:
        raise ValueError(f"{getattr(agent, 'key', agent)!r} has no step enum")
    values = [str(step_value(s)) for s in steps]
    edges = journey_edges(agent, observed)
    try:
        initial: str | None = str(step_value(agent.get_initial_state().step))
    except Exception:
        initial = values[0]
    layout = layout_graph(values, [(str(e["from"]), str(e["to"])) for e in edges], initial)
    terminal = {str(step_value(s)) for s in steps if _is_terminal(agent, s)}
    key = str(getattr(agent, "key", "") or "journey")
    return render_svg(
        layout,
        edges,
        title=f"Graph of the {key} journey",
        terminal=terminal,
        initial=initial,
        entered=entered,
        id_prefix=id_prefix,
    )
