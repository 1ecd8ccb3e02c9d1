"""The one retry policy for every provider client.

The SDKs each ship their own retry loop; our clients turn those off (``max_retries=0``) so
that this module is the only policy: bounded attempts, exponential backoff with jitter, the
provider's ``Retry-After`` honoured, and streams retried only while nothing has been shown
to the caller yet.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

from .base import LLMError, LLMStreamEvent, LLMStreamInterruptedError

__all__ = [
    "RetryPolicy",
    "SleepFunction",
    "parse_retry_after",
]

logger = logging.getLogger("agent_runtime_framework.llm")

T = TypeVar("T")

#: How the policy waits; tests inject a recorder so they do not wait for real.
SleepFunction = Callable[[float], Awaitable[Any]]


def parse_retry_after(
    headers: Mapping[str, str] | Any, *, now: float | None = None
) -> float | None:
    """Seconds to wait from ``retry-after-ms``, or ``retry-after`` (seconds or HTTP date).

    Returns None when the headers say nothing usable. Dates in the past give 0.
    """
    if headers is None:
        return None
    getter = getattr(headers, "get", None)
    if getter is None:
        return None
    millis = getter("retry-after-ms") or getter("Retry-After-Ms")
    if millis:
        try:
            return max(0.0, float(millis) / 1000.0)
        except (TypeError, ValueError):
            pass
    value = getter("retry-after") or getter("Retry-After")
    if not value:
        return None
    value = str(value).strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Bounded retries with exponential backoff and jitter, honouring ``Retry-After``.

    ``max_retries`` counts retries after the first attempt (3 means up to 4 requests).
    The n-th retry waits ``min(max_delay, base_delay * 2**(n-1))`` shortened by up to
    ``jitter`` (a fraction, 0 disables it) so that many clients do not retry in lockstep.
    When the provider sends ``Retry-After`` we wait exactly that long; if it asks for more
    than ``max_retry_after`` seconds we give up at once instead of holding a user's turn.
    Only errors whose ``retryable`` flag is set are retried (429, 408, 409, 5xx, timeouts,
    connection failures); 400/401/403/404/422 fail on the first attempt.
    """

    max_retries: int = 3
    base_delay: float = 0.5
    max_delay: float = 20.0
    jitter: float = 0.25
    max_retry_after: float = 60.0
    sleep: SleepFunction = field(default=asyncio.sleep, compare=False)
    rng: Callable[[], float] = field(default=random.random, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        if not 0.0 <= self.jitter <= 1.0:
            raise ValueError("jitter is a fraction between 0 and 1")

    @property
    def max_attempts(self) -> int:
        """Requests made at most for one call."""
        return self.max_retries + 1

    def backoff(self, retry_number: int) -> float:
        """The wait before retry ``retry_number`` (1-based) when the server gave no hint."""
        delay = min(self.max_delay, self.base_delay * (2 ** (retry_number - 1)))
        if self.jitter:
            delay *= 1.0 - self.jitter * self.rng()
        return max(0.0, delay)

    def delay_for(self, error: LLMError, attempt: int) -> float | None:
        """Seconds to wait before retrying after ``attempt`` failed, or None to give up."""
        if not error.retryable or attempt >= self.max_attempts:
            return None
        retry_after = error.retry_after
        if retry_after is not None:
            if retry_after > self.max_retry_after:
                return None
            return retry_after
        return self.backoff(attempt)

    async def call(self, attempt_fn: Callable[[], Awaitable[T]]) -> T:
        """Run ``attempt_fn`` until it succeeds or the policy gives up.

        ``attempt_fn`` must raise ``LLMError`` subclasses for provider failures; anything
        else is a bug and propagates at once.
        """
        attempt = 0
        while True:
            attempt += 1
            try:
                return await attempt_fn()
            except LLMError as error:
                delay = self.delay_for(error, attempt)
                if delay is None:
                    error.attempts = attempt
                    raise
                self._log_retry(error, attempt, delay)
                await self.sleep(delay)

    async def stream(
        self, open_attempt: Callable[[], AsyncIterator[LLMStreamEvent]]
    ) -> AsyncIterator[LLMStreamEvent]:
        """Relay a stream, retrying a failed attempt only if no text reached the caller.

        Once a delta has been yielded a retry would repeat words the user already saw,
        so a failure then raises ``LLMStreamInterruptedError`` (an ``LLMConnectionError``)
        carrying the partial text.
        """
        attempt = 0
        while True:
            attempt += 1
            shown: list[str] = []
            events = open_attempt()
            try:
                async for event in events:
                    if event.delta:
                        shown.append(event.delta)
                    yield event
                return
            except LLMError as error:
                if shown:
                    partial = "".join(shown)
                    raise LLMStreamInterruptedError(
                        f"stream interrupted after {len(partial)} characters were delivered; "
                        f"not retried: {error.message}",
                        partial_text=partial,
                        provider=error.provider,
                        status_code=error.status_code,
                        attempts=attempt,
                    ) from error
                delay = self.delay_for(error, attempt)
                if delay is None:
                    error.attempts = attempt
                    raise
                self._log_retry(error, attempt, delay)
            finally:
                aclose = getattr(events, "aclose", None)
                if aclose is not None:
                    await aclose()
            await self.sleep(delay)

    def _log_retry(self, error: LLMError, attempt: int, delay: float) -> None:
        logger.warning(
            "LLM call failed (attempt %d of %d), retrying in %.2fs: %s",
            attempt,
            self.max_attempts,
            delay,
            error.message,
        )
