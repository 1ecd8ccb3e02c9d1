"""Running turns: ``run_turn`` (``turns``) and the one run path (``journey_runtime``), the
registry, queued turns (``queued``, ``tasks``), live events across processes (``live``),
people in the loop (``handoff``, ``approvals``), cost and limits (``usage``) and tracing.

The names of ``turns`` are importable from here: ``from agent_runtime_framework.django.host
import run_turn``.
"""

from .turns import (
    IDEMPOTENCY_EVENT,
    ConversationNotFound,
    HostRunContext,
    RequestInProgress,
    TurnResult,
    UnknownAgent,
    cancel_run,
    describe_llm,
    host_llm_client,
    progress_of,
    run_turn,
    run_turn_sync,
)

__all__ = [
    "IDEMPOTENCY_EVENT",
    "ConversationNotFound",
    "HostRunContext",
    "RequestInProgress",
    "TurnResult",
    "UnknownAgent",
    "cancel_run",
    "describe_llm",
    "host_llm_client",
    "progress_of",
    "run_turn",
    "run_turn_sync",
]
