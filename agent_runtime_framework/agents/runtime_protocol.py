"""The shapes of django_agent_runtime's runtime protocol (``await runtime.run(ctx)``).

``RunResult`` is what a run returns, ``RunErrorInfo`` what ``on_error`` reports. They
live in the core, not in the Django app, so that the adapter imports without Django and
the app's host, which speaks the same protocol, does not import the adapter.
"""

from __future__ import annotations

import contextlib
import traceback
from dataclasses import dataclass, field
from typing import Any

from ..memory.stores import JourneyBusy
from ..state.serializer import StateSerializer
from .context import AgentResult
from .introspect import step_value

__all__ = [
    "RunErrorInfo",
    "RunResult",
    "error_info",
    "journey_run_result",
    "mark_reported",
    "was_reported",
]

_MAX_ERROR_CHARS = 2000
_REPORTED = "_agent_runtime_error_reported"


@dataclass(slots=True)
class RunResult:
    """The shape django_agent_runtime expects back from ``runtime.run(ctx)``."""

    #: ``response``, ``state``, ``step``, ``complete``, ``stopped_reason``, ``journey``.
    final_output: dict[str, Any] = field(default_factory=dict)
    #: The messages this run added (user input, tool calls and results, the reply).
    final_messages: list[dict[str, Any]] = field(default_factory=list)
    usage: dict[str, int] = field(default_factory=dict)
    #: ``tool_calls`` (name, status, step before/after) and ``iterations``.
    artifacts: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class RunErrorInfo:
    """What ``on_error`` reports: the real error, and whether retrying may help."""

    type: str
    message: str
    retriable: bool = False
    stack: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "message": self.message,
            "retriable": self.retriable,
            "stack": self.stack,
            "details": dict(self.details),
        }


def error_info(error: BaseException) -> RunErrorInfo:
    """``RunErrorInfo`` for an exception (``LLMError.retryable`` sets ``retriable``)."""
    from ..llm.base import LLMError  # the llm package is loaded on first error only

    details: dict[str, Any] = {}
    retriable = False
    if isinstance(error, LLMError):
        retriable = bool(error.retryable)
        details = {
            k: v
            for k, v in (
                ("provider", error.provider),
                ("status_code", error.status_code),
                ("retry_after", error.retry_after),
            )
            if v is not None
        }
    elif isinstance(error, JourneyBusy):
        retriable = True
        details = {"retry_after": error.retry_after}
    stack = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    return RunErrorInfo(
        type=type(error).__name__,
        message=str(error)[:_MAX_ERROR_CHARS],
        retriable=retriable,
        stack=stack[-_MAX_ERROR_CHARS * 4 :],
        details=details,
    )


def was_reported(error: BaseException) -> bool:
    """Whether ``play_journey`` already recorded the ``error`` event of this failure."""
    return bool(getattr(error, _REPORTED, False))


def mark_reported(error: BaseException) -> None:
    with contextlib.suppress(AttributeError, TypeError):  # exceptions with __slots__
        setattr(error, _REPORTED, True)


def journey_run_result(result: AgentResult, journey: str | None, conversation_id: Any) -> RunResult:
    """The ``RunResult`` of a played journey turn. ``journey`` None: a router answered
    itself (no journey yet)."""
    state = result.state
    return RunResult(
        final_output={
            "response": result.response,
            "state": StateSerializer.dump(state) if state is not None else {},
            "step": step_value(result.step),
            "complete": result.complete,
            "stopped_reason": result.stopped_reason,
            "journey": journey,
            "conversation_id": str(conversation_id),
        },
        final_messages=list(result.messages),
        usage=dict(result.usage),
        artifacts={
            "iterations": result.iterations,
            "tool_calls": [
                {
                    "id": call.id,
                    "name": call.name,
                    "status": call.status,
                    "step_before": step_value(call.step_before),
                    "step_after": step_value(call.step_after),
                }
                for call in result.tool_calls
            ],
        },
    )
