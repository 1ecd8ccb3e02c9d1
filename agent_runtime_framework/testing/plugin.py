"""pytest plugin (entry point ``agent_runtime_framework``): fixtures for journey tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from ..config import get_config, set_config
from .driver import JourneyDriver
from .scripted import ScriptedLLM


@pytest.fixture
def scripted_llm() -> ScriptedLLM:
    """A fresh ``ScriptedLLM``; fill it with ``.reply()`` / ``.call()``."""
    return ScriptedLLM()


@pytest.fixture
def journey_driver() -> Callable[..., JourneyDriver]:
    """Factory: ``journey_driver(agent)`` -> a ``JourneyDriver`` on a new conversation."""

    def make(agent: Any, conversation_id: Any = None, **metadata: Any) -> JourneyDriver:
        return JourneyDriver(agent, conversation_id, **metadata)

    return make


@pytest.fixture
def framework_config() -> Iterator[Callable[..., Any]]:
    """``framework_config(debug=True)`` for one test; the previous config is restored."""
    from ..config import configure

    saved = get_config()
    yield configure
    set_config(saved)


@pytest.fixture
def fake_provider_server() -> Iterator[Any]:
    """A started ``FakeProviderServer`` (OpenAI and Anthropic wire formats) on 127.0.0.1."""
    from .fake_providers import FakeProviderServer

    with FakeProviderServer() as server:
        yield server
