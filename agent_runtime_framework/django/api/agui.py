"""AG-UI: any AG-UI front end drives a journey, at ``POST <api prefix>ag-ui/<agent>``.

The endpoint speaks the AG-UI protocol (https://docs.ag-ui.com): it takes a
``RunAgentInput`` and answers with AG-UI events over server-sent events. Event types,
input parsing and encoding come from the official ``ag-ui-protocol`` package (``ag_ui``),
so the wire format is the protocol's, not a copy of it.

It is a translation layer over the JSON API, with the same guarantees because it uses the
same pieces: the caller, CSRF, body-size, JSON and message checks of ``api``, the one
ownership rule (``Caller.owns``), and ``run_turn`` for the turn itself (one turn at a time
per conversation, durable state, idempotency). AG-UI's ``threadId`` is the conversation
id (a new one starts a conversation owned by the caller) and ``runId`` is the turn's
idempotency key. Only the last message of the input is used, and it must be the new user
message: the history, state and tools a client sends are not trusted over the stored ones.

Errors found before the stream starts are the JSON API's 4xx answers; a turn that fails
once the stream is open ends it with ``RUN_ERROR`` carrying the JSON API's error code
(``conversation_busy``, ``llm_error``, ...).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Mapping
from typing import Any

from ag_ui.core import (
    BaseEvent,
    CustomEvent,
    RunAgentInput,
    RunErrorEvent,
    RunFinishedEvent,
    RunStartedEvent,
    StateDeltaEvent,
    StateSnapshotEvent,
    StepFinishedEvent,
    StepStartedEvent,
    TextMessageContentEvent,
    TextMessageEndEvent,
    TextMessageStartEvent,
    TextPart,
    TokenUsage,
    ToolCallArgsEvent,
    ToolCallEndEvent,
    ToolCallResultEvent,
    ToolCallStartEvent,
    UserMessage,
)
from ag_ui.encoder import EventEncoder
from django.http import HttpRequest, StreamingHttpResponse
from django.http.response import HttpResponseBase
from pydantic import ValidationError
from pydantic_core import PydanticCustomError

from ...agents.introspect import step_value
from ..host.live import LiveEvent, LiveEventBus
from ..host.registry import get_runtime
from ..host.turns import (
    TurnResult,
    journeys_of_sync,
    progress_of,
    run_turn,
    where_it_stands,
)
from ..models import Conversation
from ..store.db import run_db
from ..store.events import (
    ASSISTANT_DELTA,
    ASSISTANT_MESSAGE,
    JOURNEY_COMPLETED,
    JOURNEY_ROUTED,
    JOURNEY_STEP_CHANGED,
    PROGRESS_UPDATE,
    TOOL_CALL,
    TOOL_RESULT,
)
from .access import Caller, caller_of, read_json
from .errors import ApiError, map_exception, not_found
from .schemas import message_text

__all__ = [
    "SNAPSHOT_KEYS",
    "AgUiTranslator",
    "agui_view",
    "connect_agui_signals",
    "run_agent_input_schema",
]

logger = logging.getLogger("agent_runtime_framework.django")

#: The keys of the STATE_SNAPSHOT an AG-UI client receives (a subset of the turn's fields).
SNAPSHOT_KEYS = ("conversation_id", "agent", "journey", "step", "progress", "state", "complete")
#: Seconds between keep-alive comments while a turn is quiet.
KEEPALIVE_SECONDS = 15.0
#: Events one stream may buffer (a run's events are consumed as they come; this bounds
#: memory if a client stops reading).
_QUEUE_SIZE = 10_000
_DONE = "agui.turn_done"
_MAX_RUN_ID = 190  # "ag-ui:" + runId must fit an idempotency key (200 visible ASCII)

# The events of the runs being streamed, by our run id: fed by the ``journey_event`` signal
# (in order, from the database threads), read by each run's stream.
_runs = LiveEventBus(queue_size=_QUEUE_SIZE)
# Turns whose client went away keep running to the end; hold a reference until then.
_background: set[asyncio.Task[TurnResult]] = set()


def _forward(sender: Any, *, type: str, payload: Any, run_id: Any = None, **kwargs: Any) -> None:
    """``journey_event`` receiver: hand a streamed run's events to its stream."""
    if run_id is not None and _runs.listeners(run_id):
        _runs.publish(run_id, LiveEvent(type, dict(payload or {})))


