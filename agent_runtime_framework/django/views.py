"""The HTTP API: async JSON views over ``run_turn``, plus the live event stream (SSE).

Every error is ``{"error": {"code", "message", "details"}}`` with a 4xx status (5xx only
for failures that are not the caller's: 502 when the model provider fails, 503 when no
model is configured, 500 for bugs). A conversation belongs to its owner (a user, or an
anonymous session when ``ALLOW_ANONYMOUS`` is on); anyone else gets 404, as for a
conversation that does not exist, and a conversation with neither (made from code or the
CLI) is nobody's over HTTP. POSTs are CSRF-checked the Django way (the
``X-CSRFToken`` header from the ``csrftoken`` cookie), with a JSON 403 when the check fails.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.exceptions import BadRequest, RequestDataTooBig, SuspiciousOperation
from django.core.handlers.wsgi import WSGIRequest
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.middleware.csrf import CsrfViewMiddleware, get_token
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt

from ..agents.routed import RoutedJourneyAgent
from ..llm.base import LLMError, MissingLLMDependencyError, NoLLMConfiguredError
from ..memory.stores import JourneyBusy
from .approvals import approvals_of
from .conf import app_settings
from .db import run_db
from .host import (
    ConversationNotFound,
    RequestInProgress,
    UnknownAgent,
    current_journey_row,
    describe_llm,
    journeys_of_sync,
    owns,
    progress_of,
    run_turn,
    where_it_stands,
)
from .live import connect_signals, ensure_listening, listening, live_bus
from .models import Conversation, JourneyEvent, JourneyMessage, JourneyStatus
from .queued import QueuedTurn, QueueUnavailable, queued_mode, run_status, submit_turn
from .registry import find_journey_agent, get_runtime, registered_runtimes
from .stores import LeaseLost, ensure_conversation_sync
from .usage import UsageLimitExceeded

__all__ = [
    "ApiError",
    "agents_view",
    "conversation_detail_view",
    "conversations_view",
    "error_response",
    "events_view",
    "messages_view",
    "openapi_view",
    "run_view",
]

logger = logging.getLogger("agent_runtime_framework.django")

#: Seconds between keep-alive comments on an idle event stream.
SSE_KEEPALIVE_SECONDS = 15.0
#: Seconds between reads of the event table while waiting (events of other workers).
SSE_POLL_SECONDS = 2.0
#: Conversations listed at most, most recent first.
MAX_LISTED_CONVERSATIONS = 100
#: Messages returned by the detail view at most (the most recent ones).
MAX_DETAIL_MESSAGES = 1000
#: The largest event id (the table's id is a 64-bit integer).
MAX_EVENT_ID = 2**63 - 1

_IDEMPOTENCY_KEY_RE = re.compile(r"^[\x21-\x7e]{1,200}$")

connect_signals()


# -- errors -------------------------------------------------------------------------------


class ApiError(Exception):
    """An error answer: status, snake_case code, human message, details, extra headers."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details or {}
        self.headers = headers or {}

    def response(self) -> JsonResponse:
        return error_response(self.status, self.code, self.message, self.details, self.headers)


