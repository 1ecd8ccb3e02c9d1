"""The event bus: every event goes to the ``JourneyEvent`` table and out as a Django signal.

- ``JourneyEventLog``: one run's event writer. It numbers the run's events (``seq``),
  writes each row, sends the signals and, when given, forwards the event to an async
  ``emit(event_type, payload)`` callback (the adapter passes django_agent_runtime's
  ``ctx.emit``).
- ``record_event`` / ``record_events``: the same from sync code, for one-off events.
- ``EventRecorderHooks``: executor hooks that turn a run into events (``tool.call``,
  ``tool.result``, ``assistant.delta``, ``assistant.message``, ``journey.step_changed``,
  ``journey.completed``, ``error``).

Payloads are made JSON-safe and bounded: strings longer than ``MAX_EVENT_PAYLOAD_CHARS``
are cut with a ``…[truncated N chars]`` marker, so one huge tool result cannot bloat the
table or the stream.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import logging
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from enum import Enum
from typing import TYPE_CHECKING, Any

from django.db import IntegrityError, transaction
from django.db.models import Max

from ...agents.control import (
    JOURNEY_ABANDONED,
    JOURNEY_PARKED,
    JOURNEY_RESUMED,
    JOURNEY_REVISED,
    JOURNEY_STARTED,
)
from ...agents.routed import routed_journey_key
from ...executor.hooks import ExecutorHooks
from ..host.usage import USAGE_EVENT, ModelName, UsageMeter
from ..models import JourneyEvent
from ..signals import journey_completed, journey_event, journey_step_changed
from .db import run_db
from .redaction import Redactor, event_redactor

if TYPE_CHECKING:
    from ...executor.loop import ExecutorResult

__all__ = [
    "ASSISTANT_DELTA",
    "ASSISTANT_MESSAGE",
    "ERROR",
    "EVENT_TYPES",
    "JOURNEY_ABANDONED",
    "JOURNEY_COMPLETED",
    "JOURNEY_PARKED",
    "JOURNEY_RESUMED",
    "JOURNEY_REVISED",
    "JOURNEY_ROUTED",
    "JOURNEY_STARTED",
    "JOURNEY_STEP_CHANGED",
    "PROGRESS_UPDATE",
    "RUN_CANCELLED",
    "RUN_FAILED",
    "RUN_STARTED",
    "RUN_SUCCEEDED",
    "STATE_CHECKPOINT",
    "STEP_COMPLETED",
    "STEP_STARTED",
    "TOOL_CALL",
    "TOOL_RESULT",
    "EmitCallback",
    "EventRecorderHooks",
    "JourneyEventLog",
    "json_safe",
    "record_event",
    "record_events",
    "terminal_steps_of",
]

logger = logging.getLogger("agent_runtime_framework.django")

# django_agent_runtime's standard event types ...
RUN_STARTED = "run.started"
RUN_SUCCEEDED = "run.succeeded"
RUN_FAILED = "run.failed"
RUN_CANCELLED = "run.cancelled"
ASSISTANT_DELTA = "assistant.delta"
ASSISTANT_MESSAGE = "assistant.message"
TOOL_CALL = "tool.call"
TOOL_RESULT = "tool.result"
STATE_CHECKPOINT = "state.checkpoint"
ERROR = "error"
STEP_STARTED = "step.started"
STEP_COMPLETED = "step.completed"
PROGRESS_UPDATE = "progress.update"
# ... and the journey's own.
JOURNEY_STEP_CHANGED = "journey.step_changed"
JOURNEY_COMPLETED = "journey.completed"
JOURNEY_ROUTED = "journey.routed"

EVENT_TYPES = frozenset(
    {
        RUN_STARTED,
        RUN_SUCCEEDED,
        RUN_FAILED,
        RUN_CANCELLED,
        ASSISTANT_DELTA,
        ASSISTANT_MESSAGE,
        TOOL_CALL,
        TOOL_RESULT,
        STATE_CHECKPOINT,
        ERROR,
        STEP_STARTED,
        STEP_COMPLETED,
        PROGRESS_UPDATE,
        JOURNEY_STEP_CHANGED,
        JOURNEY_COMPLETED,
        JOURNEY_ROUTED,
        # conversation control (agents/control.py)
        JOURNEY_PARKED,
        JOURNEY_RESUMED,
        JOURNEY_STARTED,
        JOURNEY_ABANDONED,
        JOURNEY_REVISED,
        USAGE_EVENT,
    }
)

#: ``async emit(event_type, payload)``: where events are forwarded besides the table.
EmitCallback = Callable[[str, dict[str, Any]], Awaitable[Any]]

_MAX_DEPTH = 20


def _max_chars() -> int:
    from ..conf import app_settings

    return int(app_settings().MAX_EVENT_PAYLOAD_CHARS)


def _cut(text: str, limit: int, redact: Redactor | None = None) -> str:
    if redact is not None:  # redact first: a cut must not leave half an address unmasked
        return _redact_cut(text, limit, redact)
    if limit > 0 and len(text) > limit:
        return f"{text[:limit]}…[truncated {len(text) - limit} chars]"
    return text


#: Characters past the cut that are redacted too, so a value straddling it is still masked.
_REDACT_MARGIN = 64


def _redact_cut(text: str, limit: int, redact: Redactor) -> str:
    """Redact, then cut; a long text is redacted only as far as it is kept (plus a margin)."""
    if limit <= 0 or len(text) <= limit:
        return redact(text)
    whole = len(text) <= limit + _REDACT_MARGIN
    kept = redact(text if whole else text[: limit + _REDACT_MARGIN])
    if whole and len(kept) <= limit:  # masking made it short enough
        return kept
    dropped = len(kept) - limit if whole else len(text) - limit
    return f"{kept[:limit]}…[truncated {dropped} chars]"


def json_safe(
    value: Any, max_chars: int | None = None, _depth: int = 0, *, redact: Redactor | None = None
) -> Any:
    """``value`` as plain JSON data: enums by value, UUIDs/dates/decimals as strings,
    dataclasses and sets/tuples converted, unknown objects by ``repr``; strings cut at
    ``max_chars`` (default ``MAX_EVENT_PAYLOAD_CHARS``) and, given ``redact``, redacted in
    the same pass."""
    limit = _max_chars() if max_chars is None else max_chars
    if _depth > _MAX_DEPTH:
        return "…[nested too deep]"
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if value == value and value not in (float("inf"), float("-inf")) else None
    if isinstance(value, str):
        return _cut(value, limit, redact)
    if isinstance(value, Enum):
        return json_safe(value.value, limit, _depth + 1, redact=redact)
    if isinstance(value, uuid.UUID | decimal.Decimal):
        return str(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {
            str(json_safe(k, limit, _depth + 1, redact=redact)): json_safe(
                v, limit, _depth + 1, redact=redact
            )
            for k, v in value.items()
        }
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        to_dict = getattr(value, "to_dict", None)
        data = to_dict() if callable(to_dict) else dataclasses.asdict(value)
        return json_safe(data, limit, _depth + 1, redact=redact)
    if isinstance(value, list | tuple | set | frozenset):
        return [json_safe(v, limit, _depth + 1, redact=redact) for v in value]
    if isinstance(value, bytes):
        return _cut(repr(value), limit, redact)
    if isinstance(value, BaseException):
        return _cut(f"{type(value).__name__}: {value}", limit, redact)
    return _cut(repr(value), limit, redact)


def _check_type(event_type: str) -> None:
    if not isinstance(event_type, str) or not event_type or len(event_type) > 100:
        raise ValueError(
            f"event_type must be a non-empty string of <= 100 chars, got {event_type!r}"
        )


def _step_text(step: Any) -> Any:
    return step.value if isinstance(step, Enum) else step


# -- writing + signalling (runs on a database thread) --------------------------------------


def _send(event: JourneyEvent) -> None:
    """Send the generic signal and, for journey events, the specific one."""
    common = {
        "event": event,
        "run_id": event.run_id,
        "conversation_id": event.conversation_id,
        "agent_key": event.agent_key,
    }
    responses = journey_event.send_robust(
        sender=JourneyEvent, type=event.type, payload=event.payload, **common
    )
    payload = event.payload if isinstance(event.payload, dict) else {}
    if event.type == JOURNEY_STEP_CHANGED:
        responses += journey_step_changed.send_robust(
            sender=JourneyEvent, old_step=payload.get("from"), new_step=payload.get("to"), **common
        )
    elif event.type == JOURNEY_COMPLETED:
        responses += journey_completed.send_robust(
            sender=JourneyEvent, step=payload.get("step"), **common
        )
    for receiver, response in responses:
        if isinstance(response, BaseException):
            logger.error(
                "signal receiver %r failed on %s: %s",
                receiver,
                event.type,
                response,
                exc_info=response,
            )


def _write(events: list[JourneyEvent]) -> list[JourneyEvent]:
    """Insert rows (one statement), creating a missing conversation row once, then signal.

    Step changes update the funnel's counts, usage records the usage aggregates, in the
    same transaction (``funnel_counts``, ``usage.record_usage_counts``)."""
    from ..host.usage import record_usage_counts
    from .funnel_counts import record

    try:
        with transaction.atomic():
            JourneyEvent.objects.bulk_create(events)
            record(events)
            record_usage_counts(events)
    except IntegrityError:
        # The conversation row may not exist yet (events before the first turn's claim).
        from .orm import ensure_conversation_sync

        for cid in {e.conversation_id for e in events if e.conversation_id is not None}:
            ensure_conversation_sync(cid, events[0].agent_key)
        with transaction.atomic():
            JourneyEvent.objects.bulk_create(events)
            record(events)
            record_usage_counts(events)
    _send_all(events)
    return events


def _send_all(events: Sequence[JourneyEvent]) -> None:
    """Signal events after their commit (or, not stored, as they happen) and put them on
    the channel to other processes (``live.send_to_processes``)."""
    for event in events:
        _send(event)
    from ..host.live import send_to_processes

    send_to_processes(events)


#: Signals of stored events written by a commit (``stores``), sent after it.
send_signals = _send_all


def _built_payload(
    payload: Mapping[str, Any], limit: int, redact: Redactor | None = None
) -> dict[str, Any]:
    """A payload the framework built itself (str keys; str, number or JSON values): its
    strings are cut (and redacted) directly, only nested values go through ``json_safe``."""
    out: dict[str, Any] = {}
    for key, value in payload.items():
        kind = type(value)
        if kind is str:
            out[key] = _cut(value, limit, redact)
        elif value is None or kind is int or kind is bool:
            out[key] = value
        else:
            out[key] = json_safe(value, limit, 1, redact=redact)
    return out


def _defer(conversation_id: uuid.UUID | None, rows: list[JourneyEvent]) -> bool:
    """Leave stored rows to the turn's next commit when this task holds its claim."""
    from .orm import buffer_events

    return buffer_events(conversation_id, rows)


