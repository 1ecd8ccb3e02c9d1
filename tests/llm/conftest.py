"""Fixtures for the LLM provider tests: a fake provider server and a recording sleep."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from agent_runtime_framework.llm import RetryPolicy
from agent_runtime_framework.testing.fake_providers import FakeProviderServer


class SleepRecorder:
    """Stands in for ``asyncio.sleep`` in a RetryPolicy: records waits, never waits."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


@pytest.fixture
def fake_server() -> Iterator[FakeProviderServer]:
    with FakeProviderServer() as server:
        yield server


@pytest.fixture
def sleeps() -> SleepRecorder:
    return SleepRecorder()


@pytest.fixture
def retry(sleeps: SleepRecorder) -> RetryPolicy:
    """Two retries, deterministic delays (no jitter), nothing actually waited."""
    return RetryPolicy(max_retries=2, base_delay=0.25, max_delay=5.0, jitter=0.0, sleep=sleeps)
