"""Agents, conversations, messages (turns) and queued runs."""

import functools
import uuid
from collections.abc import Mapping
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.middleware.csrf import get_token
from django.urls import reverse
from ninja import Header, Router, Status

from ...agents.routed import RoutedJourneyAgent
from ..host.approvals import approvals_of
from ..host.queued import QueuedTurn, queued_mode, run_status, submit_turn
from ..host.registry import find_journey_agent, get_runtime, registered_runtimes
from ..host.turns import (
    current_journey_row,
    describe_llm,
    journeys_of_sync,
    progress_of,
    run_turn,
    where_it_stands,
)
from ..models import Conversation, JourneyMessage, JourneyStatus
from ..store.db import run_db
from ..store.orm import ensure_conversation_sync
from .access import Caller, caller_first, caller_of, turn_caller_sync
from .errors import ApiError, errors, map_exception, not_found, retry_after_headers
from .schemas import (
    AgentList,
    ConversationDetail,
    ConversationList,
    CreatedConversation,
    IdempotencyKey,
    NewConversation,
    NewMessage,
    Queued,
    Run,
    Turn,
)

__all__ = ["MAX_DETAIL_MESSAGES", "MAX_LISTED_CONVERSATIONS", "router"]

#: Conversations listed at most, most recent first.
MAX_LISTED_CONVERSATIONS = 100
#: Messages returned by the detail view at most (the most recent ones).
MAX_DETAIL_MESSAGES = 1000

router = Router()

_TURN_ERRORS = (409, 429, 502, 503)
_BODY_ERRORS = (400, 413, 415, 422)


# -- describing agents and conversations ---------------------------------------------------


def _agent_info(key: str, runtime: Any) -> dict[str, Any]:
    config = getattr(runtime, "config", None) or getattr(runtime, "journey_config", None)
    name = getattr(runtime, "name", None) or getattr(config, "name", None) or key
    description = getattr(runtime, "description", None) or getattr(config, "description", "")
    info: dict[str, Any] = {
        "key": key,
        "name": str(name),
        "description": str(description or ""),
        "steps": progress_of(runtime, None)["steps"] if not _is_router(runtime) else [],
    }
    if _is_router(runtime):
        info["journeys"] = [_agent_info(agent.key, agent) for agent in runtime.agents.values()]
    return info


def _is_router(runtime: Any) -> bool:
    return isinstance(runtime, RoutedJourneyAgent)


def _list_sync(caller: Caller) -> list[dict[str, Any]]:
    owned = caller.owned_filter()
    if owned is None:
        return []
    rows = list(
        Conversation.objects.filter(**owned)
        .order_by("-updated_at")
        .values("id", "agent_key", "updated_at")[:MAX_LISTED_CONVERSATIONS]
    )
    journeys = journeys_of_sync([r["id"] for r in rows])
    listed = []
    for row in rows:
        journey = current_journey_row(row["agent_key"], journeys.get(row["id"], []))
        listed.append(
            {
                "conversation_id": str(row["id"]),
                "agent": row["agent_key"],
                "journey": journey["agent_key"] if journey else row["agent_key"],
                "step": (journey["step"] or None) if journey else None,
                "status": journey["status"] if journey else "active",
                "updated_at": max(
                    row["updated_at"], journey["updated_at"] if journey else row["updated_at"]
                ).isoformat(),
            }
        )
    return listed


def owned_row_sync(cid: uuid.UUID, caller: Caller) -> Mapping[str, Any]:
    """The conversation's row if the caller owns it, else 404 (as for an unknown id)."""
    row = Conversation.objects.filter(id=cid).values("agent_key", "owner_id", "session_key").first()
    if row is None or not caller.owns(row):
        raise not_found(cid)
    return row


