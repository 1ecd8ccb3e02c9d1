"""RetryPolicy and Retry-After parsing, independent of any provider."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from agent_runtime_framework.llm import (
    LLMAuthenticationError,
    LLMBadRequestError,
    LLMConnectionError,
    LLMRateLimitError,
    LLMResponse,
    LLMServerError,
    LLMStreamEvent,
    LLMStreamInterruptedError,
    LLMTimeoutError,
    RetryPolicy,
    parse_retry_after,
)
from agent_runtime_framework.llm._errors import error_for_status, provider_message


def test_parse_retry_after_forms():
    assert parse_retry_after({"retry-after": "7"}) == 7.0
    assert parse_retry_after({"retry-after": "1.5"}) == 1.5
    assert parse_retry_after({"retry-after-ms": "250"}) == 0.25
    assert parse_retry_after({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    assert parse_retry_after({"retry-after": "soon"}) is None
    assert parse_retry_after({}) is None
    now = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)
    later = format_datetime(now + timedelta(seconds=30), usegmt=True)
    assert parse_retry_after({"retry-after": later}, now=now.timestamp()) == pytest.approx(30)
    earlier = format_datetime(now - timedelta(seconds=30), usegmt=True)
    assert parse_retry_after({"retry-after": earlier}, now=now.timestamp()) == 0.0


def test_backoff_is_exponential_capped_and_jittered():
    policy = RetryPolicy(base_delay=0.5, max_delay=3.0, jitter=0.0)
    assert [policy.backoff(n) for n in (1, 2, 3, 4, 5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    low = RetryPolicy(base_delay=1.0, jitter=0.5, rng=lambda: 1.0)
    high = RetryPolicy(base_delay=1.0, jitter=0.5, rng=lambda: 0.0)
    assert low.backoff(1) == 0.5 and high.backoff(1) == 1.0
    with pytest.raises(ValueError):
        RetryPolicy(jitter=2)
    with pytest.raises(ValueError):
        RetryPolicy(max_retries=-1)


async def test_call_retries_retryable_errors_then_raises_with_attempts(sleeps):
    policy = RetryPolicy(max_retries=2, base_delay=0.1, jitter=0.0, sleep=sleeps)
    calls = 0

    async def failing() -> None:
        nonlocal calls
        calls += 1
        raise LLMServerError("boom", provider="p", status_code=502)

    with pytest.raises(LLMServerError) as info:
        await policy.call(failing)
    assert calls == 3 and info.value.attempts == 3
    assert sleeps.calls == [0.1, 0.2]


async def test_call_does_not_retry_non_retryable_or_foreign_errors(sleeps):
    policy = RetryPolicy(sleep=sleeps)

    async def unauthorized() -> None:
        raise LLMAuthenticationError("no", status_code=401)

    async def bug() -> None:
        raise KeyError("programming error")

    with pytest.raises(LLMAuthenticationError):
        await policy.call(unauthorized)
    with pytest.raises(KeyError):
        await policy.call(bug)
    assert sleeps.calls == []


async def test_call_returns_after_transient_failure(sleeps):
    policy = RetryPolicy(max_retries=3, base_delay=0.1, jitter=0.0, sleep=sleeps)
    outcomes: list[Exception | str] = [LLMConnectionError("reset"), "ok"]

    async def flaky() -> str:
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    assert await policy.call(flaky) == "ok"
    assert sleeps.calls == [0.1]


def _stream(deltas: list[str], fail: bool) -> AsyncIterator[LLMStreamEvent]:
    async def generator() -> AsyncIterator[LLMStreamEvent]:
        for delta in deltas:
            yield LLMStreamEvent(delta=delta)
        if fail:
            raise LLMConnectionError("dropped", provider="p")
        yield LLMStreamEvent(
            response=LLMResponse(message={"role": "assistant", "content": "".join(deltas)})
        )

    return generator()


async def test_stream_retried_only_before_first_delta(sleeps):
    policy = RetryPolicy(max_retries=2, base_delay=0.1, jitter=0.0, sleep=sleeps)
    attempts = iter([_stream([], fail=True), _stream(["a", "b"], fail=False)])
    events = [event async for event in policy.stream(lambda: next(attempts))]
    assert [e.delta for e in events if e.response is None] == ["a", "b"]
    assert events[-1].response is not None and sleeps.calls == [0.1]


async def test_stream_failure_after_delta_raises_interrupted(sleeps):
    policy = RetryPolicy(max_retries=2, sleep=sleeps)
    opened = 0

    def open_attempt() -> AsyncIterator[LLMStreamEvent]:
        nonlocal opened
        opened += 1
        return _stream(["Hello", " wor"], fail=True)

    seen: list[str] = []
    with pytest.raises(LLMStreamInterruptedError) as info:
        async for event in policy.stream(open_attempt):
            seen.append(event.delta)
    assert opened == 1 and sleeps.calls == []
    assert info.value.partial_text == "Hello wor" == "".join(seen)
    assert not info.value.retryable


@pytest.mark.parametrize(
    ("status", "kind", "retryable"),
    [
        (400, LLMBadRequestError, False),
        (401, LLMAuthenticationError, False),
        (403, LLMAuthenticationError, False),
        (404, LLMBadRequestError, False),
        (422, LLMBadRequestError, False),
        (408, LLMTimeoutError, True),
        (409, LLMServerError, True),
        (429, LLMRateLimitError, True),
        (500, LLMServerError, True),
        (503, LLMServerError, True),
        (529, LLMServerError, True),
    ],
)
def test_status_mapping(status, kind, retryable):
    error = error_for_status(status, "why", provider="p", headers={"retry-after": "2"})
    assert type(error) is kind and error.retryable is retryable
    assert error.status_code == status and "why" in error.message and error.provider == "p"


def test_retry_after_applies_to_server_errors_too(sleeps):
    error = error_for_status(503, "maintenance", provider="p", headers={"retry-after": "4"})
    policy = RetryPolicy(max_retries=1, sleep=sleeps)
    assert policy.delay_for(error, 1) == 4.0
    assert policy.delay_for(error, 2) is None  # attempts used up


def test_provider_message_shapes():
    assert provider_message({"error": {"message": "openai says"}}, "x") == "openai says"
    assert (
        provider_message({"type": "error", "error": {"type": "t", "message": "claude says"}}, "x")
        == "claude says"
    )
    assert provider_message({"error": "plain"}, "x") == "plain"
    assert provider_message("<html>Bad Gateway</html>", "x") == "<html>Bad Gateway</html>"
    assert provider_message(None, "fallback") == "fallback"