def _conversation_uuid(conversation_id: Any) -> uuid.UUID | None:
    if conversation_id is None:
        return None
    from .orm import conversation_uuid

    return conversation_uuid(conversation_id)


def next_event_seq_sync(run_id: Any) -> int:
    """One past the run's highest stored event seq (0 for a run without events): where a
    run continues numbering, e.g. when a runner retries it under the same run id."""
    highest = JourneyEvent.objects.filter(run_id=uuid.UUID(str(run_id))).aggregate(m=Max("seq"))[
        "m"
    ]
    return 0 if highest is None else highest + 1


def record_events(
    run_id: Any,
    events: Iterable[tuple[str, Mapping[str, Any] | None]],
    *,
    conversation_id: Any = None,
    agent_key: str = "",
    start_seq: int | None = None,
) -> list[JourneyEvent]:
    """Write several ``(event_type, payload)`` events of one run (sync) and signal them.

    ``start_seq`` defaults to one past the run's highest stored seq.
    """
    run = uuid.UUID(str(run_id))
    cid = _conversation_uuid(conversation_id)
    items = list(events)
    for event_type, _ in items:
        _check_type(event_type)
    if start_seq is None:
        start_seq = next_event_seq_sync(run)
    limit = _max_chars()
    redact = event_redactor()
    rows = [
        JourneyEvent(
            conversation_id=cid,
            agent_key=agent_key,
            run_id=run,
            seq=start_seq + i,
            type=event_type,
            payload=json_safe(dict(payload or {}), limit, redact=redact),
        )
        for i, (event_type, payload) in enumerate(items)
    ]
    return _write(rows)


