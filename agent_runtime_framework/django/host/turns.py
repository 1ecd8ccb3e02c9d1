"""The app's own host: a RunContext over the app's tables, and ``run_turn``, the one service
every entry point (HTTP API, management commands, tests) plays a turn through.

``run_turn`` runs whatever is registered under the agent key one way, exactly as
django_agent_runtime would: ``await runtime.run(HostRunContext(...))``. A
``DjangoRuntimeAdapter`` or any django_agent_runtime-style runtime is run as it is; a plain
``JourneyAgent`` or ``RoutedJourneyAgent`` through ``JourneyRuntime`` (``journey_runtime.py``),
given the ``DjangoMemoryManager`` and the host's model on first use.

It checks that the conversation belongs to the caller (user, or anonymous session), and
with an idempotency key it returns the stored result of a retried request instead of
playing the turn twice.
"""

from __future__ import annotations

import contextlib
import copy
import datetime as dt
import functools
import logging
import threading
import uuid
import weakref
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from asgiref.sync import async_to_sync
from django.db import IntegrityError, transaction
from django.utils import timezone

from ...agents.introspect import step_value
from ...agents.journey import JourneyAgent
from ...agents.progress import journey_position
from ...agents.routed import RoutedJourneyAgent
from ...memory.manager import MemoryManager
from ...state.serializer import StateSerializer
from ..models import Conversation, Journey, JourneyEvent, JourneyStatus
from ..store.db import run_db
from ..store.events import (
    RUN_STARTED,
    JourneyEventLog,
)
from ..store.orm import (
    DjangoMemoryManager,
    _load_context_sync,
    _owner_id,
    _release_sync,
    claim_for_caller_sync,
    conversation_uuid,
    ensure_conversation_sync,
    renew_claim_sync,
)
from .handoff import intercept_turn_sync
from .journey_runtime import JourneyRuntime
from .registry import find_journey_agent, get_runtime, is_runcontext_runtime
from .tracing import traced_turn, tracing_enabled
from .usage import UsageLimitExceeded, check_limits_sync

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

logger = logging.getLogger("agent_runtime_framework.django")

#: Event type under which an idempotent request's response is stored (never streamed).
IDEMPOTENCY_EVENT = "http.idempotent_response"
_IDEMPOTENCY_NS = uuid.UUID("6f1c52be-4a4e-4e43-9d3b-2f0f0e6b9a11")


class ConversationNotFound(LookupError):
    """No such conversation for this caller (it may exist and belong to someone else)."""

    def __init__(self, conversation_id: Any) -> None:
        super().__init__(f"Conversation {conversation_id} not found")
        self.conversation_id = conversation_id


class UnknownAgent(LookupError):
    """No runtime is registered under the key."""

    def __init__(self, key: Any) -> None:
        super().__init__(f"No agent registered with key {key!r}")
        self.key = key


class RequestInProgress(Exception):
    """The same idempotency key is being processed right now; retry shortly."""

    retry_after = 1.0

    def __init__(self, key: str) -> None:
        super().__init__(f"A request with Idempotency-Key {key!r} is still being processed")
        self.key = key


# -- results ------------------------------------------------------------------------------


