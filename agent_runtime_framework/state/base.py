"""Journey state: a dataclass whose ``step`` field says where the journey stands.

Subclasses get ``to_dict``/``from_dict`` for free (via ``StateSerializer``); hand-written
ones, as in the seed, still win. A class can declare ``state_version`` and a ``migrate``
hook so that dicts persisted by older code keep loading.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any, ClassVar, Generic, Self, TypeVar

from .serializer import StateSerializer

__all__ = ["BaseJourneyState", "BaseState", "StepT"]

StepT = TypeVar("StepT")


class BaseState:
    """Base for serializable state. Subclass it with ``@dataclass``."""

    #: Bump when the shape of the state changes; ``migrate`` upgrades older dicts.
    state_version: ClassVar[int] = 1

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict of this state (enums by value, dates ISO, Decimal as str...)."""
        return StateSerializer.dump_fields(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        """Rebuild from ``to_dict`` output; missing keys take the fields' defaults."""
        return StateSerializer.load_fields(cls, data)

    def copy(self) -> Self:
        """An independent copy, through the dict form (0.3.0)."""
        return self.from_dict(self.to_dict())

    def __getitem__(self, key: str) -> Any:
        """Read a field in its stored form: ``state["step"] == "welcome"``.

        0.3.0's ``AgentResult.state`` was the state's dict; code that reads
        ``result.state["name"]`` keeps working on the state object returned now.
        """
        return self.to_dict()[key]

    @classmethod
    def migrate(cls, data: dict[str, Any], from_version: int) -> dict[str, Any]:
        """Upgrade a dict written by ``from_version`` to ``state_version``.

        The default refuses: override it when you bump ``state_version``.
        """
        raise NotImplementedError(
            f"{cls.__name__} is at state_version {cls.state_version} but got a state "
            f"saved at version {from_version}; override {cls.__name__}.migrate()"
        )


@dataclass
class BaseJourneyState(BaseState, Generic[StepT]):
    """State of a journey: ``step`` plus whatever the journey collects."""

    step: StepT

    def is_complete(self) -> bool:
        """True when the journey reached its goal. Override it."""
        return False

    def is_terminal(self) -> bool:
        """True when no further turn should run (complete, or given up)."""
        return self.is_complete()

    def get_step(self) -> StepT:
        return self.step

    def set_step(self, step: StepT) -> None:
        self.step = step

    @property
    def step_value(self) -> Any:
        """The step as stored (the enum's value), for logs and database columns."""
        step: Any = self.step
        return step.value if isinstance(step, Enum) else step