def _detail_sync(cid: uuid.UUID, caller: Caller) -> dict[str, Any]:
    row = owned_row_sync(cid, caller)
    rows = journeys_of_sync([cid]).get(cid, [])
    messages = list(
        JourneyMessage.objects.filter(conversation_id=cid)
        .order_by("-seq")
        .values("seq", "role", "content", "tool_calls", "tool_call_id", "created_at")[
            :MAX_DETAIL_MESSAGES
        ]
    )
    messages.reverse()
    return {
        "conversation_id": str(cid),
        "agent": row["agent_key"],
        **where_it_stands(row["agent_key"], rows),
        # Conversation control: every journey of the conversation, and the parked ones
        # (resumable by saying so) in the order they were parked.
        "journeys": _journeys_payload(row["agent_key"], rows),
        "parked": _parked_of(row["agent_key"], rows),
        # Tools that need approval (approvals.py): held calls and what became of them.
        "approvals": approvals_of(cid),
        "messages": [
            {
                "seq": m["seq"],
                "role": m["role"],
                "content": m["content"],
                "tool_calls": m["tool_calls"],
                "tool_call_id": m["tool_call_id"] or None,
                "created_at": m["created_at"].isoformat(),
            }
            for m in messages
        ],
    }


def _journeys_payload(conversation_agent: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The journeys behind a router (or the conversation's own), oldest activity first."""
    inner = [j for j in rows if j["agent_key"] != conversation_agent] or rows
    return [
        {
            "journey": j["agent_key"],
            "step": j["step"] or None,
            "status": j["status"],
            "progress": progress_of(
                find_journey_agent(j["agent_key"]), j["step"] or None, j["state"]
            ),
            "updated_at": j["updated_at"].isoformat(),
        }
        for j in sorted(inner, key=lambda j: j["updated_at"])
    ]


def _parked_of(conversation_agent: str, rows: list[dict[str, Any]]) -> list[str]:
    """Parked journey keys, in the router's order (its state lists them) when it has one."""
    parked = {j["agent_key"] for j in rows if j["status"] == JourneyStatus.PARKED}
    router = next((j for j in rows if j["agent_key"] == conversation_agent), None)
    runtime = registered_runtimes().get(conversation_agent) if router is not None else None
    ordered: list[str] = []
    if isinstance(runtime, RoutedJourneyAgent) and router is not None:
        for value in (router.get("state") or {}).get("parked") or ():
            key = runtime.journey_key(value)
            if key is not None and key in parked and key not in ordered:
                ordered.append(key)
    return ordered + sorted(parked - set(ordered))


def _accepted(
    request: HttpRequest, response: HttpResponse, queued: QueuedTurn, **extra: Any
) -> Status:
    """202: the message is stored and queued; ``Location`` is the run's status."""
    match = request.resolver_match
    location = reverse(
        f"{match.namespace}:run" if match and match.namespace else "agent_runtime:run",
        kwargs={"conversation_id": queued.conversation_id, "run_id": queued.run_id},
    )
    response["Location"] = location
    if queued.replayed:
        response["Idempotent-Replayed"] = "true"
    return Status(202, {**queued.to_dict(), **extra, "status_url": location})


def _run_sync(cid: uuid.UUID, run_id: uuid.UUID, caller: Caller) -> dict[str, Any]:
    owned_row_sync(cid, caller)
    found = run_status(cid, run_id)
    if found is None:
        raise ApiError(
            404, "run_not_found", f"Run {run_id} not found", {"conversation_id": str(cid)}
        )
    return found


# -- operations ---------------------------------------------------------------------------


@router.get(
    "/agents",
    url_name="agents",
    operation_id="listAgents",
    summary="Registered agents and their steps, and the model in use",
    response={200: AgentList, **errors()},
    exclude_unset=True,
)
async def list_agents(request: HttpRequest) -> Any:
    """The registered agents (with their steps) and the model in use."""
    get_token(request)  # the chat page reads the csrftoken cookie for its POSTs
    agents = [_agent_info(key, runtime) for key, runtime in registered_runtimes().items()]
    return {"agents": agents, "llm": describe_llm()}


@router.get(
    "/conversations",
    url_name="conversations",
    operation_id="listConversations",
    summary="The caller's conversations, most recent first (at most 100)",
    response={200: ConversationList, **errors(403)},
    exclude_unset=True,
)
async def list_conversations(request: HttpRequest) -> Any:
    get_token(request)
    caller = await caller_of(request)
    return {"conversations": await run_db(_list_sync, caller)}


@router.post(
    "/conversations",
    url_name="conversations",
    operation_id="createConversation",
    summary="Start a conversation with an agent, optionally with a first message",
    response={201: CreatedConversation, 202: Queued, **errors(403, *_BODY_ERRORS, *_TURN_ERRORS)},
    openapi_extra=retry_after_headers(409, 429),
    exclude_unset=True,
)
async def create_conversation(
    request: HttpRequest, body: NewConversation, response: HttpResponse
) -> Any:
    """Created (with the first turn when a message was given). With ``TURNS = "queued"``
    and a first message: 202, the message stored and queued (``Location``: the run)."""
    agent, message = body.agent, body.message
    try:
        get_runtime(agent)
    except LookupError:
        raise ApiError(
            400,
            "unknown_agent",
            f"No agent is registered with key {agent!r}",
            {"agent": agent, "available": sorted(registered_runtimes())},
        ) from None
    cid = uuid.uuid4()
    if message is None:
        caller = await caller_of(request, create_session=True)
        await run_db(ensure_conversation_sync, cid, agent, caller.user_id, caller.session_key)
        return Status(201, {"conversation_id": str(cid), "agent": agent})
    if queued_mode():
        queued = await submit_turn(
            agent,
            cid,
            message,
            caller=functools.partial(turn_caller_sync, request, cid, True),
            create=True,
        )
        return _accepted(request, response, queued, agent=agent)
    try:
        turn = await run_turn(
            agent,
            cid,
            message,
            reach_ownerless=False,
            caller=functools.partial(turn_caller_sync, request, cid, True),
        )
    except Exception as exc:
        error = map_exception(exc, cid)  # the new conversation's id in the details
        if error is None:
            raise
        raise error from None
    return Status(201, turn.to_dict())


@router.get(
    "/conversations/{conversation_id}",
    url_name="conversation",
    operation_id="getConversation",
    summary="Where the conversation's journey stands, and its messages",
    response={200: ConversationDetail, **errors(403, 404)},
    exclude_unset=True,
)
@caller_first()
async def get_conversation(request: HttpRequest, conversation_id: uuid.UUID) -> Any:
    """No such conversation for this caller (unknown, someone else's, or made from code
    with no owner) is a 404, the same answer for all."""
    caller = await caller_of(request)
    return await run_db(_detail_sync, conversation_id, caller)


@router.post(
    "/conversations/{conversation_id}/messages",
    url_name="messages",
    operation_id="postMessage",
    summary="Send a user message and get the turn's answer",
    response={
        200: Turn,
        202: Queued,
        **errors(403, 404, *_BODY_ERRORS, *_TURN_ERRORS),
    },
    openapi_extra=retry_after_headers(409, 429),
    exclude_unset=True,
)
@caller_first(owner=True)
async def post_message(
    request: HttpRequest,
    conversation_id: uuid.UUID,
    body: NewMessage,
    response: HttpResponse,
    idempotency_key: IdempotencyKey | None = Header(  # noqa: B008
        None,
        alias="Idempotency-Key",
        description="A retried request with the same key returns the first response "
        "instead of playing the turn again",
    ),
) -> Any:
    """Answers with the turn (idempotent with ``Idempotency-Key``); with ``TURNS =
    "queued"``: 202, the message stored and queued (``Location``: the run)."""
    cid = conversation_id
    if queued_mode():
        # Stored (durably, before answering) and handed to a worker: 202 with the run.
        queued = await submit_turn(
            None,
            cid,
            body.message,
            caller=functools.partial(turn_caller_sync, request, cid, False),
            idempotency_key=idempotency_key,
            message_id=body.message_id,
        )
        return _accepted(request, response, queued)
    # Caller, ownership, claim and the load of state and history: one database trip.
    turn = await run_turn(
        None,
        cid,
        body.message,
        idempotency_key=idempotency_key,
        create=False,
        reach_ownerless=False,
        caller=functools.partial(turn_caller_sync, request, cid, False),
        message_id=body.message_id,
    )
    if turn.replayed:
        response["Idempotent-Replayed"] = "true"
    return turn.to_dict()


@router.get(
    "/conversations/{conversation_id}/runs/{run_id}",
    url_name="run",
    operation_id="getRun",
    summary="A queued turn: queued, running, done (with the turn) or failed",
    response={200: Run, **errors(403, 404)},
    exclude_unset=True,
)
@caller_first()
async def get_run(request: HttpRequest, conversation_id: uuid.UUID, run_id: uuid.UUID) -> Any:
    """A queued turn: queued, running, done (with the turn) or failed (with the error)."""
    caller = await caller_of(request)
    return await run_db(_run_sync, conversation_id, run_id, caller)