@dataclass(slots=True)
class TurnResult:
    """A played turn, in the shape of the HTTP API's turn fields."""

    conversation_id: str
    reply: str
    agent: str
    journey: str
    step: Any
    progress: dict[str, Any]
    state: dict[str, Any]
    complete: bool
    stopped_reason: str
    usage: dict[str, int]
    run_id: str = ""
    #: True when this is the stored answer to an earlier request with the same key.
    replayed: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The JSON body (``replayed``/``extra`` are not part of it)."""
        data = asdict(self)
        del data["replayed"], data["extra"]
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], **changes: Any) -> TurnResult:
        names = set(cls.__dataclass_fields__)
        values = {k: v for k, v in data.items() if k in names}
        values.update(changes)
        return cls(**values)


def progress_of(agent: Any, step: Any, state: Any = None) -> dict[str, Any]:
    """Where the journey stands on its own path (``agents.progress.journey_position``).

    ``{"index", "total", "steps", ...}``: the position is the index-th (1-based; 0 unknown)
    of total. With the state (an object or its stored dict) progress follows the agent's
    ``get_step_path(state)`` and its ``step_groups`` (a loop is one position, with its
    round), so the API, the chat page and the admin say the same.
    """
    if agent is None:
        return {"index": 0, "total": 0, "steps": []}
    try:
        if isinstance(state, dict) and state and hasattr(agent, "state_from_dict"):
            state = agent.state_from_dict(state)
        if isinstance(state, dict):
            state = None
        if (
            state is not None
            and step is not None
            and step_value(getattr(state, "step", None)) != step_value(step)
        ):
            state = None  # a state of another moment: the step alone decides
        position = journey_position(agent, state, step)
    except Exception:  # an agent or state that cannot be introspected: no progress info
        return {"index": 0, "total": 0, "steps": []}
    progress = {k: position[k] for k in ("index", "total", "steps")}
    if position["round"] is not None:  # in a loop: its round ("driver 2")
        progress["item"], progress["round"] = position["item"], position["round"]
    return progress


def _state_dict(state: Any) -> dict[str, Any]:
    if state is None:
        return {}
    if isinstance(state, dict):
        return dict(state)
    return StateSerializer.dump(state)


# -- the RunContext of the own host ---------------------------------------------------------

_CANCELLED: set[str] = set()
_cancel_lock = threading.Lock()


def cancel_run(run_id: Any) -> None:
    """Ask a run of this process to stop before its next LLM call."""
    with _cancel_lock:
        _CANCELLED.add(str(run_id))


class HostRunContext:
    """django_agent_runtime's ``RunContext`` surface, backed by this app's tables.

    ``emit`` writes the event table (and sends the signals, which feed the SSE stream);
    ``checkpoint``/``get_state`` keep this run's checkpoints in memory, because the journey
    table already holds the durable state per conversation.
    """

    #: Tells the adapter that ``emit`` already writes the event table.
    records_events = True

    def __init__(
        self,
        *,
        conversation_id: Any,
        input_messages: list[dict[str, Any]],
        agent_key: str,
        run_id: Any = None,
        params: Mapping[str, Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
        tool_registry: Any = None,
        start_seq: int = 0,
    ) -> None:
        self.run_id = run_id if run_id is not None else uuid.uuid4()
        self.conversation_id = conversation_id
        self.input_messages = input_messages
        self.params = dict(params or {})
        self.metadata = dict(metadata or {})
        self.tool_registry = tool_registry
        self.event_log = JourneyEventLog(
            self.run_id, conversation_id, agent_key, start_seq=start_seq
        )
        self._checkpoints: list[dict[str, Any]] = []
        self._cancelled = False

    async def emit(self, event_type: str, payload: dict[str, Any] | None = None) -> None:
        await self.event_log.record(event_type, payload)

    async def emit_user_message(self, content: str) -> None:
        await self.emit("assistant.message", {"content": content})

    async def emit_error(self, message: str, details: dict[str, Any] | None = None) -> None:
        await self.emit("error", {"message": message, "details": dict(details or {})})

    async def checkpoint(self, state: dict[str, Any]) -> None:
        self._checkpoints.append(copy.deepcopy(state))

    async def get_state(self) -> dict[str, Any] | None:
        return copy.deepcopy(self._checkpoints[-1]) if self._checkpoints else None

    def cancel(self) -> None:
        self._cancelled = True

    def cancelled(self) -> bool:
        if not self._cancelled and _CANCELLED:
            with _cancel_lock:
                if str(self.run_id) in _CANCELLED:
                    _CANCELLED.discard(str(self.run_id))
                    self._cancelled = True
        return self._cancelled


# -- LLM of the host ----------------------------------------------------------------------

_llm_lock = threading.Lock()
_default_llm: Any = None


def host_llm_client() -> Any:
    """The model for agents registered without one (settings/env; the offline stand-in
    only when ``ALLOW_OFFLINE_STANDIN`` is True). Resolved once per process."""
    global _default_llm
    if _default_llm is None:
        with _llm_lock:
            if _default_llm is None:
                from ...llm.resolve import get_llm_client, get_llm_client_or_standin
                from ..conf import app_settings

                if app_settings().ALLOW_OFFLINE_STANDIN:
                    _default_llm = get_llm_client_or_standin()
                else:
                    _default_llm = get_llm_client()
    return _default_llm


def _reset_host_llm() -> None:
    """Forget the resolved default model (tests that change settings)."""
    global _default_llm
    with _llm_lock:
        _default_llm = None


def describe_llm() -> dict[str, Any]:
    """``{"model", "offline_standin"}`` of the default model (empty model: none configured)."""
    try:
        client = host_llm_client()
    except Exception as exc:
        return {"model": "", "offline_standin": False, "error": str(exc).split("\n")[0]}
    model = getattr(client, "model", None) or type(client).__name__
    standin = bool(getattr(client, "is_offline_standin", False))
    return {"model": str(model), "offline_standin": standin}


# -- preparing registered agents ----------------------------------------------------------

_prepared: weakref.WeakSet[Any] = weakref.WeakSet()
_prepared_ids: set[int] = set()  # runtimes that cannot be weakly referenced
_prepare_lock = threading.Lock()


def _is_prepared(runtime: Any) -> bool:
    try:
        return runtime in _prepared
    except TypeError:
        return id(runtime) in _prepared_ids


def _mark_prepared(runtime: Any) -> None:
    try:
        _prepared.add(runtime)
    except TypeError:
        _prepared_ids.add(id(runtime))


def _needs_django_memory(memory: Any) -> bool:
    return type(memory) is MemoryManager


def _prepare(runtime: Any) -> None:
    """Give a registered agent the ORM memory and the host's model (once)."""
    if _is_prepared(runtime):
        return
    with _prepare_lock:
        if _is_prepared(runtime):
            return
        if isinstance(runtime, RoutedJourneyAgent):
            old = runtime.memory
            if _needs_django_memory(old):
                runtime.memory = DjangoMemoryManager()
            for agent in runtime.agents.values():
                default = agent._memory_is_default and _needs_django_memory(agent.memory)
                if agent.memory is old or default:
                    agent.memory = runtime.memory
                    agent._memory_is_default = False
                if agent.llm_client is None:
                    agent.llm_client = runtime.llm_client or host_llm_client()
            if runtime.llm_client is None:
                runtime.llm_client = host_llm_client()
        elif isinstance(runtime, JourneyAgent):
            if runtime._memory_is_default and _needs_django_memory(runtime.memory):
                runtime.memory = DjangoMemoryManager()
                runtime._memory_is_default = False
            if runtime.llm_client is None and _default_model_lookup(runtime):
                runtime.llm_client = host_llm_client()
        elif (
            _is_adapter(runtime)
            and getattr(runtime, "llm_client", False) is None
            and _default_model_lookup(runtime)
        ):
            runtime.llm_client = host_llm_client()
        _mark_prepared(runtime)


