"""Progress along a journey's own path: one function every surface uses.

A journey author states the path with ``get_step_path(state)`` (the steps this state's
journey goes through, in order: the chosen branch only) and, optionally, two class
attributes:

- ``step_groups``: steps that count as one position on the path. A *loop* ("add a driver",
  "another one?") is a group with ``number``: progress then stays at the loop's position and
  says which round it is ("driver 2") instead of stepping back. A group without ``number``
  merges steps that ask the same thing (a welcome that already asks for the name, and the
  name step), so answering both at once does not jump a position.
- ``step_transitions``: ``{step: [next steps]}``, the moves the journey's tools make. The
  graph (``journey_graph``, the admin) draws them, and the funnel finds branch points in
  them. Without it both fall back to what journeys were observed doing.

``journey_position(agent, state)`` returns the position: ``index`` of ``total`` positions
(1-based; 0 = not on the path), the positions' labels, the loop round, and a text. The
total changes only when the path does (a branch is chosen); within a path progress never
goes backwards except when the journey itself goes back (a restart or a correction).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .introspect import journey_steps, step_value

__all__ = [
    "StepGroup",
    "declared_transitions",
    "journey_position",
    "loop_of",
    "path_positions",
]


@dataclass(frozen=True)
class StepGroup:
    """Steps that are one position on the path (a loop, or one question asked twice).

    ``name``: the position's label (default: its first step); ``item``: what a round of a
    loop is called ("driver"); ``number``: the round the state is at (1-based), e.g.
    ``lambda s: len(s.driver_ages) + (s.step is QuoteStep.ADD_DRIVER)``.
    """

    steps: Sequence[Any]
    name: str = ""
    item: str = ""
    number: Callable[[Any], int] | None = field(default=None, compare=False)

    @property
    def values(self) -> list[str]:
        return [str(step_value(s)) for s in self.steps]

    @property
    def label(self) -> str:
        return self.name or (self.values[0] if self.values else "")


def _groups(agent: Any) -> list[StepGroup]:
    groups = getattr(agent, "step_groups", None) or ()
    return [g for g in groups if isinstance(g, StepGroup)]


def loop_of(agent: Any, step: Any) -> list[str] | None:
    """The step values of the group ``step`` belongs to (None: in no group)."""
    value = str(step_value(step))
    for group in _groups(agent):
        if value in group.values:
            return group.values
    return None


def declared_transitions(agent: Any) -> list[tuple[str, str, str]]:
    """``(from, to, kind)`` from the agent's ``step_transitions``; kind is ``"loop"`` for
    a move within a step group, ``"back"`` for one to an earlier step of the enum, else
    ``"next"``."""
    declared = getattr(agent, "step_transitions", None)
    if not isinstance(declared, Mapping):
        return []
    try:
        order = [str(step_value(s)) for s in journey_steps(agent)]
    except Exception:
        order = []
    found: list[tuple[str, str, str]] = []
    for source, targets in declared.items():
        a = str(step_value(source))
        for target in targets or ():
            b = str(step_value(target))
            group = loop_of(agent, a)
            if group is not None and b in group:
                kind = "loop"
            elif a in order and b in order and order.index(b) <= order.index(a):
                kind = "back"
            else:
                kind = "next"
            if (a, b, kind) not in found:
                found.append((a, b, kind))
    return found


Position = tuple[str, list[str], "StepGroup | None"]


def path_positions(agent: Any, path: Sequence[Any]) -> list[Position]:
    """The path's positions: ``(label, step values, group)``; a group is one position."""
    groups = _groups(agent)
    positions: list[Position] = []
    seen: set[int] = set()
    for step in path:
        value = str(step_value(step))
        group = next((g for g in groups if value in g.values), None)
        if group is None:
            positions.append((value, [value], None))
        elif id(group) not in seen:
            seen.add(id(group))
            positions.append((group.label, group.values, group))
    return positions


def journey_position(agent: Any, state: Any = None, step: Any = None) -> dict[str, Any]:
    """Where ``state`` (or ``step``, without a state) stands on the agent's path.

    ``{"index", "total", "steps", "step", "item", "round", "percent", "text"}``: the
    position is the index-th (1-based; 0 unknown) of total; ``steps`` are the positions'
    labels; ``round`` is the loop's round (None outside a loop) and ``item`` its noun.
    """
    path: list[Any] = []
    get_path = getattr(agent, "get_step_path", None)
    if state is not None and callable(get_path):
        path = list(get_path(state))
    if not path:
        path = journey_steps(agent)
    current = step if step is not None else getattr(state, "step", None)
    value = None if current is None else str(step_value(current))
    positions = path_positions(agent, path)
    index, round_, item = 0, None, ""
    for position, (_, values, group) in enumerate(positions, start=1):
        if value in values:
            index = position
            if group is not None and group.number is not None and state is not None:
                try:
                    round_ = int(group.number(state))
                except Exception:
                    round_ = None
                if round_ is not None and round_ < 1:
                    round_ = None  # not in a round yet ("any valuables?")
                item = group.item or "item"
            break
    total = len(positions)
    text = f"step {index or '?'} of {total}"
    if round_ is not None:
        text += f" · {item} {round_}"
    return {
        "index": index,
        "total": total,
        "steps": [label for label, _, _ in positions],
        "step": value,
        "item": item or None,
        "round": round_,
        "percent": round(100 * index / total) if index and total else 0,
        "text": text,
    }