def connect_agui_signals() -> None:
    """Feed the streams of AG-UI runs from the app's ``journey_event`` signal (idempotent)."""
    from ..models import JourneyEvent
    from ..signals import journey_event

    journey_event.connect(_forward, sender=JourneyEvent, dispatch_uid="agent_runtime_agui")


connect_agui_signals()


def _now_ms() -> int:
    return int(time.time() * 1000)


def _new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, default=str)


class AgUiTranslator:
    """Our events of one run as AG-UI events: text messages, tool calls, steps, state.

    ``assistant.delta`` opens a text message and streams into it; ``assistant.message``
    closes it (sending what the deltas missed), or sends the whole reply as one content
    event when the model did not stream. ``tool.call``/``tool.result`` (which name the tool
    but carry no call id) become a START/ARGS/END triple and a RESULT matched by tool name
    in call order. A step change finishes the open step and starts the new one.
    """

    def __init__(self, snapshot: Mapping[str, Any]) -> None:
        self.snapshot = dict(snapshot)
        self.text_id: str | None = None
        self.text_sent = ""
        self.replied = False
        self.step: str | None = None
        self.pending: dict[str, deque[str]] = {}

    # -- pieces ---------------------------------------------------------------------------

    def start(self) -> list[BaseEvent]:
        """The state before the turn, and the step it starts in."""
        events: list[BaseEvent] = [StateSnapshotEvent(snapshot=self.snapshot)]
        step = self.snapshot.get("step")
        if step is not None:
            events.append(self._start_step(step))
        return events

    def _start_step(self, step: Any) -> BaseEvent:
        self.step = str(step_value(step))
        return StepStartedEvent(step_name=self.step)

    def _finish_step(self) -> list[BaseEvent]:
        if self.step is None:
            return []
        name, self.step = self.step, None
        return [StepFinishedEvent(step_name=name)]

    def _delta(self, text: str) -> list[BaseEvent]:
        events: list[BaseEvent] = []
        if self.text_id is None:
            self.text_id = _new_id("msg")
            self.text_sent = ""
            events.append(TextMessageStartEvent(message_id=self.text_id, role="assistant"))
        if text:
            self.text_sent += text
            events.append(TextMessageContentEvent(message_id=self.text_id, delta=text))
        return events

    def _close_text(self, complete: str | None = None) -> list[BaseEvent]:
        """End the open message; ``complete`` is the full text, to send what is missing."""
        events: list[BaseEvent] = []
        if complete and self.text_id is None:
            events = self._delta(complete)
        elif complete and complete.startswith(self.text_sent):
            events = self._delta(complete[len(self.text_sent) :])
        if self.text_id is None:
            return events
        events.append(TextMessageEndEvent(message_id=self.text_id))
        self.text_id, self.text_sent = None, ""
        return events

    def _tool_call(self, name: str, arguments: Any) -> tuple[str, list[BaseEvent]]:
        parent = self.text_id
        events = self._close_text()
        call_id = _new_id("call")
        args = arguments if isinstance(arguments, str) else _text(arguments or {})
        events.append(
            ToolCallStartEvent(tool_call_id=call_id, tool_call_name=name, parent_message_id=parent)
        )
        events.append(ToolCallArgsEvent(tool_call_id=call_id, delta=args))
        events.append(ToolCallEndEvent(tool_call_id=call_id))
        return call_id, events

    def _tool_result(self, payload: Mapping[str, Any]) -> list[BaseEvent]:
        name = str(payload.get("name") or "")
        status = payload.get("status")
        events: list[BaseEvent] = []
        queue = self.pending.get(name)
        if status == "rejected" or not queue:
            # A rejected call never started (no tool.call event): show it with its result.
            call_id, events = self._tool_call(name, payload.get("arguments"))
        else:
            call_id = queue.popleft()
        if status == "error":
            content = f"Error: {_text(payload.get('error') or '')}"
        else:
            content = _text(payload.get("result") or "")
        events.append(
            ToolCallResultEvent(
                message_id=_new_id("msg"), tool_call_id=call_id, content=content, role="tool"
            )
        )
        return events

    # -- the run --------------------------------------------------------------------------

    def translate(self, event_type: str, payload: Mapping[str, Any]) -> list[BaseEvent]:
        """The AG-UI events for one of our events (none for types AG-UI has no use for)."""
        if event_type == ASSISTANT_DELTA:
            return self._delta(_text(payload.get("delta") or ""))
        if event_type == ASSISTANT_MESSAGE:
            self.replied = True
            return self._close_text(_text(payload.get("content") or ""))
        if event_type == TOOL_CALL:
            name = str(payload.get("name") or "")
            call_id, events = self._tool_call(name, payload.get("arguments"))
            self.pending.setdefault(name, deque()).append(call_id)
            return events
        if event_type == TOOL_RESULT:
            return self._tool_result(payload)
        if event_type == JOURNEY_STEP_CHANGED:
            new = payload.get("to")
            events = self._finish_step()
            if new is not None:
                events.append(self._start_step(new))
            self.snapshot["step"] = new
            events.append(_replace("/step", new))
            return events
        if event_type == JOURNEY_COMPLETED:
            self.snapshot["complete"] = True
            return [_replace("/complete", True)]
        if event_type in (JOURNEY_ROUTED, PROGRESS_UPDATE):
            return [CustomEvent(name=event_type, value=dict(payload))]
        return []

    def finish(self, turn: TurnResult, thread_id: str, run_id: str) -> list[BaseEvent]:
        """The reply (if no event carried it), the closing step, the final state, the end."""
        if self.text_id is not None or not self.replied:
            # Deltas without their closing message, or a reply no event carried (a replayed
            # turn, a runtime that records no assistant.message): the reply completes it.
            events = self._close_text(turn.reply)
        else:
            events = []
        events += self._finish_step()
        data = turn.to_dict()
        self.snapshot = {key: data[key] for key in SNAPSHOT_KEYS}
        events.append(StateSnapshotEvent(snapshot=self.snapshot))
        result = {key: data[key] for key in ("reply", "step", "complete", "stopped_reason")}
        events.append(
            RunFinishedEvent(
                thread_id=thread_id, run_id=run_id, result=result, usage=_usage(turn.usage)
            )
        )
        return events

    def fail(self, code: str, message: str) -> list[BaseEvent]:
        """End the run with RUN_ERROR (closing a half-streamed message first)."""
        return [*self._close_text(), RunErrorEvent(message=message, code=code)]