def _default_model_lookup(runtime: Any) -> bool:
    """True unless the class overrides the framework's ``get_llm_client`` (then it picks
    its own model): the framework's is the one its most basic class defines."""
    cls = type(runtime)
    definers = [klass for klass in cls.__mro__ if "get_llm_client" in vars(klass)]
    return bool(definers) and cls.get_llm_client is vars(definers[-1])["get_llm_client"]


def _is_adapter(runtime: Any) -> bool:
    """A ``DjangoRuntimeAdapter``, told by its protocol (the app never imports adapters/):
    a runtime that plays one journey agent per run."""
    return callable(getattr(runtime, "journey_agent", None)) and hasattr(runtime, "memory")


# -- conversation access and idempotency (database thread) ---------------------------------


def _idempotency_run_id(cid: uuid.UUID, key: str) -> uuid.UUID:
    return uuid.uuid5(_IDEMPOTENCY_NS, f"{cid}:{key}")


def owns(
    conversation: Mapping[str, Any],
    user_id: Any,
    session_key: str,
    *,
    reach_ownerless: bool = True,
) -> bool:
    """Whether a caller owns a conversation row: the same user, or (no user) the same
    anonymous session. A caller with neither reaches only conversations that have neither
    (made from code or the CLI), and only with ``reach_ownerless``: the HTTP API passes
    False, so over HTTP such a conversation is nobody's."""
    if user_id is not None:
        return bool(conversation["owner_id"] == user_id)
    if not session_key and not reach_ownerless:
        return False
    return conversation["owner_id"] is None and conversation["session_key"] == session_key


