"""In-process broadcast of a conversation's live events to its SSE listeners.

Durable events live in the event table; this bus only *wakes* listeners when one was
recorded (they then read the table) and carries ``assistant.delta`` fragments, which are
never stored. With several worker processes the durable events still reach every
listener (they poll the table too); deltas reach only listeners on the worker that runs
the turn.

Publishing is thread-safe: events recorded on the database thread pool are handed to
each listener's event loop with ``call_soon_threadsafe``.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

__all__ = ["LiveEvent", "LiveEventBus", "Subscription", "connect_signals", "live_bus"]


@dataclass(frozen=True, slots=True)
class LiveEvent:
    """A notification: ``durable`` ones are in the table (re-read it), others carry data."""

    type: str
    payload: dict[str, Any]
    durable: bool = False


class Subscription:
    """One listener's bounded queue; when full, the oldest live delta is dropped."""

    __slots__ = ("_loop", "conversation_id", "dropped", "queue")

    def __init__(self, conversation_id: str, loop: asyncio.AbstractEventLoop, size: int) -> None:
        self.conversation_id = conversation_id
        self.queue: asyncio.Queue[LiveEvent] = asyncio.Queue(maxsize=size)
        self._loop = loop
        self.dropped = 0

    def _put(self, event: LiveEvent) -> None:
        if self.queue.full():
            try:
                self.queue.get_nowait()
                self.dropped += 1
            except asyncio.QueueEmpty:  # pragma: no cover - raced with the reader
                pass
        self.queue.put_nowait(event)

    def deliver(self, event: LiveEvent) -> None:
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            self._put(event)
        elif not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._put, event)

    async def get(self, timeout: float) -> LiveEvent | None:
        """The next event, or None after ``timeout`` seconds."""
        try:
            return await asyncio.wait_for(self.queue.get(), timeout)
        except TimeoutError:
            return None

    def drain(self) -> list[LiveEvent]:
        items: list[LiveEvent] = []
        while True:
            try:
                items.append(self.queue.get_nowait())
            except asyncio.QueueEmpty:
                return items


class LiveEventBus:
    """Listeners per conversation id."""

    def __init__(self, queue_size: int = 256) -> None:
        self.queue_size = queue_size
        self._subs: dict[str, set[Subscription]] = {}
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def subscribe(self, conversation_id: Any) -> Iterator[Subscription]:
        """Listen to one conversation while the block runs (call from async code)."""
        key = str(conversation_id)
        sub = Subscription(key, asyncio.get_running_loop(), self.queue_size)
        with self._lock:
            self._subs.setdefault(key, set()).add(sub)
        try:
            yield sub
        finally:
            with self._lock:
                subs = self._subs.get(key)
                if subs is not None:
                    subs.discard(sub)
                    if not subs:
                        del self._subs[key]

    def publish(self, conversation_id: Any, event: LiveEvent) -> int:
        """Hand ``event`` to every listener of the conversation; returns how many."""
        with self._lock:
            subs = list(self._subs.get(str(conversation_id), ()))
        for sub in subs:
            sub.deliver(event)
        return len(subs)

    def listeners(self, conversation_id: Any) -> int:
        with self._lock:
            return len(self._subs.get(str(conversation_id), ()))


#: The process-wide bus used by the HTTP host.
live_bus = LiveEventBus()


def _forward_journey_event(
    sender: Any,
    *,
    type: str,
    payload: Any,
    conversation_id: Any = None,
    event: Any = None,
    **kwargs: Any,
) -> None:
    """``journey_event`` receiver: wake listeners of stored events, carry deltas."""
    if conversation_id is None or type.startswith("http."):
        return
    if getattr(event, "pk", None) is None:
        live_bus.publish(conversation_id, LiveEvent(type, dict(payload or {}), durable=False))
    else:
        live_bus.publish(conversation_id, LiveEvent(type, {"id": event.pk}, durable=True))


def connect_signals() -> None:
    """Feed the bus from the app's ``journey_event`` signal (idempotent)."""
    from .models import JourneyEvent
    from .signals import journey_event

    journey_event.connect(
        _forward_journey_event, sender=JourneyEvent, dispatch_uid="agent_runtime_live_bus"
    )
