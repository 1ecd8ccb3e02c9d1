"""How a journey is played under a ``RunContext``: the one run path of every host.

django_agent_runtime's runner and the app's own host both run a runtime as
``await runtime.run(run_context)``. A journey (``JourneyAgent``, ``RoutedJourneyAgent`` or
the agent inside a ``DjangoRuntimeAdapter``) is played by ``play_journey``: the executor's
hooks become events on the run's ``JourneyEventLog``, a router holds the conversation
across routing and the journey, a hand-off asked for by the model reaches staff, control
events (parked, resumed, revised) and the tokens spent are recorded, and a failure is
recorded once as an ``error`` event before it propagates. ``JourneyRuntime`` makes a plain
journey agent such a runtime, so the host has a single way to run anything registered.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from typing import Any

from ...agents.context import AgentContext, AgentResult
from ...agents.routed import RoutedJourneyAgent
from ...agents.runtime_protocol import (
    RunResult,
    error_info,
    journey_run_result,
    mark_reported,
)
from ...executor.hooks import CompositeHooks, ExecutorHooks
from ...memory.stores import JourneyBusy
from ..store.db import run_db
from ..store.events import (
    JOURNEY_ROUTED,
    EventRecorderHooks,
    JourneyEventLog,
    next_event_seq_sync,
    terminal_steps_of,
)
from .handoff import escalation_metadata, request_handoff
from .tracing import tracing_hooks
from .usage import model_name_of

__all__ = ["JourneyRuntime", "event_log_of", "play_journey"]

logger = logging.getLogger("agent_runtime_framework.django")


class _ErrorSeen(ExecutorHooks):
    """Notes that the loop recorded an error event (so the run does not add another)."""

    def __init__(self) -> None:
        self.reported = False

    async def on_error(self, error: BaseException) -> None:
        self.reported = True


async def event_log_of(ctx: Any, conversation_id: Any, run_id: Any, key: str) -> JourneyEventLog:
    """The run's event log: the host's own when its ``RunContext`` has one (the own host
    writes the table itself), else one that writes the app's table and forwards every
    event to ``ctx.emit`` (django_agent_runtime's bus). That one numbers on from the run's
    stored events: django_agent_runtime retries a failed run under the same run id."""
    log = getattr(ctx, "event_log", None)
    if isinstance(log, JourneyEventLog):
        return log
    start = await run_db(next_event_seq_sync, run_id)
    return JourneyEventLog(
        run_id, conversation_id, key, emit=getattr(ctx, "emit", None), start_seq=start
    )


def _terminal_steps(describes: Any) -> frozenset[Any]:
    if isinstance(describes, RoutedJourneyAgent):
        found: set[Any] = set()
        for agent in describes.agents.values():
            found |= terminal_steps_of(agent)
        return frozenset(found)
    return terminal_steps_of(describes)


async def play_journey(
    agent: Any, ctx: AgentContext, log: JourneyEventLog, *, describes: Any = None
) -> AgentResult:
    """Play one turn of ``agent`` (a ``JourneyAgent`` or ``RoutedJourneyAgent``) with its
    events on ``log``. ``describes``: the object whose step enum says which steps are
    terminal (default the agent; an adapter passes itself)."""
    seen = _ErrorSeen()
    recorder = EventRecorderHooks(
        log,
        terminal_steps=_terminal_steps(describes if describes is not None else agent),
        model=model_name_of(agent),
    )
    hooks = CompositeHooks(recorder, seen, tracing_hooks(agent))  # tracing: None when off
    if not isinstance(agent, RoutedJourneyAgent):
        # Step events belong to the journey's own key, also when it is registered under
        # another: the journey row, the funnel and the admin go by that key.
        log.journey_key = agent.key
    ctx.metadata.update(escalation_metadata())
    conversation_id = ctx.conversation_id
    try:
        if isinstance(agent, RoutedJourneyAgent):
            # Hold the conversation across routing and the journey (claims re-enter).
            owner = ctx.metadata.get("owner")
            async with agent.memory.claim(conversation_id, agent.key, owner=owner):
                result = await agent.run(ctx, hooks=hooks)
            if result.metadata.get("routed_by") in ("model", "keywords"):
                await log.record(
                    JOURNEY_ROUTED,
                    {
                        "journey": result.metadata.get("agent_key"),
                        "routed_by": result.metadata.get("routed_by"),
                    },
                )
        else:
            result = await agent.run(ctx, hooks=hooks)
        escalated = result.metadata.get("escalation")
        if escalated:
            # The model called talk_to_a_person: the conversation waits for staff.
            reason = str(escalated.get("reason") or "")
            await run_db(request_handoff, conversation_id, reason, source="model")
            result.stopped_reason = "handoff"
        control = result.metadata.get("control_events")
        if control:
            # Parked, resumed, started, abandoned, revised (agents/control.py).
            await log.record_many(
                [(e["type"], {k: v for k, v in e.items() if k != "type"}) for e in control]
            )
        # Tokens of a run that ended without a reply (handed to a person, iteration bound).
        await recorder.record_usage()
    except Exception as exc:
        with contextlib.suppress(Exception):
            await recorder.record_usage()  # what the failed turn spent still counts
        await _report(log, seen.reported, exc)
        raise
    return result


async def _report(log: JourneyEventLog, reported: bool, error: BaseException) -> None:
    """Record the ``error`` event of a failed run once (the loop may have done it)."""
    if reported or isinstance(error, JourneyBusy):
        mark_reported(error)
        return
    info = error_info(error)
    try:
        await log.record(
            "error", {"type": info.type, "message": info.message, "retriable": info.retriable}
        )
    except Exception:
        logger.exception("could not record the error event of run %s", log.run_id)
        return
    mark_reported(error)


class JourneyRuntime:
    """A journey agent as a ``RunContext`` runtime: how the host runs a registered
    ``JourneyAgent`` or ``RoutedJourneyAgent`` (an adapter is one already)."""

    def __init__(self, agent: Any) -> None:
        self.agent = agent
        self.key: str = agent.key

    async def run(self, ctx: Any) -> RunResult:
        run_id = getattr(ctx, "run_id", None) or uuid.uuid4()
        conversation_id = getattr(ctx, "conversation_id", None) or run_id
        cancelled = getattr(ctx, "cancelled", None)
        agent_ctx = AgentContext(
            run_id=run_id,
            conversation_id=conversation_id,
            input_messages=list(getattr(ctx, "input_messages", None) or ()),
            metadata=dict(getattr(ctx, "metadata", None) or {}),
            cancelled=cancelled if callable(cancelled) else None,
        )
        log = await event_log_of(ctx, conversation_id, run_id, self.key)
        result = await play_journey(self.agent, agent_ctx, log)
        if isinstance(self.agent, RoutedJourneyAgent):
            journey = result.metadata.get("agent_key")
            journey = str(journey) if journey else None
        else:
            journey = self.key
        return journey_run_result(result, journey, conversation_id)
