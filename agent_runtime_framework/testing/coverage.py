"""Journey coverage: which steps, transitions and tools a test session exercised.

``pytest --journey-coverage`` records every ``JourneyAgent`` turn of the session (also
the journeys behind a router, and conversation files) and prints, per journey, what was
reached and what never was, like a coverage report. Recording wraps ``JourneyAgent.run``
for the session only while the option is on; production code paths are untouched.

What can happen is read from the journey's code:

- steps: the step enum (``journey_steps``);
- tools: ``get_tool_schemas`` at each step;
- transitions: for each tool offered at step A, the steps its method assigns
  (``...step = Step.B``, or ``self.state = State()`` back to the initial step) give
  A -> B. Without a ``tools_class`` (or when no assignment is found), the consecutive
  steps of ``get_step_path`` of the initial state. Transitions taken that the code
  reading did not foresee are listed too.
"""

from __future__ import annotations

import ast
import contextlib
import dataclasses
import inspect
import itertools
import textwrap
from collections import Counter
from collections.abc import Callable, Iterable
from enum import Enum
from typing import Any

from ..agents.introspect import journey_steps, step_value

__all__ = ["JourneyCoverage", "JourneyFacts", "JourneyUsage", "install", "journey_facts"]

Transition = tuple[Any, Any]


@dataclasses.dataclass(slots=True)
class JourneyFacts:
    """What a journey can do, read from its code (step values, not enum members)."""

    steps: list[Any]
    tools: list[str]
    transitions: list[Transition]


@dataclasses.dataclass(slots=True)
class JourneyUsage:
    """What the session did with one journey."""

    label: str
    facts: JourneyFacts
    turns: int = 0
    steps: Counter[Any] = dataclasses.field(default_factory=Counter)
    tools: Counter[str] = dataclasses.field(default_factory=Counter)
    transitions: Counter[Transition] = dataclasses.field(default_factory=Counter)

    def missing_steps(self) -> list[Any]:
        return [s for s in self.facts.steps if s not in self.steps]

    def missing_tools(self) -> list[str]:
        return [t for t in self.facts.tools if t not in self.tools]

    def missing_transitions(self) -> list[Transition]:
        return [t for t in self.facts.transitions if t not in self.transitions]

    def unforeseen_transitions(self) -> list[Transition]:
        known = set(self.facts.transitions)
        return [t for t in self.transitions if t not in known]


def _state_at(agent: Any, step: Any) -> Any:
    state = agent.get_initial_state()
    with contextlib.suppress(Exception):
        state.step = step
    return state


def _assigned_steps(method: Any, members: dict[str, Any], reset_to: Any, state_cls: str) -> list:
    """The steps a tool method's source assigns to a ``step`` attribute (in order)."""
    try:
        source = textwrap.dedent(inspect.getsource(inspect.unwrap(method)))
        tree = ast.parse(source)
    except (OSError, TypeError, SyntaxError):
        return []
    found: list[Any] = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Assign | ast.AnnAssign):
            continue
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        value = node.value
        for target in targets:
            if not isinstance(target, ast.Attribute):
                continue
            if target.attr == "step" and isinstance(value, ast.Attribute):
                if value.attr in members:
                    found.append(members[value.attr])
            elif (
                target.attr == "state"
                and isinstance(value, ast.Call)
                and isinstance(value.func, ast.Name)
                and value.func.id == state_cls
            ):
                found.append(reset_to)
    return found


def journey_facts(agent: Any) -> JourneyFacts:
    """The steps, tools and possible transitions of ``agent`` (see the module docstring)."""
    steps = journey_steps(agent)
    tools: list[str] = []
    transitions: list[Transition] = []
    initial = agent.get_initial_state()
    reset_to = step_value(getattr(initial, "step", None))
    members: dict[str, Any] = {}
    if steps and isinstance(steps[0], Enum):
        members = {member.name: step_value(member) for member in type(steps[0])}
    tools_class = getattr(agent, "tools_class", None)
    for step in steps:
        try:
            schemas = list(agent.get_tool_schemas(_state_at(agent, step)))
        except Exception:
            continue
        for schema in schemas:
            if schema.name not in tools:
                tools.append(schema.name)
            method = getattr(tools_class, schema.name, None) if tools_class else None
            if method is None:
                continue
            for target in _assigned_steps(method, members, reset_to, type(initial).__name__):
                pair = (step_value(step), target)
                if pair[0] != pair[1] and pair not in transitions:
                    transitions.append(pair)
    if not transitions:
        get_path = getattr(agent, "get_step_path", None)
        path = list(get_path(initial)) if callable(get_path) else steps
        values = [step_value(s) for s in path]
        transitions = list(itertools.pairwise(values))
    return JourneyFacts([step_value(s) for s in steps], tools, transitions)


