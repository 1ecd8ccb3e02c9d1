"""pytest plugin (entry point ``agent_runtime_framework``): fixtures for journey tests,
conversation test files, ``--journey-model``, ``--journey-coverage``."""

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
    from ..django.store.db import share_test_connections

    with share_test_connections():
        yield


@pytest.fixture
def fake_provider_server() -> Iterator[Any]:
    """A started ``FakeProviderServer`` (OpenAI and Anthropic wire formats) on 127.0.0.1."""
    from .fake_providers import FakeProviderServer

    with FakeProviderServer() as server:
        yield server


# -- async tests as written, conversation files, journey coverage ---------------------------


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("agent-runtime-framework", "journeys (agent-runtime-framework)")
    group.addoption(
        "--journey-model",
        dest="journey_model",
        choices=("scripted", "standin", "real"),
        default="scripted",
        help="the model conversation files play against: 'scripted' (the file's tool "
        "calls, default), 'standin' (the offline stand-in) or 'real' (the configured "
        "provider; skipped without one)",
    )
    group.addoption(
        "--journey-coverage",
        dest="journey_coverage",
        action="store_true",
        default=False,
        help="report which steps, transitions and tools of each journey the tests exercised",
    )
    group.addoption(
        "--journey-coverage-only",
        dest="journey_coverage_only",
        action="append",
        default=[],
        metavar="TEXT",
        help="report only journeys whose key or class path contains TEXT (repeatable)",
    )


def _asyncio_mode_configured(config: pytest.Config) -> bool:
    """Did the user choose pytest-asyncio's mode (command line, ini, ``-o``)?"""
    if config.getoption("asyncio_mode", None) is not None:
        return True
    raw = getattr(config, "_inicfg", None)  # pytest >= 9 (``inicfg`` is deprecated there)
    if raw is None:
        raw = getattr(config, "inicfg", {})
    if "asyncio_mode" in raw:
        return True
    overrides = getattr(config.option, "override_ini", None) or []
    return any(str(item).split("=", 1)[0].strip() == "asyncio_mode" for item in overrides)


def pytest_configure(config: pytest.Config) -> None:
    # The README's ``async def test_...`` run as written: pytest-asyncio's "auto" mode,
    # unless the project chose a mode itself (asyncio_mode = "strict" opts out).
    if config.pluginmanager.hasplugin("asyncio") and not _asyncio_mode_configured(config):
        config.option.asyncio_mode = "auto"
    if config.getoption("journey_coverage", False):
        from .coverage import JourneyCoverage, install

        coverage = JourneyCoverage()
        config.stash[_COVERAGE] = coverage
        config.stash[_COVERAGE_UNDO] = install(coverage)


def pytest_unconfigure(config: pytest.Config) -> None:
    undo = config.stash.get(_COVERAGE_UNDO, None)
    if undo is not None:
        undo()
        del config.stash[_COVERAGE_UNDO]


def pytest_collect_file(file_path: Any, parent: pytest.Collector) -> pytest.Collector | None:
    """``conversation_*.yaml|yml|json`` and ``*.conversation.*``: one test per conversation."""
    from .conversation_items import ConversationFile, is_conversation_file

    if is_conversation_file(file_path):
        file: pytest.Collector = ConversationFile.from_parent(parent, path=file_path)
        return file
    return None


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    coverage = config.stash.get(_COVERAGE, None)
    if coverage is None:
        return
    from .coverage import summary_lines

    terminalreporter.write_sep("=", "journey coverage")
    for line in summary_lines(coverage, config.getoption("journey_coverage_only", [])):
        terminalreporter.write_line(line)


@pytest.fixture
def journey_model(request: pytest.FixtureRequest) -> str:
    """The ``--journey-model`` of the session: "scripted", "standin" or "real"."""
    return str(request.config.getoption("journey_model", "scripted") or "scripted")


@pytest.fixture
def play_conversation(journey_model: str) -> Callable[..., Any]:
    """``await play_conversation(conversation_or_dict)``: play it with ``--journey-model``
    (skipped when the conversation's ``models`` leave that model out)."""
    from .conversations import Conversation

    async def play(conversation: Any, model: Any = None) -> Any:
        if not isinstance(conversation, Conversation):
            conversation = Conversation.from_dict(conversation)
        chosen = journey_model if model is None else model
        if isinstance(chosen, str) and not conversation.runs_with(chosen):
            pytest.skip(f"conversation {conversation.name!r} is not for model {chosen!r}")
        return await conversation.play(chosen)

    return play


_COVERAGE = pytest.StashKey[Any]()
_COVERAGE_UNDO = pytest.StashKey[Callable[[], None]]()