def error_response(
    status: int,
    code: str,
    message: str,
    details: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> JsonResponse:
    response = JsonResponse(
        {"error": {"code": code, "message": message, "details": details or {}}}, status=status
    )
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def _body_too_large() -> ApiError:
    limit = int(app_settings().MAX_BODY_BYTES)
    return ApiError(
        413,
        "body_too_large",
        f"The request body is larger than {limit} bytes",
        {"max_bytes": limit},
    )


def _not_found(conversation_id: Any) -> ApiError:
    return ApiError(
        404, "not_found", "Conversation not found", {"conversation_id": str(conversation_id)}
    )


def _map_exception(exc: BaseException, conversation_id: Any = None) -> ApiError | None:
    """The API error for an exception of a request or a turn (None: an unexpected failure)."""
    cid = {"conversation_id": str(conversation_id)} if conversation_id is not None else {}
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, RequestDataTooBig):
        return _body_too_large()
    if isinstance(exc, BadRequest | SuspiciousOperation):
        # Django's verdict on a malformed or hostile request: the client's fault.
        logger.warning("rejected a bad request: %s: %s", type(exc).__name__, exc)
        return ApiError(
            400, "invalid_request", "The request is malformed", {"reason": str(exc)[:200]}
        )
    if isinstance(exc, ConversationNotFound):
        return _not_found(exc.conversation_id)
    if isinstance(exc, UnknownAgent):
        return ApiError(409, "agent_unavailable", str(exc), {"agent": exc.key, **cid})
    if isinstance(exc, JourneyBusy):
        retry = max(1, math.ceil(exc.retry_after))
        return ApiError(
            409,
            "conversation_busy",
            "Another message is being answered in this conversation; retry shortly",
            {"retry_after": retry, **cid},
            {"Retry-After": str(retry)},
        )
    if isinstance(exc, LeaseLost):
        return ApiError(
            409,
            "conversation_busy",
            "The turn lost its hold on the conversation; retry",
            {"retry_after": 1, **cid},
            {"Retry-After": "1"},
        )
    if isinstance(exc, UsageLimitExceeded):
        # Refused before anything was stored: the client may send it again later.
        retry = max(1, math.ceil(exc.retry_after))
        return ApiError(
            429,
            "usage_limit_exceeded",
            f"{exc}; the message was not sent, try again in {retry} seconds",
            {
                "limit": exc.limit,
                "used": exc.used,
                "allowed": exc.allowed,
                "period_seconds": exc.period,
                "retry_after": retry,
                **cid,
            },
            {"Retry-After": str(retry)},
        )
    if isinstance(exc, RequestInProgress):
        return ApiError(
            409,
            "request_in_progress",
            "A request with this Idempotency-Key is still being processed; retry shortly",
            {"retry_after": 1, **cid},
            {"Retry-After": "1"},
        )
    if isinstance(exc, QueueUnavailable):
        return ApiError(
            503,
            "queue_unavailable",
            f"{exc}; the message is stored and will be answered when the queue is back",
            {"run_id": exc.run_id, "retry_after": 5, **cid},
            {"Retry-After": "5"},
        )
    if isinstance(exc, NoLLMConfiguredError | MissingLLMDependencyError):
        return ApiError(503, "llm_not_configured", str(exc), cid)
    if isinstance(exc, LLMError):
        details: dict[str, Any] = {
            "type": type(exc).__name__,
            "retryable": bool(exc.retryable),
            **cid,
        }
        if exc.provider:
            details["provider"] = exc.provider
        if exc.status_code:
            details["status_code"] = exc.status_code
        headers = {}
        if exc.retry_after:
            headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after)))
        return ApiError(
            502, "llm_error", f"The language model failed: {exc.message}", details, headers
        )
    return None


ViewFunc = Callable[..., Awaitable[HttpResponseBase]]


def api_view(*methods: str) -> Callable[[ViewFunc], Any]:
    """Async JSON view: method check (JSON 405), errors as JSON, our own CSRF check."""

    def decorate(view: ViewFunc) -> Any:
        @functools.wraps(view)
        async def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
            if request.method not in methods:
                return error_response(
                    405,
                    "method_not_allowed",
                    f"Method {request.method} is not allowed here",
                    {"allowed": list(methods)},
                    {"Allow": ", ".join(methods)},
                )
            try:
                if request.method not in ("GET", "HEAD", "OPTIONS"):
                    _require_json_body(request)
                    await _check_csrf(request)
                return await view(request, *args, **kwargs)
            except Exception as exc:
                error = _map_exception(exc, kwargs.get("conversation_id"))
                if error is not None:
                    return error.response()
                logger.exception("unexpected error in %s", view.__name__)
                return error_response(
                    500, "internal_error", "An unexpected error occurred; it has been logged"
                )

        return csrf_exempt(wrapper)

    return decorate


# -- CSRF and the caller -----------------------------------------------------------------


class _CsrfRejected:
    def __init__(self, reason: str) -> None:
        self.reason = reason


class _CsrfCheck(CsrfViewMiddleware):
    """Django's own CSRF check, answering with the reason instead of an HTML page."""

    def _reject(self, request: HttpRequest, reason: str) -> Any:
        return _CsrfRejected(reason)


def _require_json_body(request: HttpRequest) -> None:
    """415 for a body that is not JSON, before the CSRF check.

    Django's CSRF check reads ``request.POST``, which parses a form body (multipart or
    urlencoded) and raises on a malformed one. Every POST here takes JSON, so a form body
    is refused before anything parses it; for any other type ``request.POST`` stays empty
    without reading the body, and the CSRF check runs exactly as Django's.
    """
    # Django's own parse of the header, the one request.POST decides by.
    content_type = (getattr(request, "content_type", None) or "").lower()
    if content_type and content_type != "application/json" and not content_type.endswith("+json"):
        raise ApiError(
            415,
            "unsupported_media_type",
            "Send the body as application/json",
            {"content_type": content_type[:100]},
        )


