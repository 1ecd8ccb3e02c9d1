"""The live event stream of a conversation (server-sent events), resumable."""

import json
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

from django.core.handlers.wsgi import WSGIRequest
from django.http import HttpRequest, StreamingHttpResponse
from ninja import Header, Query, Router

from ..host.live import connect_signals, ensure_listening, listening, live_bus
from ..models import JourneyEvent
from ..store.db import run_db
from .access import caller_first, caller_of
from .conversations import owned_row_sync
from .errors import ApiError, errors

__all__ = ["MAX_EVENT_ID", "SSE_KEEPALIVE_SECONDS", "SSE_POLL_SECONDS", "router"]

#: Seconds between keep-alive comments on an idle event stream.
SSE_KEEPALIVE_SECONDS = 15.0
#: Seconds between reads of the event table while waiting (events of other workers).
SSE_POLL_SECONDS = 2.0
#: The largest event id (the table's id is a 64-bit integer).
MAX_EVENT_ID = 2**63 - 1

connect_signals()

router = Router()


def _last_event_id(raw: str) -> int:
    raw = raw.strip()
    if not raw:
        return 0
    head = raw.split("-", 1)[0] if not raw.startswith("-") else raw
    try:
        value = int(head)
    except ValueError:
        raise ApiError(
            400,
            "invalid_last_event_id",
            "Last-Event-ID must be an event id (an integer)",
            {"last_event_id": raw[:100]},
        ) from None
    if not 0 <= value <= MAX_EVENT_ID:
        raise ApiError(
            400,
            "invalid_last_event_id",
            f"Last-Event-ID must be between 0 and {MAX_EVENT_ID}",
            {"last_event_id": raw[:100]},
        )
    return value


def _events_after_sync(
    cid: uuid.UUID, after: int, limit: int, upto: int | None = None
) -> list[dict[str, Any]]:
    rows = JourneyEvent.objects.filter(conversation_id=cid, id__gt=after)
    if upto is not None:
        rows = rows.filter(id__lte=upto)
    found = rows.exclude(type__startswith="http.").order_by("id")
    values = found.values("id", "type", "payload", "run_id")[:limit]
    return [_with_run(dict(row)) for row in values]


def _with_run(row: dict[str, Any]) -> dict[str, Any]:
    """The stream's data: the payload, and the run it belongs to (which turn, which tab)."""
    payload = row["payload"]
    data = dict(payload) if isinstance(payload, dict) else {"value": payload}
    data["run_id"] = str(row["run_id"])
    row["payload"] = data
    return row


def _sse(event_type: str, payload: Any, event_id: Any = None) -> str:
    data = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event_type}\ndata: {data}\n\n"


async def _event_stream(cid: uuid.UUID, after: int) -> AsyncIterator[str]:
    """Stored events after ``after``, then live ones; keep-alive comments when idle.

    Stored events carry their table id. Live deltas (not stored) carry the id of the
    last stored event plus a suffix (``"41-3"``), so a client that reconnects with it
    resumes after that stored event. Notifications are handled in the order they were
    published, and a stored event is read only up to the id it was announced with, so
    deltas and stored events of a turn reach the client in the order they happened.
    """
    batch = 200
    deltas = 0

    async def stored(upto: int | None = None) -> AsyncIterator[str]:
        nonlocal after
        while True:
            rows = await run_db(_events_after_sync, cid, after, batch, upto)
            for row in rows:
                after = row["id"]
                yield _sse(row["type"], row["payload"], row["id"])
            if len(rows) < batch:
                return

    listener = ensure_listening()  # the channel from other processes, if configured
    with live_bus.subscribe(cid) as subscription:
        yield f"retry: 2000\n: events of conversation {cid}\n\n"
        async for chunk in stored():
            yield chunk
        idle = 0.0
        relied = False  # on the channel: no polling while it is connected
        while True:
            live = listening(listener)
            if live and not relied:
                # Connected just now: what was stored before is read once, then announced.
                async for chunk in stored():
                    yield chunk
            relied = live
            wait = SSE_KEEPALIVE_SECONDS if live else SSE_POLL_SECONDS
            event = await subscription.get(timeout=wait)
            if event is None:
                if not live:
                    # Nothing announced here: events of turns on other workers, if any.
                    async for chunk in stored():
                        idle = 0.0
                        yield chunk
                idle += wait
                if idle >= SSE_KEEPALIVE_SECONDS:
                    idle = 0.0
                    yield ": keep-alive\n\n"
                continue
            idle = 0.0
            for item in [event, *subscription.drain()]:
                if item.durable:
                    announced = item.payload.get("id")
                    if isinstance(announced, int) and announced > after:
                        async for chunk in stored(announced):
                            yield chunk
                    continue
                deltas += 1
                yield _sse(item.type, item.payload, f"{after}-{deltas}")


def _event_stream_polled(cid: uuid.UUID, after: int) -> Iterator[str]:
    """The event stream for a WSGI server (``runserver``): stored events, polled.

    A WSGI server can only stream a synchronous iterator (Django would buffer an async one
    whole, so the client saw 0 bytes). This one polls the event table on the request's
    thread every ``SSE_POLL_SECONDS``; live text deltas, which are not stored, need an ASGI
    server (see "Serving your project" in the README).
    """
    yield f"retry: 2000\n: events of conversation {cid} (polled: WSGI server)\n\n"
    idle = 0.0
    while True:
        rows = _events_after_sync(cid, after, 200, None)
        for row in rows:
            after = row["id"]
            yield _sse(row["type"], row["payload"], row["id"])
        if len(rows) == 200:
            continue
        time.sleep(SSE_POLL_SECONDS)
        idle += SSE_POLL_SECONDS
        if idle >= SSE_KEEPALIVE_SECONDS:
            idle = 0.0
            yield ": keep-alive\n\n"


_STREAM_DESCRIPTION = (
    "Each event is `id: <event id>`, `event: <type>`, `data: <json>`. Types: "
    "tool.call, tool.result, assistant.message, assistant.delta (live only), "
    "journey.step_changed, journey.completed, journey.routed, error; people "
    "in the loop: handoff.requested, handoff.taken, staff.message, "
    "handoff.returned, handoff.user_message, approval.requested, "
    "approval.approved, approval.rejected, approval.executed. "
    "Resumes after Last-Event-ID (header or last_event_id query). Comments "
    "keep the connection alive."
)

_EVENT_STREAM = {"text/event-stream": {"schema": {"type": "string"}}}


@router.get(
    "/conversations/{conversation_id}/events",
    url_name="events",
    operation_id="streamEvents",
    summary="Server-sent events of the conversation, resumable",
    description=_STREAM_DESCRIPTION,
    response={200: None, **errors(400, 403, 404)},
    openapi_extra={
        "responses": {200: {"description": "The event stream", "content": _EVENT_STREAM}}
    },
)
@caller_first()
async def stream_events(
    request: HttpRequest,
    conversation_id: uuid.UUID,
    last_event_id: str | None = Query(None),
    last_event_id_header: str | None = Header(None, alias="Last-Event-ID"),
) -> Any:
    """``text/event-stream`` of the conversation's events, resumable with Last-Event-ID."""
    caller = await caller_of(request)
    await run_db(owned_row_sync, conversation_id, caller)
    after = _last_event_id(last_event_id_header or last_event_id or "")
    stream: Any = (
        _event_stream_polled(conversation_id, after)
        if isinstance(request, WSGIRequest)
        else _event_stream(conversation_id, after)
    )
    response = StreamingHttpResponse(stream, content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"
    return response