class JourneyCoverage:
    """Collects turns per journey (agent class and key) and formats the report."""

    def __init__(self) -> None:
        self.journeys: dict[tuple[type, str], JourneyUsage] = {}

    def usage(self, agent: Any) -> JourneyUsage:
        key = str(getattr(agent, "key", "?"))
        index = (type(agent), key)
        usage = self.journeys.get(index)
        if usage is None:
            cls = type(agent)
            try:
                facts = journey_facts(agent)
            except Exception:
                facts = JourneyFacts([], [], [])
            label = f"{key} ({cls.__module__}.{cls.__qualname__})"
            usage = self.journeys[index] = JourneyUsage(label, facts)
        return usage

    def record(self, agent: Any, result: Any) -> None:
        """One turn's result: the steps it was at, the tools that ran, the moves made."""
        usage = self.usage(agent)
        usage.turns += 1
        for call in getattr(result, "tool_calls", ()) or ():
            if call.status == "rejected":
                continue
            usage.tools[call.name] += 1
            before, after = step_value(call.step_before), step_value(call.step_after)
            usage.steps[before] += 1
            if call.status == "ok" and after is not None and after != before:
                usage.steps[after] += 1
                usage.transitions[(before, after)] += 1
        usage.steps[step_value(getattr(result, "step", None))] += 1

    def report_lines(self) -> list[str]:
        """The report: a table of ratios, then what each journey never did."""
        if not self.journeys:
            return ["no journey turn was played"]
        rows = sorted(self.journeys.values(), key=lambda u: u.label)
        width = max(len("Journey"), *(len(u.label) for u in rows))
        lines = [f"{'Journey':<{width}}  {'Turns':>5}  {'Steps':>7}  {'Transitions':>11}  Tools"]
        for usage in rows:
            facts = usage.facts
            steps = _ratio(len(facts.steps) - len(usage.missing_steps()), len(facts.steps))
            moves = _ratio(
                len(facts.transitions) - len(usage.missing_transitions()), len(facts.transitions)
            )
            tools = _ratio(len(facts.tools) - len(usage.missing_tools()), len(facts.tools))
            lines.append(
                f"{usage.label:<{width}}  {usage.turns:>5}  {steps:>7}  {moves:>11}  {tools}"
            )
        for usage in rows:
            details = [
                ("steps never reached", [str(s) for s in usage.missing_steps()]),
                ("transitions never taken", [_arrow(t) for t in usage.missing_transitions()]),
                ("tools never called", usage.missing_tools()),
                (
                    "transitions taken, not read from the code",
                    [_arrow(t) for t in usage.unforeseen_transitions()],
                ),
            ]
            shown = [(title, items) for title, items in details if items]
            if not shown:
                continue
            lines.append("")
            lines.append(f"{usage.label}:")
            lines.extend(f"  {title}: {', '.join(items)}" for title, items in shown)
        return lines


def _ratio(done: int, total: int) -> str:
    return f"{done}/{total}" if total else "-"


def _arrow(transition: Transition) -> str:
    return f"{transition[0]} -> {transition[1]}"


def install(coverage: JourneyCoverage) -> Callable[[], None]:
    """Record every ``JourneyAgent`` turn into ``coverage``; returns the undo function."""
    from ..agents.journey import JourneyAgent

    original = JourneyAgent.__dict__["run"]

    async def run(self: Any, ctx: Any, *, hooks: Any = None) -> Any:
        result = await original(self, ctx, hooks=hooks)
        with contextlib.suppress(Exception):  # coverage must never fail a test
            coverage.record(self, result)
        return result

    run.__wrapped__ = original  # type: ignore[attr-defined]
    run.__doc__ = original.__doc__
    JourneyAgent.run = run  # type: ignore[method-assign]

    def undo() -> None:
        JourneyAgent.run = original  # type: ignore[method-assign]

    return undo


def summary_lines(coverage: JourneyCoverage, only: Iterable[str] = ()) -> list[str]:
    """The report, optionally only for journeys whose label contains one of ``only``."""
    if only:
        coverage = _filtered(coverage, list(only))
    return coverage.report_lines()


def _filtered(coverage: JourneyCoverage, only: list[str]) -> JourneyCoverage:
    kept = JourneyCoverage()
    kept.journeys = {
        index: usage
        for index, usage in coverage.journeys.items()
        if any(word in usage.label for word in only)
    }
    return kept