def record_event(
    run_id: Any,
    event_type: str,
    payload: Mapping[str, Any] | None = None,
    *,
    conversation_id: Any = None,
    agent_key: str = "",
    seq: int | None = None,
) -> JourneyEvent:
    """Write one event (sync) and send its signals; returns the saved row."""
    return record_events(
        run_id,
        [(event_type, payload)],
        conversation_id=conversation_id,
        agent_key=agent_key,
        start_seq=seq,
    )[0]


#: Events about one journey's steps: recorded under that journey's key (``_row``).
_JOURNEY_FACTS = frozenset({JOURNEY_STEP_CHANGED, JOURNEY_COMPLETED})


class JourneyEventLog:
    """One run's events: numbered, stored, signalled and forwarded to ``emit``.

    ``assistant.delta`` events are signalled and forwarded but not stored unless
    ``store_deltas=True`` (a streamed reply would otherwise write a row per fragment; the
    complete reply is stored as ``assistant.message``).
    """

    def __init__(
        self,
        run_id: Any = None,
        conversation_id: Any = None,
        agent_key: str = "",
        *,
        emit: EmitCallback | None = None,
        start_seq: int = 0,
        store_deltas: bool = False,
        max_payload_chars: int | None = None,
    ) -> None:
        self.run_id = uuid.UUID(str(run_id)) if run_id is not None else uuid.uuid4()
        self.conversation_id = _conversation_uuid(conversation_id)
        self.agent_key = agent_key
        #: The journey whose steps this run's step events describe, when it is not the
        #: runtime registered under ``agent_key`` (an agent registered under another key).
        self.journey_key: str | None = None
        self.emit = emit
        self.next_seq = start_seq
        self.store_deltas = store_deltas
        self.max_payload_chars = _max_chars() if max_payload_chars is None else max_payload_chars
        #: Applied to every payload string (``REDACT``); set it to override per log.
        self.redact: Redactor | None = event_redactor()

    def _row(
        self, event_type: str, payload: Mapping[str, Any] | None, built: bool = False
    ) -> JourneyEvent:
        """A row for the event; stored rows take the run's next seq, others get -1.

        ``built``: the framework made the payload (``EventRecorderHooks``), so it is not
        walked again as a whole (``_built_payload``).
        """
        _check_type(event_type)
        stored = self.store_deltas or event_type != ASSISTANT_DELTA
        agent_key = self.agent_key
        if event_type in _JOURNEY_FACTS:
            # Behind a router, a step belongs to the journey the router runs, not to it.
            agent_key = routed_journey_key() or self.journey_key or agent_key
        row = JourneyEvent(
            conversation_id=self.conversation_id,
            agent_key=agent_key,
            run_id=self.run_id,
            seq=self.next_seq if stored else -1,
            type=event_type,
            payload=(
                _built_payload(payload, self.max_payload_chars, self.redact)
                if built and payload is not None
                else json_safe(dict(payload or {}), self.max_payload_chars, redact=self.redact)
            ),
        )
        if stored:
            self.next_seq += 1
        return row

    async def record(
        self, event_type: str, payload: Mapping[str, Any] | None = None
    ) -> JourneyEvent:
        """Store + signal one event, then forward it to ``emit``; returns the row."""
        return (await self.record_many([(event_type, payload)]))[0]

    async def record_many(
        self, events: Sequence[tuple[str, Mapping[str, Any] | None]], *, _built: bool = False
    ) -> list[JourneyEvent]:
        """Several events in one INSERT, in order; then ``emit`` each.

        During a turn that holds the conversation (``DjangoMemoryManager``'s claim, in this
        task) stored events are written by the turn's next commit, in its transaction, and
        signalled after it (or when the claim is released); the rows get their ids then.
        """
        rows = [self._row(t, p, _built) for t, p in events]
        stored = [r for r in rows if r.seq >= 0]
        if stored and not _defer(self.conversation_id, stored):
            await run_db(_write, stored)
        unstored = [r for r in rows if r.seq < 0]
        if unstored and journey_event.has_listeners(JourneyEvent):
            await run_db(_send_all, unstored)
        if self.emit is not None:
            for row in rows:
                await self.emit(row.type, row.payload)
        return rows

    def record_sync(
        self, event_type: str, payload: Mapping[str, Any] | None = None
    ) -> JourneyEvent:
        """``record`` for sync code (no ``emit``: it is async)."""
        row = self._row(event_type, payload)
        if row.seq < 0:
            _send_all([row])
            return row
        return _write([row])[0]


