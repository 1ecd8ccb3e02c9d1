"""Live events of a conversation, to its SSE listeners in this process and in others.

Durable events live in the event table; this bus only *wakes* listeners when one was
recorded (they then read the table) and carries ``assistant.delta`` fragments, which are
never stored. Publishing is thread-safe: events recorded on the database thread pool are
handed to each listener's event loop with ``call_soon_threadsafe``.

Across processes (``LIVE_EVENTS``): every event a process records is also sent on a
channel that every web process listens to (PostgreSQL ``LISTEN/NOTIFY``, no extra service;
or Redis pub/sub), so a stream on web process B shows a turn that runs on worker C as it
happens, deltas included. While a process listens, its idle streams do not poll the table;
without a channel (SQLite, ``"poll"``) they poll it every ``SSE_POLL_SECONDS``, and deltas
reach only streams on the process that runs the turn.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "LiveEvent",
    "LiveEventBus",
    "Subscription",
    "connect_signals",
    "ensure_listening",
    "listening",
    "live_bus",
    "live_channel",
    "send_to_processes",
]

logger = logging.getLogger("agent_runtime_framework.django")

#: This process, on the channel: a process ignores what it sent itself.
PROCESS_ID = uuid.uuid4().hex
CHANNEL = "arf_live"


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
    if _is_live(conversation_id, type):
        live_bus.publish(conversation_id, _live_event(type, payload, event))


def _is_live(conversation_id: Any, type: str) -> bool:
    """Streams show a conversation's events, never the ``http.*`` bookkeeping."""
    return conversation_id is not None and not type.startswith("http.")


def _live_event(type: str, payload: Any, event: Any) -> LiveEvent:
    """What listeners get, here and on other processes: a stored event by its id (they
    read the table), a delta whole, with the run it belongs to."""
    pk = getattr(event, "pk", None)
    if pk is not None:
        return LiveEvent(type, {"id": pk}, durable=True)
    data = dict(payload or {})
    run_id = getattr(event, "run_id", None)
    if run_id is not None:
        data["run_id"] = str(run_id)
    return LiveEvent(type, data, durable=False)


def connect_signals() -> None:
    """Feed the bus from the app's ``journey_event`` signal (idempotent)."""
    from ..models import JourneyEvent
    from ..signals import journey_event

    journey_event.connect(
        _forward_journey_event, sender=JourneyEvent, dispatch_uid="agent_runtime_live_bus"
    )


# -- across processes ----------------------------------------------------------------------

#: PostgreSQL refuses NOTIFY payloads from 8000 bytes on.
_MAX_NOTIFY_BYTES = 7000


_channel: str | None = None


def _forget_channel(**kwargs: Any) -> None:
    global _channel
    _channel = None


def live_channel() -> str:
    """ "postgres", "redis" or "" (poll), from ``LIVE_EVENTS`` and the database in use
    (worked out once; again after ``override_settings``)."""
    global _channel
    if _channel is None:
        from django.core.signals import setting_changed

        setting_changed.connect(_forget_channel, dispatch_uid="agent_runtime_live_channel")
        _channel = _work_out_channel()
    return _channel


def _work_out_channel() -> str:
    from django.db import connection

    from ..conf import app_settings
    from .queued import queued_mode

    setting = str(app_settings().LIVE_EVENTS or "poll")
    if setting.startswith(("redis://", "rediss://")):
        return "redis"
    if setting == "postgres" or (
        setting == "auto" and connection.vendor == "postgresql" and queued_mode()
    ):
        return "postgres"
    return ""


def _wire(events: Sequence[Any]) -> list[list[Any]]:
    """Events as the channel carries them: ``[conversation, type, data, durable]``."""
    items: list[list[Any]] = []
    for event in events:
        cid = getattr(event, "conversation_id", None)
        if _is_live(cid, event.type):
            live = _live_event(event.type, event.payload, event)
            items.append([str(cid), live.type, live.payload, live.durable])
    return items


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=True, default=str)


def _chunks(items: list[list[Any]]) -> Iterator[str]:
    """Messages of this process's items, each under the channel's size limit."""
    batch: list[str] = []
    size = 0
    for item in items:
        text = _json(item)
        if len(text) > _MAX_NOTIFY_BYTES:
            continue  # a delta this large never happens; the table has everything stored
        if batch and size + len(text) > _MAX_NOTIFY_BYTES:
            yield _envelope(batch)
            batch, size = [], 0
        batch.append(text)
        size += len(text)
    if batch:
        yield _envelope(batch)


