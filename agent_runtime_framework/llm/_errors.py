"""Turn provider SDK failures into the framework's typed ``LLMError`` family.

Both official SDKs raise errors with the same outline (a status code, the response with
its headers, a decoded body), and both sit on an httpx-style transport. The functions here
read that outline by duck typing, so the mapping lives in one place and neither SDK has to
be imported to use it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from .base import (
    LLMAuthenticationError,
    LLMBadRequestError,
    LLMConnectionError,
    LLMError,
    LLMRateLimitError,
    LLMServerError,
    LLMTimeoutError,
)
from .retry import parse_retry_after

__all__ = [
    "error_for_status",
    "provider_message",
    "translate_exception",
]

_SNIPPET = 200


def provider_message(body: Any, fallback: str) -> str:
    """The human message inside an error body (OpenAI and Anthropic shapes), else fallback."""
    if isinstance(body, Mapping):
        error = body.get("error", body)
        if isinstance(error, Mapping):
            message = error.get("message")
            if isinstance(message, str) and message:
                return message
        elif isinstance(error, str) and error:
            return error
        message = body.get("message")
        if isinstance(message, str) and message:
            return message
    elif isinstance(body, str) and body.strip():
        return body.strip()[:_SNIPPET]
    return fallback


def error_for_status(
    status: int,
    message: str,
    *,
    provider: str,
    headers: Mapping[str, str] | None = None,
) -> LLMError:
    """The typed error for an HTTP status; 429/408/409/5xx are the retryable ones."""
    text = f"{provider} returned HTTP {status}: {message}"
    retry_after = parse_retry_after(headers) if headers is not None else None
    error: LLMError
    if status == 429:
        error = LLMRateLimitError(
            text, retry_after=retry_after, provider=provider, status_code=status
        )
    elif status in (401, 403):
        error = LLMAuthenticationError(text, provider=provider, status_code=status)
    elif status == 408:
        error = LLMTimeoutError(text, provider=provider, status_code=status)
    elif status == 409 or status >= 500:
        error = LLMServerError(text, provider=provider, status_code=status)
        error.retry_after = retry_after
    elif 400 <= status < 500:
        error = LLMBadRequestError(text, provider=provider, status_code=status)
    else:
        error = LLMServerError(text, provider=provider, status_code=status)
    return error


def _class_names(exc: BaseException) -> set[str]:
    return {cls.__name__ for cls in type(exc).__mro__}


def _status_error(exc: BaseException, provider: str) -> LLMError:
    status = getattr(exc, "status_code", None)
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    body = getattr(exc, "body", None)
    fallback = str(getattr(exc, "message", "") or exc)
    message = provider_message(body, fallback)
    if not isinstance(status, int) or status < 400:
        # An error event inside a 200 stream: classify by the error type in its body.
        kind = ""
        if isinstance(body, Mapping):
            error = body.get("error", body)
            if isinstance(error, Mapping):
                kind = str(error.get("type") or "")
        if "rate_limit" in kind:
            return LLMRateLimitError(f"{provider} stream error: {message}", provider=provider)
        if "authentication" in kind or "permission" in kind:
            return LLMAuthenticationError(f"{provider} stream error: {message}", provider=provider)
        if "invalid_request" in kind:
            return LLMBadRequestError(f"{provider} stream error: {message}", provider=provider)
        return LLMServerError(f"{provider} stream error: {message}", provider=provider)
    return error_for_status(status, message, provider=provider, headers=headers)


def translate_exception(exc: BaseException, provider: str) -> LLMError | None:
    """The typed error for an SDK or transport exception; None if it is not one of those.

    Order matters: SDK timeouts subclass SDK connection errors, and status errors carry a
    response. Exceptions we do not recognise (programming errors) are left alone.
    """
    if isinstance(exc, LLMError):
        return exc
    names = _class_names(exc)
    if "APITimeoutError" in names or "TimeoutException" in names:
        return LLMTimeoutError(
            f"{provider}: no answer within the timeout ({exc})", provider=provider
        )
    if "APIConnectionError" in names or "TransportError" in names:
        cause = exc.__cause__ or exc.__context__
        detail = str(exc)
        if cause is not None and str(cause) and str(cause) != detail:
            detail = f"{detail} ({cause})"
        return LLMConnectionError(f"{provider}: connection failed: {detail}", provider=provider)
    if "APIResponseValidationError" in names:
        return LLMServerError(
            f"{provider}: the response does not match the API's format: {exc}",
            provider=provider,
            status_code=getattr(exc, "status_code", None),
        )
    if "APIStatusError" in names or "APIError" in names:
        return _status_error(exc, provider)
    if isinstance(exc, json.JSONDecodeError):
        return LLMServerError(
            f"{provider}: the response body is not valid JSON ({exc.msg} at position {exc.pos})",
            provider=provider,
        )
    return None
