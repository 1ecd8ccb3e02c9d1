"""Who is asking, and the checks every operation passes before its input is validated.

A conversation belongs to its owner (a user, or an anonymous session when
``ALLOW_ANONYMOUS`` is on); anyone else gets 404, as for a conversation that does not
exist, and a conversation with neither (made from code or the CLI) is nobody's over HTTP.
POSTs are CSRF-checked the Django way (the ``X-CSRFToken`` header from the ``csrftoken``
cookie), with a JSON 403 when the check fails. The operations are ``csrf_exempt`` for
Django's middleware and run that same check themselves (in ``gate``), after refusing a
body that is not JSON (415), so that no form body is ever parsed.
"""

from __future__ import annotations

import functools
import json
import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pydantic
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.middleware.csrf import CsrfViewMiddleware
from ninja.errors import ValidationErrorContext

from ..conf import app_settings
from ..host.turns import owns
from ..store.db import run_db
from .errors import (
    ApiError,
    body_too_large,
    internal_error,
    map_exception,
    not_found,
    validation_error,
)

__all__ = [
    "Caller",
    "caller_of",
    "check_csrf",
    "gate",
    "read_json",
    "require_json_body",
    "turn_caller_sync",
]

logger = logging.getLogger("agent_runtime_framework.django")

_SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


# -- CSRF and the body's media type --------------------------------------------------------


class _CsrfRejected:
    def __init__(self, reason: str) -> None:
        self.reason = reason


class _CsrfCheck(CsrfViewMiddleware):
    """Django's own CSRF check, answering with the reason instead of an HTML page."""

    def _reject(self, request: HttpRequest, reason: str) -> Any:
        return _CsrfRejected(reason)


def require_json_body(request: HttpRequest) -> None:
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


async def check_csrf(request: HttpRequest) -> None:
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


def read_json(request: HttpRequest) -> dict[str, Any]:
    """The body as a JSON object (its media type was checked by ``gate``).

    Parsed once per request (the API's parser hands the result to ninja's validation).
    """
    cached = getattr(request, "_agent_runtime_json", None)
    if cached is not None:
        return dict(cached)
    limit = int(app_settings().MAX_BODY_BYTES)
    declared = request.META.get("CONTENT_LENGTH")
    try:
        declared_size = int(declared) if declared else 0
    except ValueError:
        raise ApiError(400, "invalid_request", "Content-Length is not a number") from None
    if declared_size > limit:
        raise body_too_large()
    raw = request.body  # RequestDataTooBig: 413 in map_exception
    if len(raw) > limit:
        raise body_too_large()
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
    request._agent_runtime_json = data  # type: ignore[attr-defined]
    return data


# -- the caller ---------------------------------------------------------------------------


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


def resolve_caller_sync(request: HttpRequest, create_session: bool) -> Caller:
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


async def caller_of(request: HttpRequest, *, create_session: bool = False) -> Caller:
    return await run_db(resolve_caller_sync, request, create_session)


def turn_caller_sync(request: HttpRequest, cid: uuid.UUID, create_session: bool) -> tuple[Any, str]:
    """``run_turn``'s ``caller``: resolved in the turn's first unit of database work
    (with the ownership check, the claim and the load), not in a trip of its own."""
    caller = resolve_caller_sync(request, create_session)
    if not caller.identified:  # owns nothing
        raise not_found(cid)
    return caller.user, caller.session_key


# -- the gate of every operation ------------------------------------------------------------

#: ``caller_first(...)``'s marks on an operation's function.
_CALLER_FIRST = "_agent_runtime_caller_first"


def caller_first(owner: bool = False, codes: tuple[str, ...] = ()) -> Callable[[Any], Any]:
    """Mark an operation whose input errors come after the caller's: 403 first, and with
    ``owner`` a 404 for a caller who owns nothing (for ``codes`` only, when given)."""

    def mark(view: Any) -> Any:
        setattr(view, _CALLER_FIRST, (owner, codes))
        return view

    return mark


def _path_error(operation: Any, request: HttpRequest, kwargs: dict[str, Any]) -> ApiError | None:
    """The API error for the operation's path parameters, if they are invalid."""
    for model in operation.models:
        if model.__ninja_param_source__ != "path":
            continue
        try:
            model.resolve(request, operation.api, kwargs)
        except pydantic.ValidationError as exc:
            context = ValidationErrorContext(pydantic_validation_error=exc, model=model)
            found = operation.api.validation_error_from_error_contexts([context])
            return validation_error(request, list(found.errors))
    return None


def _has_body(operation: Any) -> bool:
    return any(m.__ninja_param_source__ == "body" for m in getattr(operation, "models", ()))


def gate(run: Callable[..., Awaitable[HttpResponseBase]]) -> Any:
    """Every operation's ``run`` (a ninja ``view`` decorator, before validation).

    415 for a body that is not JSON, then the CSRF check, then (for an operation with a
    JSON body) the body read and parsed once; then ninja validates and calls the view. An
    input error of an operation marked ``caller_first`` gives way to the caller's errors.
    """
    operation = getattr(run, "__self__", None)
    has_body = _has_body(operation)
    marks = getattr(getattr(operation, "view_func", None), _CALLER_FIRST, None)

    @functools.wraps(run)
    async def gated(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        try:
            if request.method not in _SAFE_METHODS:
                require_json_body(request)
                await check_csrf(request)
            if has_body:
                try:
                    read_json(request)
                except Exception as exc:
                    error = map_exception(exc)
                    if error is None:
                        raise
                    # A bad path parameter is answered first (as it was checked first).
                    error = _path_error(operation, request, kwargs) or error
                    response: HttpResponseBase = error.response()
                    response.input_error = True  # type: ignore[attr-defined]
                else:
                    response = await run(request, *args, **kwargs)
            else:
                response = await run(request, *args, **kwargs)
            if marks is not None and getattr(response, "input_error", False):
                response = await _callers_errors_first(request, response, *marks)
            return response
        except Exception as exc:
            error = map_exception(exc, kwargs.get("conversation_id"))
            if error is not None:
                return error.response()
            logger.exception("unexpected error in %s", getattr(operation, "path", "?"))
            return internal_error()

    return gated


async def _callers_errors_first(
    request: HttpRequest, response: HttpResponseBase, owner: bool, codes: tuple[str, ...]
) -> HttpResponseBase:
    caller = await caller_of(request)  # ApiError 403: answered instead
    if not owner or caller.identified:
        return response
    if codes:
        try:
            code = json.loads(response.content)["error"]["code"]  # type: ignore[attr-defined]
        except (ValueError, KeyError, TypeError):
            code = ""
        if code not in codes:
            return response
    match = getattr(request, "resolver_match", None)
    return not_found((match.kwargs if match else {}).get("conversation_id", "")).response()