def check_access_sync(
    cid: uuid.UUID,
    agent_key: str | None,
    user_id: Any,
    session_key: str,
    create: bool,
    reach_ownerless: bool,
) -> dict[str, Any]:
    """The conversation row (agent_key, owner_id, session_key) if the caller owns it, made
    now when missing and ``create`` (with an agent key) allows; else ``ConversationNotFound``.
    ``ValueError`` when it belongs to another agent than ``agent_key``."""
    found = Conversation.objects.filter(id=cid).values("agent_key", "owner_id", "session_key")
    row: dict[str, Any] | None = next((dict(r) for r in found[:1]), None)
    if row is None:
        if not create or agent_key is None:
            raise ConversationNotFound(cid)
        row = {"agent_key": agent_key, "owner_id": user_id, "session_key": session_key}
        if not owns(row, user_id, session_key, reach_ownerless=reach_ownerless):
            raise ConversationNotFound(cid)  # it would be nobody's: do not create it
        ensure_conversation_sync(cid, agent_key, user_id, session_key)
    elif not owns(row, user_id, session_key, reach_ownerless=reach_ownerless):
        raise ConversationNotFound(cid)
    if agent_key is not None and row["agent_key"] != agent_key:
        raise ValueError(
            f"Conversation {cid} belongs to agent {row['agent_key']!r}, not {agent_key!r}"
        )
    return row


def _begin_sync(
    cid: uuid.UUID,
    agent_key: str | None,
    user_id: Any,
    session_key: str,
    create: bool,
    idempotency_key: str | None,
    stale_after: float,
    reach_ownerless: bool = True,
) -> tuple[str, dict[str, Any] | None]:
    """Check access (create the row if allowed), claim the idempotency key.

    Returns (the conversation's agent key, a stored response or None).
    """
    row = check_access_sync(cid, agent_key, user_id, session_key, create, reach_ownerless)
    if idempotency_key is None:
        return row["agent_key"], None
    run_id = _idempotency_run_id(cid, idempotency_key)
    now = timezone.now()
    try:
        with transaction.atomic():
            JourneyEvent.objects.create(
                conversation_id=cid,
                agent_key=row["agent_key"],
                run_id=run_id,
                seq=0,
                type=IDEMPOTENCY_EVENT,
                payload={"key": idempotency_key, "status": "pending", "started": now.isoformat()},
            )
        return row["agent_key"], None
    except IntegrityError:
        pass
    with transaction.atomic():
        marker = JourneyEvent.objects.select_for_update().filter(run_id=run_id, seq=0).first()
        if marker is None:  # released in the meantime: take it
            JourneyEvent.objects.create(
                conversation_id=cid,
                agent_key=row["agent_key"],
                run_id=run_id,
                seq=0,
                type=IDEMPOTENCY_EVENT,
                payload={"key": idempotency_key, "status": "pending", "started": now.isoformat()},
            )
            return row["agent_key"], None
        payload = marker.payload if isinstance(marker.payload, dict) else {}
        if payload.get("status") == "done":
            return row["agent_key"], dict(payload.get("response") or {})
        started = _parse_time(payload.get("started"))
        if started is not None and (now - started).total_seconds() < stale_after:
            raise RequestInProgress(idempotency_key)
        # The first attempt's worker died: this request takes the key over.
        marker.payload = {"key": idempotency_key, "status": "pending", "started": now.isoformat()}
        marker.save(update_fields=["payload"])
    return row["agent_key"], None