async def _check_csrf(request: HttpRequest) -> None:
    if getattr(settings, "CSRF_USE_SESSIONS", False) and hasattr(request, "session"):
        await request.session.aget("_csrftoken")  # load the session without blocking
    outcome = _CsrfCheck(lambda r: HttpResponse()).process_view(request, None, (), {})  # type: ignore[arg-type]
    if isinstance(outcome, _CsrfRejected):
        raise ApiError(
            403,
            "csrf_failed",
            "CSRF check failed: send the csrftoken cookie's value in the X-CSRFToken header",
            {"reason": outcome.reason},
        )


@dataclass(slots=True)
class Caller:
    """Who is asking: a user, or an anonymous session (none yet: owns nothing)."""

    user: Any
    user_id: Any
    session_key: str

    @property
    def identified(self) -> bool:
        return self.user_id is not None or bool(self.session_key)

    def owns(self, row: Mapping[str, Any]) -> bool:
        """The API's one ownership rule, for every endpoint (and ``run_turn``'s with
        ``reach_ownerless=False``): a user's conversation is that user's, a session's that
        session's, and one with neither (made from code or the CLI) nobody's."""
        return owns(row, self.user_id, self.session_key, reach_ownerless=False)

    def owned_filter(self) -> dict[str, Any] | None:
        """``owns`` as a queryset filter (None: the caller owns nothing)."""
        if self.user_id is not None:
            return {"owner_id": self.user_id}
        if self.session_key:
            return {"owner_id": None, "session_key": self.session_key}
        return None


def _resolve_caller_sync(request: HttpRequest, create_session: bool) -> Caller:
    """Resolve the user (and anonymous session) on a database thread.

    Done on the ``run_db`` pool (persistent connections) rather than through
    ``request.auser()``, whose ORM calls run on a fresh thread, and so a fresh database
    connection, for every request under ASGI.
    """
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        return Caller(user, user.pk, "")
    if not app_settings().ALLOW_ANONYMOUS:
        raise ApiError(
            403,
            "authentication_required",
            "Log in first: this API needs an authenticated session",
        )
    session = getattr(request, "session", None)
    if session is None:
        raise ApiError(
            403,
            "authentication_required",
            "Anonymous use needs django.contrib.sessions' SessionMiddleware",
        )
    # Loading drops a session key that does not exist in the store.
    session.get("agent_runtime_anonymous")
    if session.session_key is None and create_session:
        session["agent_runtime_anonymous"] = True
        session.save()
    return Caller(None, None, session.session_key or "")


async def _caller(request: HttpRequest, *, create_session: bool = False) -> Caller:
    return await run_db(_resolve_caller_sync, request, create_session)


def _turn_caller_sync(
    request: HttpRequest, cid: uuid.UUID, create_session: bool
) -> tuple[Any, str]:
    """``run_turn``'s ``caller``: resolved in the turn's first unit of database work
    (with the ownership check, the claim and the load), not in a trip of its own."""
    caller = _resolve_caller_sync(request, create_session)
    if not caller.identified:  # owns nothing
        raise _not_found(cid)
    return caller.user, caller.session_key


