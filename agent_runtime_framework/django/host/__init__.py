"""Running turns: ``run_turn`` (``turns``) and the one run path (``journey_runtime``), the
registry, queued turns (``queued``, ``tasks``), live events across processes (``live``),
people in the loop (``handoff``, ``approvals``), cost and limits (``usage``) and tracing.

The names of ``turns`` are importable from here: ``from agent_runtime_framework.django.host
import run_turn``.
"""

from . import turns
from .turns import *  # noqa: F403  (its __all__: run_turn, TurnResult, ...)

__all__ = list(turns.__all__)