def _parse_time(value: Any) -> dt.datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return dt.datetime.fromisoformat(value)
    except ValueError:
        return None


def _stored_response_sync(
    cid: uuid.UUID, key: str | None, user_id: Any, session_key: str
) -> dict[str, Any] | None:
    """The stored response of an answered idempotent request of this caller (or None)."""
    if key is None:
        return None
    rows = list(Conversation.objects.filter(id=cid).values("owner_id", "session_key")[:1])
    if not rows or not owns(rows[0], user_id, session_key, reach_ownerless=False):
        return None
    marker = (
        JourneyEvent.objects.filter(
            run_id=_idempotency_run_id(cid, key), seq=0, type=IDEMPOTENCY_EVENT
        )
        .values_list("payload", flat=True)
        .first()
    )
    if isinstance(marker, dict) and marker.get("status") == "done":
        return dict(marker.get("response") or {})
    return None


def _finish_idempotent_sync(cid: uuid.UUID, key: str, response: dict[str, Any] | None) -> None:
    """Store the response under the key, or release the key (None) so a retry runs."""
    run_id = _idempotency_run_id(cid, key)
    if response is None:
        JourneyEvent.objects.filter(run_id=run_id, seq=0, type=IDEMPOTENCY_EVENT).delete()
        return
    JourneyEvent.objects.filter(run_id=run_id, seq=0, type=IDEMPOTENCY_EVENT).update(
        payload={"key": key, "status": "done", "response": response}
    )


# -- opening a turn: one unit of database work before the model is called ----------------


@dataclass(slots=True)
class _Opened:
    """What the turn's first trip to the database found: the conversation's agent, the
    caller, a stored idempotent response, or the claim it took with the state and history."""

    key: str
    user: Any
    session_key: str
    stored: dict[str, Any] | None = None
    memory: DjangoMemoryManager | None = None
    token: str | None = None
    prefetched: tuple[str, int | None, Any, list[dict[str, Any]]] | None = None
    final_depth: int = 1
    #: The turn's answer while a person has the conversation (``handoff.py``).
    staff_turn: dict[str, Any] | None = None

    def hold(self, cid: uuid.UUID) -> contextlib.AbstractAsyncContextManager[Any]:
        """Hold the claim taken in the database trip around the turn (if one was taken)."""
        if self.memory is None or self.token is None:
            return contextlib.nullcontext()
        return self.memory.hold_claim(
            cid, self.token, self.prefetched, final_depth=self.final_depth
        )


def _claim_memory(runtime: Any) -> DjangoMemoryManager | None:
    """The ``DjangoMemoryManager`` the runtime's turn claims through, if it has one."""
    if not (isinstance(runtime, JourneyAgent | RoutedJourneyAgent) or _is_adapter(runtime)):
        return None
    memory = getattr(runtime, "memory", None)
    return memory if isinstance(memory, DjangoMemoryManager) else None


