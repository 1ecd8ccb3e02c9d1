"""Journey state and its (de)serialization."""

from .base import BaseJourneyState, BaseState, StepT
from .serializer import VERSION_KEY, StateError, StateSerializer

__all__ = ["VERSION_KEY", "BaseJourneyState", "BaseState", "StateError", "StateSerializer", "StepT"]
