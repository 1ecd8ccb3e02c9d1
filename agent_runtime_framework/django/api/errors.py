"""The API's errors: one table of codes, the JSON shape, and the mapping of exceptions.

Every error is ``{"error": {"code", "message", "details"}}``. ``ERROR_CODES`` is the one
list of codes by status: the OpenAPI document's error schemas (``Error400``, ...) are made
from it, and the exception handlers installed on the ``NinjaAPI`` turn request-validation
failures, the host's exceptions and unexpected bugs into these answers.
"""

from __future__ import annotations

import logging
import math
from typing import Any, Literal

from django.core.exceptions import BadRequest, RequestDataTooBig, SuspiciousOperation
from django.http import Http404, HttpRequest, JsonResponse
from pydantic import BaseModel, ConfigDict, Field, create_model

from ...llm.base import LLMError, MissingLLMDependencyError, NoLLMConfiguredError
from ...memory.stores import JourneyBusy
from ..conf import app_settings
from ..host.queued import QueueUnavailable
from ..host.turns import ConversationNotFound, RequestInProgress, UnknownAgent
from ..host.usage import UsageLimitExceeded
from ..store.orm import LeaseLost

__all__ = [
    "ERROR_CODES",
    "ERROR_MODELS",
    "ApiError",
    "error_response",
    "errors",
    "map_exception",
]

logger = logging.getLogger("agent_runtime_framework.django")

#: Every error ``code`` the API answers with, by status: the error schemas' enums.
ERROR_CODES: dict[int, tuple[str, ...]] = {
    400: (
        "invalid_request",
        "invalid_json",
        "missing_field",
        "invalid_field",
        "unknown_agent",
        "invalid_idempotency_key",
        "invalid_last_event_id",
        "invalid_decision",
    ),
    403: ("authentication_required", "csrf_failed", "staff_only"),
    404: ("not_found", "approval_not_found", "run_not_found"),
    405: ("method_not_allowed",),
    409: ("conversation_busy", "request_in_progress", "agent_unavailable", "already_decided"),
    413: ("body_too_large",),
    415: ("unsupported_media_type",),
    422: ("message_too_long",),
    429: ("usage_limit_exceeded",),
    500: ("internal_error",),
    502: ("llm_error",),
    503: ("llm_not_configured", "queue_unavailable"),
}

#: The status of each code.
STATUS_OF: dict[str, int] = {code: s for s, codes in ERROR_CODES.items() for code in codes}

_RETRY_AFTER = {"description": "Seconds to wait before retrying", "schema": {"type": "integer"}}


def _error_model(status: int) -> type[BaseModel]:
    codes = ERROR_CODES[status]
    body = create_model(
        f"ErrorBody{status}",
        __config__=ConfigDict(extra="forbid"),
        code=(Literal[codes], Field(examples=[codes[0]])),  # type: ignore[arg-type]
        message=(str, ...),
        details=(dict[str, Any], ...),
    )
    model: type[BaseModel] = create_model(
        f"Error{status}", __doc__=f"An error answer with status {status}", error=(body, ...)
    )
    return model


#: The documented body of each error status (made from ``ERROR_CODES``).
ERROR_MODELS: dict[int, type[BaseModel]] = {status: _error_model(status) for status in ERROR_CODES}


def errors(*statuses: int) -> dict[int, type[BaseModel]]:
    """``response=`` entries of these error statuses (every operation may also 500)."""
    return {status: ERROR_MODELS[status] for status in (*statuses, 500)}


def retry_after_headers(*statuses: int) -> dict[str, Any]:
    """``openapi_extra`` documenting the Retry-After header of these statuses."""
    return {"responses": {s: {"headers": {"Retry-After": _RETRY_AFTER}} for s in statuses}}


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


def internal_error() -> JsonResponse:
    return error_response(500, "internal_error", "An unexpected error occurred; it has been logged")


def body_too_large() -> ApiError:
    limit = int(app_settings().MAX_BODY_BYTES)
    return ApiError(
        413,
        "body_too_large",
        f"The request body is larger than {limit} bytes",
        {"max_bytes": limit},
    )


def not_found(conversation_id: Any) -> ApiError:
    return ApiError(
        404, "not_found", "Conversation not found", {"conversation_id": str(conversation_id)}
    )