def _parse_conversation_id(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except (ValueError, TypeError, AttributeError):
        raise _not_found(value) from None


# -- request bodies -----------------------------------------------------------------------


def _read_json(request: HttpRequest) -> dict[str, Any]:
    """The body as a JSON object (its media type was checked by ``api_view``)."""
    limit = int(app_settings().MAX_BODY_BYTES)
    declared = request.META.get("CONTENT_LENGTH")
    try:
        declared_size = int(declared) if declared else 0
    except ValueError:
        raise ApiError(400, "invalid_request", "Content-Length is not a number") from None
    if declared_size > limit:
        raise _body_too_large()
    raw = request.body  # RequestDataTooBig: 413 in _map_exception
    if len(raw) > limit:
        raise _body_too_large()
    if not raw.strip():
        raise ApiError(400, "invalid_json", "The request body is empty; send a JSON object")
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ApiError(
            400, "invalid_json", "The request body is not valid JSON", {"reason": str(exc)[:200]}
        ) from None
    except RecursionError:  # nesting deeper than the parser's stack (within the size limit)
        raise ApiError(
            400, "invalid_json", "The request body is nested too deeply", {"reason": "depth"}
        ) from None
    if not isinstance(data, dict):
        raise ApiError(
            400,
            "invalid_json",
            "The request body must be a JSON object",
            {"got": type(data).__name__},
        )
    return data


def _text_field(data: dict[str, Any], name: str, *, required: bool) -> str | None:
    if name not in data or data[name] is None:
        if required:
            raise ApiError(400, "missing_field", f"The field {name!r} is required", {"field": name})
        return None
    value = data[name]
    if not isinstance(value, str):
        raise ApiError(
            400,
            "invalid_field",
            f"The field {name!r} must be a string",
            {"field": name, "expected": "string", "got": type(value).__name__},
        )
    if "\x00" in value:
        raise ApiError(
            400,
            "invalid_field",
            f"The field {name!r} contains a NUL character",
            {"field": name},
        )
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ApiError(
            400,
            "invalid_field",
            f"The field {name!r} is not valid Unicode text",
            {"field": name},
        ) from None
    return value


def _message_id_field(data: dict[str, Any]) -> str | None:
    """The client's optional id of its message (a UUID), echoed on ``run.started``."""
    value = data.get("message_id")
    if value is None:
        return None
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        raise ApiError(
            400, "invalid_field", "message_id must be a UUID", {"field": "message_id"}
        ) from None


def _message_field(data: dict[str, Any], *, required: bool) -> str | None:
    message = _text_field(data, "message", required=required)
    if message is None:
        return None
    if not message.strip():
        if not required:
            return None
        raise ApiError(400, "invalid_field", "The message is empty", {"field": "message"})
    limit = int(app_settings().MAX_MESSAGE_CHARS)
    if len(message) > limit:
        raise ApiError(
            422,
            "message_too_long",
            f"The message has {len(message)} characters; at most {limit} are allowed",
            {"field": "message", "max_chars": limit, "chars": len(message)},
        )
    return message


def _idempotency_key(request: HttpRequest) -> str | None:
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return None
    if not _IDEMPOTENCY_KEY_RE.match(key):
        raise ApiError(
            400,
            "invalid_idempotency_key",
            "Idempotency-Key must be 1-200 visible ASCII characters",
        )
    return key


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


def _owned_row_sync(cid: uuid.UUID, caller: Caller) -> Mapping[str, Any]:
    """The conversation's row if the caller owns it, else 404 (as for an unknown id)."""
    row = Conversation.objects.filter(id=cid).values("agent_key", "owner_id", "session_key").first()
    if row is None or not caller.owns(row):
        raise _not_found(cid)
    return row


def _detail_sync(cid: uuid.UUID, caller: Caller) -> dict[str, Any]:
    row = _owned_row_sync(cid, caller)
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


# -- views --------------------------------------------------------------------------------


@api_view("GET")
async def agents_view(request: HttpRequest) -> HttpResponseBase:
    """The registered agents (with their steps) and the model in use."""
    get_token(request)  # the chat page reads the csrftoken cookie for its POSTs
    agents = [_agent_info(key, runtime) for key, runtime in registered_runtimes().items()]
    return JsonResponse({"agents": agents, "llm": describe_llm()})


@api_view("GET", "POST")
async def conversations_view(request: HttpRequest) -> HttpResponseBase:
    """GET: the caller's conversations. POST: start one (optionally with a first message)."""
    if request.method == "GET":
        get_token(request)
        caller = await _caller(request)
        return JsonResponse({"conversations": await run_db(_list_sync, caller)})
    data = _read_json(request)
    agent = _text_field(data, "agent", required=True)
    assert agent is not None
    message = _message_field(data, required=False)
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
        caller = await _caller(request, create_session=True)
        await run_db(ensure_conversation_sync, cid, agent, caller.user_id, caller.session_key)
        return JsonResponse({"conversation_id": str(cid), "agent": agent}, status=201)
    if queued_mode():
        queued = await submit_turn(
            agent,
            cid,
            message,
            caller=functools.partial(_turn_caller_sync, request, cid, True),
            create=True,
        )
        return _accepted(request, queued, agent=agent)
    try:
        turn = await run_turn(
            agent,
            cid,
            message,
            reach_ownerless=False,
            caller=functools.partial(_turn_caller_sync, request, cid, True),
        )
    except Exception as exc:
        error = _map_exception(exc, cid)
        if error is None:
            raise
        return error.response()
    return JsonResponse(turn.to_dict(), status=201)


@api_view("GET")
async def conversation_detail_view(request: HttpRequest, conversation_id: str) -> HttpResponseBase:
    """One conversation: where its journey stands and its messages."""
    caller = await _caller(request)
    cid = _parse_conversation_id(conversation_id)
    return JsonResponse(await run_db(_detail_sync, cid, caller))


@api_view("POST")
async def messages_view(request: HttpRequest, conversation_id: str) -> HttpResponseBase:
    """Send a user message; answers with the turn (idempotent with ``Idempotency-Key``)."""
    try:
        cid = _parse_conversation_id(conversation_id)
        data = _read_json(request)
        message = _message_field(data, required=True)
        message_id = _message_id_field(data)
        key = _idempotency_key(request)
    except ApiError:
        # The caller's errors come first: 403, then 404 for a caller who owns nothing.
        caller = await _caller(request)
        if not caller.identified:
            raise _not_found(conversation_id) from None
        raise
    assert message is not None
    if queued_mode():
        # Stored (durably, before answering) and handed to a worker: 202 with the run.
        queued = await submit_turn(
            None,
            cid,
            message,
            caller=functools.partial(_turn_caller_sync, request, cid, False),
            idempotency_key=key,
            message_id=message_id,
        )
        return _accepted(request, queued)
    # Caller, ownership, claim and the load of state and history: one database trip.
    turn = await run_turn(
        None,
        cid,
        message,
        idempotency_key=key,
        create=False,
        reach_ownerless=False,
        caller=functools.partial(_turn_caller_sync, request, cid, False),
        message_id=message_id,
    )
    response = JsonResponse(turn.to_dict())
    if turn.replayed:
        response["Idempotent-Replayed"] = "true"
    return response


def _accepted(request: HttpRequest, queued: QueuedTurn, **extra: Any) -> HttpResponseBase:
    """202: the message is stored and queued; ``Location`` is the run's status."""
    match = request.resolver_match
    location = reverse(
        f"{match.namespace}:run" if match and match.namespace else "agent_runtime:run",
        kwargs={"conversation_id": queued.conversation_id, "run_id": queued.run_id},
    )
    response = JsonResponse({**queued.to_dict(), **extra, "status_url": location}, status=202)
    response["Location"] = location
    if queued.replayed:
        response["Idempotent-Replayed"] = "true"
    return response


def _run_sync(cid: uuid.UUID, run_id: uuid.UUID, caller: Caller) -> dict[str, Any]:
    _owned_row_sync(cid, caller)
    found = run_status(cid, run_id)
    if found is None:
        raise ApiError(
            404, "run_not_found", f"Run {run_id} not found", {"conversation_id": str(cid)}
        )
    return found


@api_view("GET")
async def run_view(request: HttpRequest, conversation_id: str, run_id: str) -> HttpResponseBase:
    """A queued turn: queued, running, done (with the turn) or failed (with the error)."""
    caller = await _caller(request)
    cid = _parse_conversation_id(conversation_id)
    try:
        rid = uuid.UUID(run_id)
    except ValueError:
        raise ApiError(404, "run_not_found", "No such run", {"run_id": run_id[:100]}) from None
    return JsonResponse(await run_db(_run_sync, cid, rid, caller))


def _last_event_id(request: HttpRequest) -> int:
    raw = request.headers.get("Last-Event-ID") or request.GET.get("last_event_id") or ""
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


@api_view("GET")
async def events_view(request: HttpRequest, conversation_id: str) -> HttpResponseBase:
    """``text/event-stream`` of the conversation's events, resumable with Last-Event-ID."""
    caller = await _caller(request)
    cid = _parse_conversation_id(conversation_id)
    await run_db(_owned_row_sync, cid, caller)
    after = _last_event_id(request)
    stream: Any = (
        _event_stream_polled(cid, after)
        if isinstance(request, WSGIRequest)
        else _event_stream(cid, after)
    )
    response = StreamingHttpResponse(stream, content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"
    return response


@api_view("GET")
async def openapi_view(request: HttpRequest) -> HttpResponseBase:
    """The OpenAPI 3 document of this API."""
    from .openapi import openapi_document

    return JsonResponse(openapi_document(request))