def _replace(path: str, value: Any) -> StateDeltaEvent:
    """A STATE_DELTA (JSON Patch) replacing one key of the snapshot: cheaper than a snapshot."""
    return StateDeltaEvent.model_validate(
        {"delta": [{"op": "replace", "path": path, "value": value}]}
    )


def _usage(usage: Mapping[str, Any]) -> list[TokenUsage] | None:
    counts = {k: usage.get(k) for k in ("prompt_tokens", "completion_tokens", "total_tokens")}
    if not any(isinstance(v, int) and v > 0 for v in counts.values()):
        return None
    return [
        TokenUsage(
            input_tokens=counts["prompt_tokens"] or 0,
            output_tokens=counts["completion_tokens"] or 0,
            total_tokens=counts["total_tokens"] or 0,
        )
    ]


# -- input --------------------------------------------------------------------------------


def _parse_input(data: dict[str, Any]) -> RunAgentInput:
    """The body as AG-UI's ``RunAgentInput`` (400 with the first problems otherwise)."""
    try:
        return RunAgentInput.model_validate(data)
    except ValidationError as exc:
        problems = [
            {"field": ".".join(str(part) for part in error["loc"]), "problem": error["msg"]}
            for error in exc.errors(include_url=False, include_input=False)[:5]
        ]
        missing = all(error["type"] == "missing" for error in exc.errors())
        raise ApiError(
            400,
            "missing_field" if missing else "invalid_field",
            "The body is not a valid AG-UI RunAgentInput",
            {"errors": problems},
        ) from None
    except (ValueError, RecursionError):
        raise ApiError(
            400, "invalid_field", "The body is not a valid AG-UI RunAgentInput"
        ) from None