def _open_turn_sync(
    cid: uuid.UUID,
    agent_key: str | None,
    user: Any,
    session_key: str,
    caller: Callable[[], tuple[Any, str | None]] | None,
    create: bool,
    idempotency_key: str | None,
    stale_after: float,
    reach_ownerless: bool,
    lease_seconds: float,
    message: str | None = None,
) -> _Opened:
    """Everything before the model call, in one trip to a database thread: resolve the
    caller, claim the conversation with the ownership check as the claim's condition
    (creating it when allowed), claim the idempotency key, read state and history.

    A busy conversation is not waited for here: the turn's own claim waits (or raises
    ``JourneyBusy``) as usual. Runtimes without the ORM memory get the checks only.
    """
    if caller is not None:
        user, session = caller()
        session_key = session or ""
    user_id = _owner_id(user)
    if not reach_ownerless:
        # An HTTP turn: per-user limits (usage.py), before anything is stored.
        try:
            check_limits_sync(user, user_id, session_key)
        except UsageLimitExceeded:
            stored = _stored_response_sync(cid, idempotency_key, user_id, session_key)
            if stored is None:
                raise
            return _Opened(agent_key or "", user, session_key, stored)  # a replay is free
    claim_agent, claim_create = agent_key, create
    if idempotency_key is not None:
        key, stored = _begin_sync(
            cid,
            agent_key,
            user_id,
            session_key,
            create,
            idempotency_key,
            stale_after,
            reach_ownerless,
        )
        if stored is not None:
            return _Opened(key, user, session_key, stored)
        claim_agent, claim_create = key, False
    token = uuid.uuid4().hex
    outcome, key_found, _, handoff_status = claim_for_caller_sync(
        cid,
        claim_agent,
        user_id,
        session_key,
        token,
        lease_seconds,
        create=claim_create,
        reach_ownerless=reach_ownerless,
    )
    if outcome in ("missing", "not_owned"):
        raise ConversationNotFound(cid)
    if outcome == "other_agent":
        raise ValueError(f"Conversation {cid} belongs to agent {key_found!r}, not {agent_key!r}")
    assert key_found is not None
    opened = _Opened(key_found, user, session_key)
    if message is not None:
        # With a person (handoff.py): store the message, answer without the model.
        opened.staff_turn = intercept_turn_sync(cid, key_found, message, handoff_status)
        if opened.staff_turn is not None:
            if outcome == "claimed":
                _release_sync(cid, token)
            return opened
    if outcome != "claimed":
        return opened
    try:
        _prepare_claimed(opened, cid, token, lease_seconds)
    except BaseException:
        _release_sync(cid, token)
        if idempotency_key is not None:
            _finish_idempotent_sync(cid, idempotency_key, None)
        raise
    return opened


def _prepare_claimed(opened: _Opened, cid: uuid.UUID, token: str, lease_seconds: float) -> None:
    """With the claim taken: read the state and history for the turn, to be held by
    ``opened.hold`` (a runtime that claims through its own memory gets the claim released).
    The caller releases the claim if this raises."""
    runtime = _resolve_runtime(opened.key)
    _prepare(runtime)
    memory = _claim_memory(runtime)
    if memory is None:  # it claims through its own memory
        _release_sync(cid, token)
        return
    if memory.lease_seconds != lease_seconds:
        renew_claim_sync(cid, token, memory.lease_seconds)
    window = memory.max_history_messages
    state, messages = _load_context_sync(cid, opened.key, window)
    opened.memory = memory
    opened.token = token
    opened.prefetched = (opened.key, window, state, messages)
    # One agent's turn inside the host's claim: its final commit may release the lease.
    single = _is_adapter(runtime) or (
        isinstance(runtime, JourneyAgent) and not isinstance(runtime, RoutedJourneyAgent)
    )
    opened.final_depth = 2 if single else 1


# -- running a turn -----------------------------------------------------------------------


async def _run(
    runtime: Any,
    key: str,
    cid: uuid.UUID,
    message: str,
    metadata: dict[str, Any],
    run_id: uuid.UUID,
    *,
    start_seq: int = 0,
    announce: dict[str, Any] | None = None,
) -> TurnResult:
    ctx = HostRunContext(
        run_id=run_id,
        conversation_id=cid,
        input_messages=[{"role": "user", "content": message}],
        agent_key=key,
        metadata=metadata,
        start_seq=start_seq,
    )
    if announce is not None:  # whose turn this is, first on the stream
        await ctx.event_log.record_many([(RUN_STARTED, announce)], _built=True)
    try:
        result = await runtime.run(ctx)
    except Exception as exc:
        on_error = getattr(runtime, "on_error", None)
        if on_error is not None:
            try:
                await on_error(ctx, exc)
            except Exception:
                logger.exception("%s.on_error failed for run %s", type(runtime).__name__, run_id)
        raise
    finally:
        with _cancel_lock:
            _CANCELLED.discard(str(run_id))
    output = dict(getattr(result, "final_output", None) or {})
    journey_key = str(output.get("journey") or key)
    step = step_value(output.get("step"))
    journey_agent: Any = None  # None: a router that answered itself, no journey yet
    if "journey" not in output or output["journey"] is not None:
        journey_agent = find_journey_agent(journey_key) or runtime
    return TurnResult(
        conversation_id=str(cid),
        reply=str(output.get("response") or ""),
        agent=key,
        journey=journey_key,
        step=step,
        progress=progress_of(journey_agent, step, output.get("state")),
        state=_state_dict(output.get("state")),
        complete=bool(output.get("complete", False)),
        stopped_reason=str(output.get("stopped_reason") or "text_response"),
        usage=dict(getattr(result, "usage", None) or {}),
        run_id=str(run_id),
    )


