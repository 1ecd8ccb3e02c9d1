"""Fixtures of the Django app tests: ORM memory, a registered onboarding agent."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from typing import Any

import pytest

from agent_runtime_framework.django.store import db


def close_db_thread_connections() -> None:
    """Database threads and their connections do not outlive a test."""
    db.shutdown_db_threads()
    gc.collect()


@pytest.fixture(autouse=True)
def _fresh_db_threads() -> Iterator[None]:
    """Database threads (and their connections) do not outlive a test."""
    yield
    close_db_thread_connections()


@pytest.fixture
def registered_onboarding() -> Iterator[object]:
    """The onboarding agent registered under its key for the duration of a test."""
    from agent_runtime_framework.django.host.registry import register_runtime, unregister_runtime
    from tests.journeys import OnboardingAgent

    agent = OnboardingAgent()
    register_runtime(agent)
    yield agent
    unregister_runtime(agent.key)


@pytest.fixture
def quote() -> Iterator[tuple[Any, Any]]:
    """The example's quote journey on the ORM memory, registered, with its scripted model
    (the analytics and funnel-count tests)."""
    from agent_runtime_framework.django.host.registry import register_runtime, unregister_runtime
    from agent_runtime_framework.django.store.orm import DjangoMemoryManager
    from agent_runtime_framework.testing import ScriptedLLM
    from example_project.journeys.quote import QuoteAgent

    llm = ScriptedLLM()
    agent = QuoteAgent(llm, memory=DjangoMemoryManager())
    register_runtime(agent)
    yield agent, llm
    unregister_runtime(agent.key)


@pytest.fixture
def admin_user() -> Any:
    from django.contrib.auth import get_user_model

    return get_user_model().objects.create_superuser("root", "root@example.com", "pw")