def _thread_uuid(thread_id: str) -> uuid.UUID:
    try:
        return uuid.UUID(thread_id)
    except (ValueError, TypeError, AttributeError):
        raise ApiError(
            400,
            "invalid_field",
            "threadId must be a UUID (it is the conversation id)",
            {"field": "threadId"},
        ) from None


def _run_id(run_input: RunAgentInput) -> str:
    run_id = run_input.run_id
    if not run_id or len(run_id) > _MAX_RUN_ID or not all("!" <= c <= "~" for c in run_id):
        raise ApiError(
            400,
            "invalid_field",
            f"runId must be 1-{_MAX_RUN_ID} visible ASCII characters",
            {"field": "runId"},
        )
    return run_id


def _user_message(run_input: RunAgentInput) -> str:
    """The new user message: the input's last message, as text.

    Earlier messages are the client's copy of the history; the stored history is what the
    journey uses, so they are ignored rather than trusted.
    """
    last = run_input.messages[-1] if run_input.messages else None
    field = {"field": "messages"}
    if not isinstance(last, UserMessage):
        raise ApiError(400, "invalid_field", "The last message must be the new user message", field)
    if isinstance(last.content, str):
        text = last.content
    elif all(isinstance(part, TextPart) for part in last.content):
        text = "\n".join(part.text for part in last.content if isinstance(part, TextPart))
    else:
        raise ApiError(
            400, "invalid_field", "Only text content is supported in the user message", field
        )
    try:
        message = message_text(text, required=True)
    except PydanticCustomError as exc:
        details = dict(exc.context or {})
        details["field"] = "messages[-1].content"
        status = 422 if exc.type == "message_too_long" else 400
        raise ApiError(status, exc.type, exc.message(), details) from None
    assert message is not None
    return message


# -- the thread before the turn ------------------------------------------------------------


def _thread_snapshot_sync(cid: uuid.UUID, agent_key: str, caller: Caller) -> dict[str, Any] | None:
    """Where an existing thread stands (None: a new thread); 404 unless the caller owns it."""
    row = Conversation.objects.filter(id=cid).values("agent_key", "owner_id", "session_key").first()
    if row is None:
        return None
    if not caller.owns(row):
        raise not_found(cid)
    if row["agent_key"] != agent_key:
        raise ApiError(
            404,
            "not_found",
            f"This thread is a conversation with another agent ({row['agent_key']!r})",
            {"conversation_id": str(cid), "agent": row["agent_key"]},
        )
    stands = where_it_stands(agent_key, journeys_of_sync([cid]).get(cid, []))
    del stands["status"]
    return {"conversation_id": str(cid), "agent": agent_key, **stands}


def _new_thread_snapshot(cid: uuid.UUID, agent_key: str, runtime: Any) -> dict[str, Any]:
    """The snapshot of a thread that has no conversation yet: the journey's first step."""
    step: Any = None
    try:
        initial = getattr(runtime, "get_initial_state", None)
        if callable(initial) and not hasattr(runtime, "agents"):  # a router has no own step
            step = step_value(getattr(initial(), "step", None))
    except Exception:  # an agent that cannot build its state without a turn: no step yet
        step = None
    return {
        "conversation_id": str(cid),
        "agent": agent_key,
        "journey": agent_key,
        "step": step,
        "progress": progress_of(runtime, step),
        "state": {},
        "complete": False,
    }


# -- the stream ---------------------------------------------------------------------------


def _settle(task: asyncio.Task[TurnResult]) -> None:
    """Done callback of a turn whose client left: log only an unexpected failure."""
    _background.discard(task)
    if task.cancelled():
        return
    exc = task.exception()
    if exc is not None and map_exception(exc) is None:
        logger.error("an AG-UI turn failed after its client left", exc_info=exc)


