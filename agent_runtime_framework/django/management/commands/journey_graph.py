"""``manage.py journey_graph <agent_key>``: a journey's steps and tools as a Mermaid diagram.

Steps appear in the order of the step enum, each with the tools offered there (asked from
``get_tool_schemas`` on a state at that step). Edges are the transitions the journey
declares (``step_transitions``: its branches, loops and ways back; loops and ways back
dotted), labelled with the tools of the step they leave; a journey that declares none gets
edges along the step order. ``--observed`` adds what journeys in the database did
(``journey.step_changed`` events): each edge's count of journeys (and of transitions when
a loop repeats it), and thick edges for transitions taken but not declared. Tools are
code, so transitions are not derived by running them (they may call backends). Terminal
steps are drawn as stadiums. A router key draws the router with an edge to each journey.
"""

from __future__ import annotations

import itertools
import re
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ....agents.introspect import journey_steps, step_value
from ....agents.progress import declared_transitions


def _node_id(prefix: str, value: Any) -> str:
    return prefix + re.sub(r"[^A-Za-z0-9_]", "_", str(value))


def _label(text: str) -> str:
    return text.replace('"', "#quot;")


def _tools_at(agent: Any, step: Any) -> list[str]:
    state = agent.get_initial_state()
    if step is not None:
        state.step = step
    names = []
    for schema in agent.get_tool_schemas(state):
        params = ", ".join(schema.parameter_names)
        names.append(f"{schema.name}({params})")
    return names


def _is_terminal(agent: Any, step: Any) -> bool:
    try:
        state = agent.get_initial_state()
        state.step = step
        check = getattr(agent, "is_terminal_state", None)
        return bool(check(state)) if callable(check) else bool(state.is_terminal())
    except Exception:
        return False


def journey_edges(agent: Any, observed: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """The graph's edges: ``{"from", "to", "kind", "declared", "journeys", "transitions"}``.

    Declared transitions (``step_transitions``) or, without them, the enum order; with
    ``observed`` (``analytics.observed_transitions``) their counts, and the observed
    transitions that were not declared (kind ``"observed"``).
    """
    edges: dict[tuple[str, str], dict[str, Any]] = {}
    declared = declared_transitions(agent)
    if not declared:
        values = [str(step_value(s)) for s in journey_steps(agent)]
        declared = [(a, b, "next") for a, b in itertools.pairwise(values)]
    for a, b, kind in declared:
        edges[(a, b)] = {"from": a, "to": b, "kind": kind, "declared": True}
    for seen in observed or ():
        key = (str(seen["from"]), str(seen["to"]))
        edge = edges.setdefault(
            key, {"from": key[0], "to": key[1], "kind": "observed", "declared": False}
        )
        edge["journeys"] = int(seen.get("journeys", 0))
        edge["transitions"] = int(seen.get("transitions", 0))
    if observed is not None:
        for edge in edges.values():
            edge.setdefault("journeys", 0)
            edge.setdefault("transitions", 0)
    return list(edges.values())


def journey_mermaid(
    agent: Any,
    *,
    prefix: str = "",
    indent: str = "    ",
    observed: list[dict[str, Any]] | None = None,
) -> list[str]:
    """Mermaid lines (without the ``flowchart`` header) for one journey agent."""
    steps = journey_steps(agent)
    if not steps:
        raise CommandError(
            f"{getattr(agent, 'key', agent)!r} has no step enum: its state's step field must "
            "be an Enum for a graph"
        )
    lines: list[str] = []
    tools: dict[Any, list[str]] = {}
    for step in steps:
        value = step_value(step)
        try:
            tools[value] = _tools_at(agent, step)
        except Exception as exc:
            tools[value] = [f"(tools unavailable: {type(exc).__name__})"]
        text = str(value)
        if tools[value]:
            text += "<br/><small>tools: " + ", ".join(tools[value]) + "</small>"
        node = _node_id(prefix, value)
        if _is_terminal(agent, step):
            lines.append(f'{indent}{node}(["{_label(text)}"]):::terminal')
        else:
            lines.append(f'{indent}{node}["{_label(text)}"]')
    # Tools offered at every step (global tools) move no journey: not on the edges.
    names = [{name.split("(")[0] for name in offered} for offered in tools.values()]
    everywhere = set.intersection(*names) if len(names) > 1 else set()
    for edge in journey_edges(agent, observed):
        offered = [name.split("(")[0] for name in tools.get(edge["from"], [])]
        offered = [name for name in offered if name not in everywhere] or offered
        label = " / ".join(offered) if edge["declared"] else "not declared"
        if "journeys" in edge:
            count = f"{edge['journeys']} journey{'' if edge['journeys'] == 1 else 's'}"
            if edge["transitions"] != edge["journeys"]:
                count += f", {edge['transitions']} transitions"
            label = f"{label}<br/>{count}" if label else count
        arrow = {"loop": "-.->", "back": "-.->", "observed": "==>"}.get(edge["kind"], "-->")
        text = f"|{_label(label)}|" if label else ""
        lines.append(
            f"{indent}{_node_id(prefix, edge['from'])} {arrow}{text} {_node_id(prefix, edge['to'])}"
        )
    return lines


class Command(BaseCommand):
    help = "Print a registered journey's steps and tools as a Mermaid flowchart."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("agent_key", help="Key of a registered agent (or router).")
        parser.add_argument(
            "--direction", default="TD", choices=["TD", "LR"], help="Flowchart direction."
        )
        parser.add_argument(
            "--observed",
            action="store_true",
            help="Add the transitions journeys took (from the database), with counts.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        from ...host.registry import find_journey_agent, registered_runtimes

        key: str = options["agent_key"]
        agent = find_journey_agent(key)
        if agent is None:
            known = ", ".join(sorted(registered_runtimes())) or "none"
            raise CommandError(f"No agent registered with key {key!r} (registered: {known})")
        lines = [f"flowchart {options['direction']}"]
        sub_agents = getattr(agent, "agents", None)
        if isinstance(sub_agents, dict):
            router = _node_id("router_", key)
            lines.append(f'    {router}{{{{"{_label(key)} (router)"}}}}')
            for route, journey in sub_agents.items():
                journey_key = str(getattr(journey, "key", route))
                prefix = _node_id("", journey_key) + "__"
                group = _node_id("sg_", journey_key)
                lines.append(f'    subgraph {group}["{_label(journey_key)}"]')
                body = journey_mermaid(
                    journey, prefix=prefix, indent="        ", observed=_observed(journey, options)
                )
                lines.extend(body)
                lines.append("    end")
                first = step_value(journey_steps(journey)[0])
                lines.append(
                    f"    {router} -->|{_label(str(step_value(route)))}| {_node_id(prefix, first)}"
                )
        else:
            lines.extend(journey_mermaid(agent, observed=_observed(agent, options)))
        lines.append("    classDef terminal stroke-width:3px")
        self.stdout.write("\n".join(lines))


def _observed(agent: Any, options: dict[str, Any]) -> list[dict[str, Any]] | None:
    if not options.get("observed"):
        return None
    from ...admin.analytics import observed_transitions

    return observed_transitions(str(agent.key), agent)
