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


def _django_test_case(request: pytest.FixtureRequest) -> bool:
    """A method of a ``django.test.TestCase`` (which wraps each test in a transaction)."""
    cls = getattr(request, "cls", None)
    if cls is None or not request.config.pluginmanager.hasplugin("django"):
        return False
    from django.test import TestCase

    return issubclass(cls, TestCase)


def _uses_db_fixture(request: pytest.FixtureRequest) -> bool:
    """pytest-django's ``db``: the fixture, or ``django_db`` without ``transaction=True``
    / ``reset_sequences=True``, and no ``transactional_db`` / ``live_server``."""
    names = set(request.fixturenames)
    marker = request.node.get_closest_marker("django_db")
    if marker is None and "db" not in names:
        return False
    if not request.config.pluginmanager.hasplugin("django"):
        return False
    if names & {"transactional_db", "live_server", "django_db_reset_sequences"}:
        return False
    return marker is None or not _transactional_marker(marker)


def _transactional_marker(marker: pytest.Mark) -> bool:
    """``django_db(transaction=True)`` or ``reset_sequences=True``, read as pytest-django
    reads it (or from the marker's arguments if its helper moves)."""
    try:
        from pytest_django.fixtures import validate_django_db
    except ImportError:
        args = dict(zip(("transaction", "reset_sequences"), marker.args, strict=False))
        args.update(marker.kwargs)
        return bool(args.get("transaction") or args.get("reset_sequences"))
    transaction, reset_sequences, *_ = validate_django_db(marker)
    return bool(transaction or reset_sequences)


@pytest.fixture(autouse=True)
def _journey_db_in_test_transaction(request: pytest.FixtureRequest) -> Iterator[None]:
    """In a test wrapped in a rolled-back transaction (pytest-django's ``db``, Django's
    ``TestCase``), the framework's database work (``run_db``) and Django's async ORM use
    the test's connection, so they see the test's rows and theirs are rolled back with it.

    Without this, ``run_db``'s pool connections cannot see the test's uncommitted rows
    (PostgreSQL), wait on its write lock (SQLite: "database is locked") and commit rows
    that outlive the test.
    """
    if _django_test_case(request):
        pass  # its class and _pre_setup open the transaction on the same connection
    elif _uses_db_fixture(request):
        request.getfixturevalue("db")  # the transaction first, so it ends after us
    else:
        yield
        return
    from ..django.db import share_test_connections

    with share_test_connections():
        yield


@pytest.fixture
def fake_provider_server() -> Iterator[Any]:
    """A started ``FakeProviderServer`` (OpenAI and Anthropic wire formats) on 127.0.0.1."""
    from .fake_providers import FakeProviderServer

    with FakeProviderServer() as server:
        yield server