async def _stream(
    encoder: EventEncoder,
    translator: AgUiTranslator,
    run_input: RunAgentInput,
    turn_args: tuple[Any, ...],
    turn_kwargs: dict[str, Any],
) -> AsyncIterator[str]:
    """RUN_STARTED, the turn's events as they happen, then RUN_FINISHED or RUN_ERROR."""
    thread_id, client_run_id = run_input.thread_id, run_input.run_id
    our_run_id = turn_kwargs["run_id"]

    def encode(events: list[BaseEvent]) -> str:
        stamp = _now_ms()
        for event in events:
            if event.timestamp is None:
                event.timestamp = stamp
        return "".join(encoder.encode(event) for event in events)

    with _runs.subscribe(our_run_id) as subscription:
        yield encode([RunStartedEvent(thread_id=thread_id, run_id=client_run_id)])
        task = asyncio.ensure_future(run_turn(*turn_args, **turn_kwargs))
        task.add_done_callback(lambda _: subscription.deliver(LiveEvent(_DONE, {})))
        try:
            yield encode(translator.start())
            done = False
            while not done:
                event = await subscription.get(timeout=KEEPALIVE_SECONDS)
                if event is None:
                    yield ": keep-alive\n\n"
                    continue
                events: list[BaseEvent] = []
                for item in [event, *subscription.drain()]:
                    if item.type == _DONE:
                        done = True
                        continue
                    events += translator.translate(item.type, item.payload)
                if events:
                    yield encode(events)
            exc = task.exception()
            if exc is None:
                yield encode(translator.finish(task.result(), thread_id, client_run_id))
                return
            error = map_exception(exc, turn_args[1])
            if error is None:
                logger.error("unexpected error in an AG-UI run", exc_info=exc)
                error = ApiError(
                    500, "internal_error", "An unexpected error occurred; it has been logged"
                )
            yield encode(translator.fail(error.code, error.message))
        except Exception:  # a bug in the translation: still end the stream the AG-UI way
            logger.exception("unexpected error while streaming an AG-UI run")
            yield encode(
                [RunErrorEvent(message="An unexpected error occurred", code="internal_error")]
            )
        finally:
            if not task.done():  # the client left mid-turn: the turn still runs to its end
                _background.add(task)
                task.add_done_callback(_settle)


# -- the view -----------------------------------------------------------------------------


def run_agent_input_schema() -> dict[str, dict[str, Any]]:
    """The OpenAPI schemas of the endpoint's body: AG-UI's own ``RunAgentInput`` and the
    models it refers to (by name, as components), as ``ag_ui`` declares them."""
    schema = RunAgentInput.model_json_schema(
        by_alias=True, mode="validation", ref_template="#/components/schemas/{model}"
    )
    defs = schema.pop("$defs", {})
    schema["description"] = (
        "AG-UI's RunAgentInput (https://docs.ag-ui.com). Only the last message is used, and "
        "it must be the new user message; the rest (history, state, tools, context, "
        "forwardedProps) is accepted and ignored. threadId is the conversation id (a UUID); "
        "runId is the turn's idempotency key."
    )
    return {**defs, "RunAgentInput": schema}


async def agui_view(request: HttpRequest, agent_key: str) -> HttpResponseBase:
    """Run one AG-UI ``RunAgentInput`` on the agent's journey; answer with AG-UI events.

    The API's ``ag-ui/<agent_key>`` operation (``api/endpoints.py``) calls it, after the
    415 and CSRF checks; its ``ApiError``s are answered by the API's handlers."""
    caller = await caller_of(request)  # 403 before anything is read
    try:
        runtime = get_runtime(agent_key)
    except LookupError:
        raise ApiError(
            404, "not_found", f"No agent is registered with key {agent_key!r}", {"agent": agent_key}
        ) from None
    run_input = _parse_input(read_json(request))
    cid = _thread_uuid(run_input.thread_id)
    run_id = _run_id(run_input)
    message = _user_message(run_input)
    snapshot = await run_db(_thread_snapshot_sync, cid, agent_key, caller)
    if snapshot is None:
        if not caller.identified:  # an anonymous visitor's first thread: give it a session
            caller = await caller_of(request, create_session=True)
        snapshot = _new_thread_snapshot(cid, agent_key, runtime)
    encoder = EventEncoder(accept=request.headers.get("Accept") or "")
    turn_args = (agent_key, cid, message, caller.user, caller.session_key, f"ag-ui:{run_id}")
    turn_kwargs = {"reach_ownerless": False, "run_id": uuid.uuid4()}
    response = StreamingHttpResponse(
        _stream(encoder, AgUiTranslator(snapshot), run_input, turn_args, turn_kwargs),
        content_type=encoder.get_content_type(),
    )
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"
    return response