def _envelope(items: list[str]) -> str:
    """One channel message: this process (which ignores it) and the items, as JSON."""
    return f'{{"o":"{PROCESS_ID}","e":[{",".join(items)}]}}'


_redis_lock = threading.Lock()
_redis_clients: dict[str, Any] = {}


def _redis_url() -> str:
    from ..conf import app_settings

    return str(app_settings().LIVE_EVENTS)


def send_to_processes(events: Sequence[Any]) -> None:
    """Put events just recorded (and committed) on the channel, if there is one.

    Called on the database thread right after the signals; one NOTIFY (or PUBLISH) per
    batch. A failure is logged, never raised: the table still has every stored event.
    """
    channel = live_channel()
    if not channel or not events:
        return
    items = _wire(events)
    if not items:
        return
    try:
        if channel == "postgres":
            from django.db import connection

            with connection.cursor() as cursor:
                for chunk in _chunks(items):
                    cursor.execute("SELECT pg_notify(%s, %s)", [CHANNEL, chunk])
        else:
            url = _redis_url()
            with _redis_lock:
                client = _redis_clients.get(url)
                if client is None:
                    import redis

                    client = _redis_clients[url] = redis.Redis.from_url(url)
            for chunk in _chunks(items):
                client.publish(CHANNEL, chunk)
    except Exception:
        logger.exception("could not send live events to other processes")


def _deliver(raw: str | bytes) -> None:
    """A message from the channel: hand its events to this process's listeners."""
    try:
        message = json.loads(raw)
    except ValueError:
        return
    if not isinstance(message, dict) or message.get("o") == PROCESS_ID:
        return
    for item in message.get("e") or ():
        try:
            cid, type_, data, durable = item
        except (TypeError, ValueError):
            continue
        if isinstance(data, dict):
            live_bus.publish(cid, LiveEvent(str(type_), data, durable=bool(durable)))


class _Listener:
    """This event loop's subscription to the channel (one connection per process loop)."""

    def __init__(self, channel: str) -> None:
        self.channel = channel
        self.connected = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def run(self) -> None:
        delay = 0.5
        while True:
            try:
                if self.channel == "postgres":
                    await self._postgres()
                else:
                    await self._redis()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.warning("live events: channel lost; streams poll meanwhile", exc_info=True)
            self.connected.clear()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)

    async def _postgres(self) -> None:
        import psycopg
        from django.db import connection

        params = connection.settings_dict
        conninfo = psycopg.conninfo.make_conninfo(
            dbname=params.get("NAME") or "",
            user=params.get("USER") or None,
            password=params.get("PASSWORD") or None,
            host=params.get("HOST") or None,
            port=str(params.get("PORT") or "") or None,
        )
        conn = await psycopg.AsyncConnection.connect(conninfo, autocommit=True)
        async with conn:
            await conn.execute(f"LISTEN {CHANNEL}")
            self.connected.set()
            async for note in conn.notifies():
                _deliver(note.payload)

    async def _redis(self) -> None:
        import redis.asyncio as aredis

        client = aredis.Redis.from_url(_redis_url())
        try:
            pubsub = client.pubsub()
            await pubsub.subscribe(CHANNEL)
            self.connected.set()
            async for message in pubsub.listen():
                if message.get("type") == "message":
                    _deliver(message["data"])
        finally:
            await client.aclose()


_listeners: dict[int, _Listener] = {}
_listeners_lock = threading.Lock()


def ensure_listening() -> _Listener | None:
    """Start this event loop's listener on the channel (once); None without a channel."""
    channel = live_channel()
    if not channel:
        return None
    loop = asyncio.get_running_loop()
    with _listeners_lock:
        listener = _listeners.get(id(loop))
        if listener is None or listener.task is None or listener.task.done():
            listener = _Listener(channel)
            listener.task = loop.create_task(listener.run())
            _listeners[id(loop)] = listener
    return listener


def listening(listener: _Listener | None) -> bool:
    """Whether streams can rely on the channel (and stop polling the table)."""
    return listener is not None and listener.connected.is_set()
