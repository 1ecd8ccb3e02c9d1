"""The one LLM client protocol every model plugs into.

A client is any object with ``async generate(messages, tools=None, **kw)`` returning an
object with ``.message`` (an OpenAI-style assistant message dict, tool calls in OpenAI
format) and ``.usage`` (a dict of token counts). That is the seed's shape and also
agent_runtime_core's, so those clients plug in unchanged. A client that can stream also
offers ``stream(messages, tools=None, **kw)``: an async iterator of ``LLMStreamEvent``
whose last item carries the complete response.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

__all__ = [
    "LLMAuthenticationError",
    "LLMBadRequestError",
    "LLMClient",
    "LLMConnectionError",
    "LLMError",
    "LLMRateLimitError",
    "LLMResponse",
    "LLMServerError",
    "LLMStreamEvent",
    "LLMStreamInterruptedError",
    "LLMTimeoutError",
    "MissingLLMDependencyError",
    "NoLLMConfiguredError",
    "StreamingLLMClient",
    "normalize_usage",
]


@dataclass(slots=True)
class LLMResponse:
    """A complete model answer: an OpenAI-style assistant message plus token usage."""

    message: dict[str, Any]
    usage: dict[str, int] = field(default_factory=dict)
    finish_reason: str | None = None
    model: str | None = None
    raw: Any = None


@dataclass(slots=True)
class LLMStreamEvent:
    """One item of a streamed answer: a text delta, or (last) the complete response."""

    delta: str = ""
    response: LLMResponse | None = None


@runtime_checkable
class LLMClient(Protocol):
    """What the executor needs from a model."""

    async def generate(
        self,
        messages: Sequence[Mapping[str, Any]],
        tools: Sequence[Mapping[str, Any]] | None = None,
        **kwargs: Any,
    ) -> Any: ...


@runtime_checkable
class StreamingLLMClient(LLMClient, Protocol):
    """A client that can also stream text deltas before the complete message."""

    def stream(
        self,
        messages: Sequence[Mapping[str, Any]],
        tools: Sequence[Mapping[str, Any]] | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[LLMStreamEvent]: ...


def normalize_usage(usage: Any) -> dict[str, int]:
    """Token usage as ``prompt_tokens``/``completion_tokens``/``total_tokens`` ints.

    Accepts OpenAI names, Anthropic names (``input_tokens``/``output_tokens``), objects
    with those attributes, or None.
    """
    if not usage:
        return {}
    if (
        type(usage) is dict
        and len(usage) == 3
        and "total_tokens" in usage
        and "prompt_tokens" in usage
    ):
        return usage  # already normalized (the common case)
    if not isinstance(usage, Mapping):
        usage = {
            name: getattr(usage, name)
            for name in (
                "prompt_tokens",
                "completion_tokens",
                "total_tokens",
                "input_tokens",
                "output_tokens",
            )
            if isinstance(getattr(usage, name, None), int)
        }
    prompt = int(usage.get("prompt_tokens", usage.get("input_tokens", 0)) or 0)
    completion = int(usage.get("completion_tokens", usage.get("output_tokens", 0)) or 0)
    total = int(usage.get("total_tokens", prompt + completion) or 0)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": total}


class LLMError(Exception):
    """A model call failed after the client's retries; carries the provider's message."""

    retryable: bool = False
    #: Seconds the provider asked us to wait (``Retry-After``), when it said so.
    retry_after: float | None = None

    def __init__(
        self,
        message: str,
        *,
        provider: str | None = None,
        status_code: int | None = None,
        attempts: int = 1,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.provider = provider
        self.status_code = status_code
        self.attempts = attempts


class LLMRateLimitError(LLMError):
    """The provider kept answering 429 (rate limit or quota)."""

    retryable = True

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.retry_after = retry_after


class LLMTimeoutError(LLMError):
    """The provider did not answer within the timeout."""

    retryable = True


class LLMConnectionError(LLMError):
    """The connection failed or dropped (also mid-stream)."""

    retryable = True


class LLMStreamInterruptedError(LLMConnectionError):
    """A stream broke after text was already handed to the caller, so it is not retried.

    ``partial_text`` is what the caller has already received; retrying silently would
    show the user the same words twice.
    """

    retryable = False

    def __init__(self, message: str, *, partial_text: str = "", **kw: Any) -> None:
        super().__init__(message, **kw)
        self.partial_text = partial_text


class LLMServerError(LLMError):
    """The provider kept failing with 5xx, or answered something that is not its format."""

    retryable = True


class LLMAuthenticationError(LLMError):
    """401/403: the key is missing, wrong or lacks permission. Retrying will not help."""


class LLMBadRequestError(LLMError):
    """400/404/422: the request itself was refused (bad model name, bad schema...)."""


class NoLLMConfiguredError(LLMError):
    """No client was given and none could be resolved from settings or environment."""


class MissingLLMDependencyError(ImportError):
    """A provider's SDK is not installed; the message names the pip extra that adds it."""