_TERMINAL_CACHE: dict[type, frozenset[Any]] = {}


def terminal_steps_of(agent: Any) -> frozenset[Any]:
    """Step values at which ``agent.is_terminal_state`` is true (from its step enum)."""
    from ...agents.introspect import journey_steps, step_value

    cls = type(agent)
    cached = _TERMINAL_CACHE.get(cls)
    if cached is not None:
        return cached
    found: set[Any] = set()
    is_terminal = getattr(agent, "is_terminal_state", None)
    for step in journey_steps(agent):
        try:
            state = agent.get_initial_state()
            state.step = step
            terminal = is_terminal(state) if callable(is_terminal) else bool(state.is_terminal())
        except Exception:
            continue
        if terminal:
            found.add(step_value(step))
    result = frozenset(found)
    _TERMINAL_CACHE[cls] = result
    return result


class EventRecorderHooks(ExecutorHooks):
    """Turns an executor run into events on a ``JourneyEventLog``.

    ``agent`` (optional) tells which steps are terminal, so reaching one records
    ``journey.completed``; ``terminal_steps`` gives them directly instead. ``model`` (a
    name, or a function returning the model of the call being made) labels the tokens
    each model call cost; they are recorded on the reply (``usage.py``), or by
    ``record_usage`` when a run ends without one.
    """

    def __init__(
        self,
        log: JourneyEventLog,
        *,
        agent: Any = None,
        terminal_steps: Iterable[Any] | None = None,
        model: ModelName = None,
    ) -> None:
        self.log = log
        self.model = model
        self.meter = UsageMeter()
        if terminal_steps is not None:
            self.terminal_steps = frozenset(_step_text(s) for s in terminal_steps)
        elif agent is not None:
            self.terminal_steps = terminal_steps_of(agent)
        else:
            self.terminal_steps = frozenset()

    async def on_llm_delta(self, delta: str) -> None:
        await self.log.record_many([(ASSISTANT_DELTA, {"delta": delta})], _built=True)

    async def on_llm_end(self, message: dict[str, Any], usage: dict[str, int]) -> None:
        model = self.model() if callable(self.model) else self.model
        flushed = self.meter.add(str(model or ""), routed_journey_key(), usage)
        if flushed is not None:  # another model or journey than the calls before
            await self.log.record_many([(USAGE_EVENT, flushed)], _built=True)

    async def record_usage(self) -> None:
        """Record tokens spent since the last reply (a run that ended without one)."""
        pending = self.meter.take()
        if pending is not None:
            await self.log.record_many([(USAGE_EVENT, pending)], _built=True)

    async def on_tool_start(self, name: str, arguments: dict[str, Any]) -> None:
        await self.log.record_many(
            [(TOOL_CALL, {"name": name, "arguments": arguments})], _built=True
        )

    async def on_tool_end(self, name: str, result: str) -> None:
        await self.log.record_many(
            [(TOOL_RESULT, {"name": name, "status": "ok", "result": result})], _built=True
        )

    async def on_tool_error(
        self, name: str, arguments: dict[str, Any], error: BaseException
    ) -> None:
        await self.log.record(
            TOOL_RESULT,
            {
                "name": name,
                "status": "error",
                "error": str(error),
                "error_type": type(error).__name__,
            },
        )

    async def on_tool_rejected(self, name: str, arguments: Any, reason: str) -> None:
        await self.log.record(
            TOOL_RESULT,
            {"name": name, "status": "rejected", "arguments": arguments, "result": reason},
        )

    async def on_step_change(self, old_step: Any, new_step: Any) -> None:
        new = _step_text(new_step)
        events: list[tuple[str, Mapping[str, Any] | None]] = [
            (JOURNEY_STEP_CHANGED, {"from": _step_text(old_step), "to": new})
        ]
        if new in self.terminal_steps:
            events.append((JOURNEY_COMPLETED, {"step": new}))
        await self.log.record_many(events, _built=True)

    async def on_complete(self, result: ExecutorResult) -> None:
        if result.content:
            # The reply carries the tokens of every call since the last record (a router's
            # routing call included), with the model that made them.
            spent = self.meter.take()
            payload: dict[str, Any] = {
                "content": result.content,
                "stopped_reason": result.stopped_reason,
                "iterations": result.iterations,
                "usage": spent["usage"] if spent is not None else result.usage,
            }
            if spent is not None:
                payload["model"] = spent["model"]
                if "journey" in spent:
                    payload["journey"] = spent["journey"]
            await self.log.record_many([(ASSISTANT_MESSAGE, payload)], _built=True)

    async def on_error(self, error: BaseException) -> None:
        await self.log.record(ERROR, {"message": str(error), "type": type(error).__name__})
