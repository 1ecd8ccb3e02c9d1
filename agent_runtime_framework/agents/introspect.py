"""Facts about a journey derived from its code: its steps in order, and progress."""

from __future__ import annotations

import dataclasses
import typing
from enum import Enum
from typing import Any

__all__ = ["journey_progress", "journey_steps", "step_progress", "step_value"]


def step_value(step: Any) -> Any:
    return step.value if isinstance(step, Enum) else step


def journey_steps(agent: Any) -> list[Any]:
    """The members of the agent's step enum in declaration order ([] if not an Enum)."""
    state = agent.get_initial_state()
    step = getattr(state, "step", None)
    if isinstance(step, Enum):
        return list(type(step))
    if dataclasses.is_dataclass(state):
        try:
            hint = typing.get_type_hints(type(state)).get("step")
        except Exception:
            hint = None
        if isinstance(hint, type) and issubclass(hint, Enum):
            return list(hint)
    return []


def step_progress(agent: Any, step: Any) -> tuple[int, int]:
    """(k, n): the step is the k-th (1-based) of n; (0, n) when unknown."""
    steps = journey_steps(agent)
    values = [step_value(s) for s in steps]
    value = step_value(step)
    k = values.index(value) + 1 if value in values else 0
    return k, len(steps)


def journey_progress(agent: Any, state: Any) -> tuple[int, int, list[Any]]:
    """(k, n, position labels) along the agent's path for this state (``get_step_path``).

    Falls back to the step enum's order when the agent has no ``get_step_path`` or the
    state is unknown; k is 0 when the step is not on the path. Step groups and loops
    (``step_groups``) are one position each: see ``agents/progress.py``.
    """
    from .progress import journey_position

    position = journey_position(agent, state)
    return position["index"], position["total"], position["steps"]
