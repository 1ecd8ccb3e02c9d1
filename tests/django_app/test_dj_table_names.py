"""Our tables never collide with django_agent_runtime's.

django_agent_runtime (label ``django_agent_runtime``) creates ``agent_runtime_conversation``
and owns every ``agent_runtime_*`` / ``agent_step_*`` name. A project with both apps installed
is migrated on a fresh database (a temporary SQLite file, or a throwaway PostgreSQL database
when ``DATABASE_URL`` points at PostgreSQL) in a subprocess, with ``tests/standin_dar`` (its
label and table names) standing in for the real app.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse, urlunparse

import pytest

from agent_runtime_framework.django.dburl import database_from_url

ROOT = Path(__file__).resolve().parents[2]
THEIR_PREFIXES = ("agent_runtime_", "agent_step_")
#: django_agent_runtime's tables the stand-in declares (from django_agent_runtime 0.8).
THEIR_TABLES = {
    "agent_runtime_conversation",
    "agent_runtime_run",
    "agent_runtime_event",
    "agent_runtime_checkpoint",
    "agent_runtime_message",
    "agent_runtime_persistence_conversation",
    "agent_runtime_memory",
    "agent_runtime_preferences",
    "agent_runtime_fact",
    "agent_runtime_summary",
    "agent_runtime_embedding",
    "agent_runtime_audit_entry",
    "agent_runtime_error_record",
    "agent_runtime_performance_metric",
    "agent_step_checkpoint",
    "agent_step_event",
}
OUR_TABLES = {
    "arf_conversation", "arf_journey", "arf_message", "arf_event", "arf_approval", "arf_run",
    "arf_funnel_count",
    "arf_usage_count",
}  # fmt: skip


@pytest.fixture
def standin_db(tmp_path: Path) -> Iterator[str]:
    """A database URL with nothing in it: PostgreSQL if the suite runs there, else SQLite."""
    url = os.environ.get("DATABASE_URL", "")
    config = database_from_url(url) if url else {"ENGINE": "sqlite3"}
    if not config["ENGINE"].endswith("postgresql"):
        yield f"sqlite:///{tmp_path / 'standin.sqlite3'}"
        return
    import psycopg

    name = f"arf_standin_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    params = {
        k: v
        for k, v in {
            "user": config["USER"],
            "password": config["PASSWORD"],
            "host": config["HOST"],
            "port": config["PORT"],
        }.items()
        if v
    }

    def admin() -> psycopg.Connection[Any]:
        # The maintenance database, as Django's test runner uses; else the URL's own.
        try:
            return psycopg.connect(dbname="postgres", **params, autocommit=True)
        except psycopg.OperationalError:
            return psycopg.connect(dbname=config["NAME"], **params, autocommit=True)

    with admin() as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    try:
        yield urlunparse(urlparse(url)._replace(path=f"/{name}"))
    finally:
        with admin() as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _run(db_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.standin_dar.settings",
        "ARF_STANDIN_DATABASE_URL": db_url,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )


def _migrate(db_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return _run(db_url, "-m", "django", "migrate", "--noinput", *args)


def _probe(db_url: str, command: str) -> dict[str, Any]:
    result = _run(db_url, "-m", "tests.standin_dar.probe", command)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def _assert_apart(tables: dict[str, Any]) -> None:
    """Our tables are arf_*, exist, and share no name (table, index, sequence) with theirs."""
    ours, theirs, present = set(tables["ours"]), set(tables["standin"]), set(tables["all"])
    assert ours == OUR_TABLES
    assert theirs == THEIR_TABLES
    assert ours | theirs <= present
    assert not ours & theirs
    assert not [t for t in ours if t.startswith(THEIR_PREFIXES)]
    # Nothing else in the database took one of their names.
    assert {t for t in present if t.startswith(THEIR_PREFIXES)} == theirs
    for table, details in tables["details"].items():
        names = [*details["names"], *details["sequences"]]
        assert not [n for n in names if n.startswith(THEIR_PREFIXES)], table
        for sql in details.get("sql", []):
            assert "agent_runtime_" not in sql, sql


def test_both_apps_migrate_on_a_fresh_database(standin_db: str) -> None:
    result = _migrate(standin_db)
    assert result.returncode == 0, result.stderr
    _assert_apart(_probe(standin_db, "tables"))


def test_their_app_migrated_first_then_ours(standin_db: str) -> None:
    """A project that already runs django_agent_runtime adds this app."""
    first = _migrate(standin_db, "django_agent_runtime")
    assert first.returncode == 0, first.stderr
    result = _migrate(standin_db)
    assert result.returncode == 0, result.stderr
    _assert_apart(_probe(standin_db, "tables"))


def test_a_database_from_the_old_names_is_renamed_and_then_their_app_migrates(
    standin_db: str,
) -> None:
    """The first 0001's tables (agent_runtime_conversation, ...) move to arf_* with their rows,
    indexes and sequences; django_agent_runtime's migrations then find their names free."""
    made = _probe(standin_db, "make-old")
    assert made["old_tables"] == [
        "agent_runtime_conversation",
        "agent_runtime_journey",
        "agent_runtime_journeymessage",
        "agent_runtime_journeyevent",
    ]
    result = _migrate(standin_db)
    assert result.returncode == 0, result.stderr
    tables = _probe(standin_db, "tables")
    _assert_apart(tables)
    assert not {
        "agent_runtime_journey",
        "agent_runtime_journeymessage",
        "agent_runtime_journeyevent",
    } & set(tables["all"])
    data = _probe(standin_db, "check-data")
    assert data == {
        "agent_key": "onboarding",
        "next_seq": 1,
        "journey_state": {"name": "Ann"},
        "journey_step": "email",
        "message": "Ann",
        "event_run_id": "6f1c1f3e-0000-4000-8000-000000000001",
        "journeys": 2,
        "messages": [0, 1],
        "events": 2,
    }


def test_the_rename_leaves_a_table_that_is_not_ours_alone(standin_db: str) -> None:
    """0003 renames our old agent_runtime_journey (it has state_version) and never touches an
    agent_runtime_conversation without our columns (django_agent_runtime's)."""
    report = _probe(standin_db, "guard")
    assert "agent_runtime_conversation" in report["all"]
    assert "arf_conversation" not in report["all"]
    assert report["their_conversations"] == ["theirs"]
    assert "agent_runtime_journey" not in report["all"]
    assert report["arf_journeys"] == [["ours", 3]]
