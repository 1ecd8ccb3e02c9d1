"""A test double of django_agent_runtime's ``RunContext``, and a runner that drives it.

django_agent_runtime is not needed to test a ``DjangoRuntimeAdapter``: ``FakeRunContext``
behaves like its ``RunContext`` in the ways that matter to an adapter. Checkpoints are
kept per run id (``get_state()`` only sees the current run's), ``emit`` records events,
``cancelled()`` can be switched on, and ``FakeRunner`` prepends the conversation's earlier
messages to ``input_messages`` on every run, as that runner does.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["CheckpointStore", "EmittedEvent", "FakeRunContext", "FakeRunner"]


@dataclass(slots=True)
class EmittedEvent:
    """One ``ctx.emit`` call."""

    type: str
    payload: dict[str, Any]


class CheckpointStore:
    """Checkpoints per run id; shared by the runs of a ``FakeRunner``."""

    def __init__(self) -> None:
        self.by_run: dict[Any, list[dict[str, Any]]] = {}

    def add(self, run_id: Any, state: dict[str, Any]) -> None:
        self.by_run.setdefault(run_id, []).append(copy.deepcopy(state))

    def latest(self, run_id: Any) -> dict[str, Any] | None:
        saved = self.by_run.get(run_id)
        return copy.deepcopy(saved[-1]) if saved else None


class FakeRunContext:
    """Behaves like django_agent_runtime's ``RunContext`` for one run."""

    def __init__(
        self,
        *,
        conversation_id: Any = None,
        input_messages: Iterable[Mapping[str, Any]] = (),
        run_id: Any = None,
        params: Mapping[str, Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
        tool_registry: Any = None,
        checkpoints: CheckpointStore | None = None,
        cancel_when: Callable[[FakeRunContext], bool] | None = None,
    ) -> None:
        self.run_id = run_id if run_id is not None else uuid.uuid4()
        self.conversation_id = conversation_id
        self.input_messages: list[dict[str, Any]] = [dict(m) for m in input_messages]
        self.params: dict[str, Any] = dict(params or {})
        self.metadata: dict[str, Any] = dict(metadata or {})
        self.tool_registry = tool_registry
        self.checkpoints = checkpoints if checkpoints is not None else CheckpointStore()
        self.events: list[EmittedEvent] = []
        self.cancel_when = cancel_when
        self._cancelled = False

    # -- the RunContext surface ------------------------------------------------------------
    async def emit(self, event_type: str, payload: dict[str, Any] | None = None) -> None:
        """Record an event (the real one puts it on the event bus)."""
        if not isinstance(event_type, str) or not event_type:
            raise TypeError(f"event_type must be a non-empty str, got {event_type!r}")
        self.events.append(EmittedEvent(event_type, copy.deepcopy(dict(payload or {}))))

    async def emit_user_message(self, content: str) -> None:
        """A message for the user (an ``assistant.message`` event)."""
        await self.emit("assistant.message", {"content": content})

    async def emit_error(self, message: str, details: dict[str, Any] | None = None) -> None:
        await self.emit("error", {"message": message, "details": dict(details or {})})

    async def checkpoint(self, state: dict[str, Any]) -> None:
        """Save a state for this run only (keyed by ``run_id``)."""
        if not isinstance(state, dict):
            raise TypeError(f"checkpoint() takes a dict, got {type(state).__name__}")
        self.checkpoints.add(self.run_id, state)

    async def get_state(self) -> dict[str, Any] | None:
        """The latest checkpoint of *this* run, or None."""
        return self.checkpoints.latest(self.run_id)

    def cancelled(self) -> bool:
        if self._cancelled:
            return True
        if self.cancel_when is not None and self.cancel_when(self):
            self._cancelled = True
        return self._cancelled

    # -- for tests -----------------------------------------------------------------------
    def cancel(self) -> None:
        """Make ``cancelled()`` return True from now on."""
        self._cancelled = True

    def event_types(self) -> list[str]:
        return [e.type for e in self.events]

    def events_of(self, event_type: str) -> list[dict[str, Any]]:
        return [e.payload for e in self.events if e.type == event_type]


@dataclass(slots=True)
class FakeRunner:
    """Plays a conversation as django_agent_runtime's runner does: one run per message.

    Every run gets a new run id (so checkpoints of earlier runs are invisible to it) and
    ``input_messages`` = the conversation's earlier messages + the new user message.
    """

    runtime: Any
    conversation_id: Any = field(default_factory=uuid.uuid4)
    metadata: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    checkpoints: CheckpointStore = field(default_factory=CheckpointStore)
    contexts: list[FakeRunContext] = field(default_factory=list)

    def context(self, text: str, *, run_id: Any = None) -> FakeRunContext:
        """The context of the next run (not started), e.g. to set ``cancel_when``."""
        return FakeRunContext(
            conversation_id=self.conversation_id,
            input_messages=[*self.history, {"role": "user", "content": text}],
            run_id=run_id,
            metadata=self.metadata,
            checkpoints=self.checkpoints,
        )

    async def send(self, text: str, *, ctx: FakeRunContext | None = None) -> Any:
        """One run for one user message; returns the runtime's RunResult."""
        ctx = ctx if ctx is not None else self.context(text)
        self.contexts.append(ctx)
        result = await self.runtime.run(ctx)
        self.history.append({"role": "user", "content": text})
        self.history.extend(
            m for m in getattr(result, "final_messages", ()) or () if m.get("role") != "user"
        )
        return result

    @property
    def last_context(self) -> FakeRunContext:
        if not self.contexts:
            raise AssertionError("no run yet: call send() first")
        return self.contexts[-1]