def _resolve_runtime(key: str) -> Any:
    try:
        return get_runtime(key)
    except LookupError:
        raise UnknownAgent(key) from None


async def run_turn(
    agent_key: str | None,
    conversation_id: Any,
    message: str,
    user: Any = None,
    session_key: str | None = None,
    idempotency_key: str | None = None,
    *,
    create: bool = True,
    reach_ownerless: bool = True,
    run_id: Any = None,
    caller: Callable[[], tuple[Any, str | None]] | None = None,
    message_id: str | None = None,
) -> TurnResult:
    """Play one user message on a conversation and return the turn's result.

    ``conversation_id`` None starts a new conversation. ``user`` (a user or pk), else
    ``session_key`` (anonymous), must own an existing conversation, else
    ``ConversationNotFound``; with neither, only ownerless conversations are reachable,
    and none with ``reach_ownerless=False`` (the HTTP API: see ``owns``).
    ``agent_key`` None means the conversation's own agent; ``create=False`` refuses to
    create a missing conversation. ``run_id`` (a UUID; default: a new one) lets a caller
    that follows the turn's events live pick them out by run before the turn returns.
    ``caller`` (sync, returns ``(user, session_key)``; may raise to refuse) replaces
    ``user``/``session_key``: it runs on the database thread in the turn's first unit of
    database work, with the ownership check, the claim and the load of state and history.
    The turn's first event is ``run.started`` with the message and ``message_id`` (the
    client's id of it, else a new one), so every stream of the conversation can tell
    whose turn it shows.
    Raises ``UnknownAgent``,
    ``JourneyBusy`` (another turn holds it), ``RequestInProgress`` (same idempotency key
    still running), and whatever the model raises (``LLMError``).
    """
    if not isinstance(message, str):
        raise TypeError(f"message must be a str, got {type(message).__name__}")
    if agent_key is not None:
        runtime = _resolve_runtime(agent_key)
    cid = conversation_uuid(conversation_id) if conversation_id is not None else uuid.uuid4()
    from ..conf import app_settings

    stale_after = float(app_settings().LEASE_SECONDS)
    opened = await run_db(
        _open_turn_sync,
        cid,
        agent_key,
        user,
        session_key or "",
        caller,
        create,
        idempotency_key,
        stale_after,
        reach_ownerless,
        stale_after,
        message,
    )
    if opened.stored is not None:
        return TurnResult.from_dict(opened.stored, replayed=True)
    if opened.staff_turn is not None:
        turn = TurnResult.from_dict(opened.staff_turn)
        if idempotency_key is not None:
            await run_db(_finish_idempotent_sync, cid, idempotency_key, turn.to_dict())
        return turn
    key, user, session = opened.key, opened.user, opened.session_key
    user_id = _owner_id(user)
    if agent_key is None:
        runtime = _resolve_runtime(key)
    try:
        async with opened.hold(cid):
            announce = {"message": message, "message_id": message_id or str(uuid.uuid4())}
            turn = await _play(
                runtime, key, cid, message, user, user_id, session, run_id, announce=announce
            )
    except BaseException:
        if idempotency_key is not None:
            await run_db(_finish_idempotent_sync, cid, idempotency_key, None)
        raise
    if idempotency_key is not None:
        await run_db(_finish_idempotent_sync, cid, idempotency_key, turn.to_dict())
    return turn