def map_exception(exc: BaseException, conversation_id: Any = None) -> ApiError | None:
    """The API error for an exception of a request or a turn (None: an unexpected failure)."""
    cid = {"conversation_id": str(conversation_id)} if conversation_id is not None else {}
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, RequestDataTooBig):
        return body_too_large()
    if isinstance(exc, BadRequest | SuspiciousOperation):
        # Django's verdict on a malformed or hostile request: the client's fault.
        logger.warning("rejected a bad request: %s: %s", type(exc).__name__, exc)
        return ApiError(
            400, "invalid_request", "The request is malformed", {"reason": str(exc)[:200]}
        )
    if isinstance(exc, Http404):
        return (
            not_found(conversation_id)
            if conversation_id is not None
            else ApiError(404, "not_found", "Not found")
        )
    if isinstance(exc, ConversationNotFound):
        return not_found(exc.conversation_id)
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


# -- request validation ---------------------------------------------------------------------

#: Source order of validation errors: the first error of the first source is answered
#: (path before body before headers, as the checks ran in the hand-written views).
_SOURCE_ORDER = {"path": 0, "body": 1, "header": 2, "query": 3}


def _path_value(request: HttpRequest, name: str) -> str:
    match = getattr(request, "resolver_match", None)
    return str((match.kwargs if match else {}).get(name, ""))


def validation_error(request: HttpRequest, problems: list[dict[str, Any]]) -> ApiError:
    """One API error for ninja's validation errors (pydantic's, with their location)."""
    first = sorted(problems, key=lambda p: _SOURCE_ORDER.get(str(p["loc"][0]), 9))[0]
    source, *where = first["loc"]
    names = [str(part) for part in where if isinstance(part, str)]
    name = names[-1] if names else ""
    if source == "path" and names:
        name = names[0]
    kind, ctx = first.get("type", ""), dict(first.get("ctx") or {})
    if source == "path":
        raw = _path_value(request, name)
        if name == "run_id":
            return ApiError(404, "run_not_found", "No such run", {"run_id": raw[:100]})
        if name == "agent_key":
            return ApiError(
                404, "not_found", f"No agent is registered with key {raw[:100]!r}", {"agent": raw}
            )
        return not_found(raw)
    if source == "header":
        return ApiError(
            400,
            "invalid_idempotency_key",
            "Idempotency-Key must be 1-200 visible ASCII characters",
        )
    if kind in STATUS_OF:  # our own codes, raised by the schemas' validators
        return ApiError(STATUS_OF[kind], kind, str(first.get("msg", "")), ctx)
    if kind == "missing":
        return ApiError(400, "missing_field", f"The field {name!r} is required", {"field": name})
    return ApiError(
        400,
        "invalid_field",
        f"The field {name!r} is invalid: {first.get('msg', '')}"[:300],
        {"field": name},
    )


def install_handlers(api: Any) -> None:
    """Answer every exception of an operation the API's way (never a ninja default)."""
    from ninja.errors import HttpError
    from ninja.errors import ValidationError as NinjaValidationError

    def on_validation(request: HttpRequest, exc: NinjaValidationError) -> JsonResponse:
        response = validation_error(request, list(exc.errors)).response()
        response.input_error = True  # type: ignore[attr-defined]
        return response

    def on_http_error(request: HttpRequest, exc: HttpError) -> JsonResponse:
        cause = exc.__cause__
        error = map_exception(cause) if cause is not None else None
        if error is None:
            error = ApiError(400, "invalid_json", "The request body is not valid JSON")
        response = error.response()
        response.input_error = True  # type: ignore[attr-defined]
        return response

    def on_exception(request: HttpRequest, exc: Exception) -> JsonResponse:
        error = map_exception(exc, _path_value(request, "conversation_id") or None)
        if error is not None:
            return error.response()
        match = getattr(request, "resolver_match", None)
        logger.exception("unexpected error in %s", match.url_name if match else request.path)
        return internal_error()

    api.add_exception_handler(NinjaValidationError, on_validation)
    api.add_exception_handler(HttpError, on_http_error)
    api.add_exception_handler(Exception, on_exception)