async def _play(
    runtime: Any,
    key: str,
    cid: uuid.UUID,
    message: str,
    user: Any,
    user_id: Any,
    session: str,
    run_id: Any,
    extra: Mapping[str, Any] | None = None,
    *,
    start_seq: int = 0,
    announce: dict[str, Any] | None = None,
) -> TurnResult:
    """Run the registered runtime for one turn (inside the host's claim, when taken).

    ``extra``: more run metadata (a queued turn's ``INPUT_STORED_KEY``); ``start_seq``: the
    run's first event seq (a queued run recorded ``run.started`` itself); ``announce``: the
    ``run.started`` payload to record first.
    """
    _prepare(runtime)
    metadata = {"owner": user if user_id is not None else None, "session_key": session}
    if extra:
        metadata.update(extra)
    run_id = uuid.UUID(str(run_id)) if run_id is not None else uuid.uuid4()
    # One run path: everything is run as django_agent_runtime would run it.
    target = runtime if is_runcontext_runtime(runtime) else JourneyRuntime(runtime)
    play = functools.partial(_run, start_seq=start_seq, announce=announce)
    if tracing_enabled():  # the turn's span, a child of the request's span if any
        return await traced_turn(play, target, key, cid, message, metadata, run_id)
    return await play(target, key, cid, message, metadata, run_id)


def run_turn_sync(
    agent_key: str | None,
    conversation_id: Any,
    message: str,
    user: Any = None,
    session_key: str | None = None,
    idempotency_key: str | None = None,
    *,
    create: bool = True,
) -> TurnResult:
    """``run_turn`` for sync code (management commands, shells, WSGI views)."""
    return async_to_sync(run_turn)(
        agent_key, conversation_id, message, user, session_key, idempotency_key, create=create
    )


# -- reading conversations ----------------------------------------------------------------


def current_journey_row(
    conversation_agent_key: str, journeys: list[dict[str, Any]]
) -> dict[str, Any] | None:
    """The journey a conversation is in: the latest one behind a router, else its own.

    A parked journey is never the current one while another journey is there.
    """
    inner = [j for j in journeys if j["agent_key"] != conversation_agent_key]
    pool = [j for j in inner if j["status"] != JourneyStatus.PARKED] or inner or journeys
    if not pool:
        return None
    return max(pool, key=lambda j: j["updated_at"])


def journey_status_complete(row: Mapping[str, Any] | None) -> bool:
    return bool(row and row.get("status") == JourneyStatus.COMPLETE)


def where_it_stands(conversation_agent_key: str, journeys: list[dict[str, Any]]) -> dict[str, Any]:
    """The current journey of a conversation as clients see it: journey, step, progress,
    state, complete, status. One place for the API's detail, AG-UI's snapshot and the
    answer given while a person has the conversation."""
    row = current_journey_row(conversation_agent_key, journeys)
    journey = str(row["agent_key"]) if row else conversation_agent_key
    step = (row["step"] or None) if row else None
    state = dict(row["state"]) if row else {}
    return {
        "journey": journey,
        "step": step,
        "progress": progress_of(find_journey_agent(journey), step, state or None),
        "state": state,
        "complete": journey_status_complete(row),
        "status": row["status"] if row else "active",
    }


def journeys_of_sync(conversation_ids: list[uuid.UUID]) -> dict[uuid.UUID, list[dict[str, Any]]]:
    """Journey rows (key, step, status, state, updated_at) per conversation."""
    found: dict[uuid.UUID, list[dict[str, Any]]] = {cid: [] for cid in conversation_ids}
    rows = Journey.objects.filter(conversation_id__in=conversation_ids).values(
        "conversation_id", "agent_key", "step", "status", "state", "updated_at"
    )
    for row in rows:
        found.setdefault(row["conversation_id"], []).append(dict(row))
    return found
