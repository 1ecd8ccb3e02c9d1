"""Counters of SQL statements and thread hops, for the benchmarks and the hop tests.

``django.test.utils.CaptureQueriesContext`` sees one thread's connection, and the turn
path runs raw cursors below Django's wrapper on the database thread pool, so these count
at the driver instead:

- statements: every statement a connection executes (PostgreSQL: ``psycopg.Cursor``'s
  ``execute``/``executemany``, patched; SQLite: ``sqlite3``'s trace callback on every
  connection), without transaction control (BEGIN, COMMIT, SAVEPOINT, ...), which the
  drivers issue differently;
- database hops: ``run_db`` calls (the framework's database thread pool);
- thread hops: every ``loop.run_in_executor`` (``run_db`` and asgiref's ``sync_to_async``,
  e.g. Django's sync middleware).
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

__all__ = ["Counters", "counters", "install"]

_CONTROL = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE", "END")


class Counters:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.statements = 0
        self.db_hops = 0
        self.thread_hops = 0
        self.log: list[str] | None = None

    def statement(self, sql: Any) -> None:
        text = sql.decode() if isinstance(sql, bytes) else str(sql)
        if text.lstrip().upper().startswith(_CONTROL):
            return
        with self._lock:
            self.statements += 1
            if self.log is not None:
                self.log.append(text[:160])

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return {
                "statements": self.statements,
                "db_hops": self.db_hops,
                "thread_hops": self.thread_hops,
            }

    def reset(self) -> None:
        with self._lock:
            self.statements = self.db_hops = self.thread_hops = 0


counters = Counters()
_installed = False


def _trace_sqlite(raw: Any) -> None:
    if getattr(raw, "_art_traced", False):
        return
    raw.set_trace_callback(counters.statement)
    try:
        raw._art_traced = True
    except AttributeError:  # sqlite3.Connection has no __dict__
        _traced_ids.add(id(raw))


_traced_ids: set[int] = set()


def _on_connection_created(sender: Any, connection: Any, **kwargs: Any) -> None:
    if connection.vendor == "sqlite" and id(connection.connection) not in _traced_ids:
        _trace_sqlite(connection.connection)


def install() -> Counters:
    """Start counting (idempotent); returns the process-wide counters."""
    global _installed
    if _installed:
        return counters
    _installed = True
    from django.db import connections
    from django.db.backends.signals import connection_created

    from agent_runtime_framework.django.store import db

    # statements: PostgreSQL
    try:
        import psycopg
    except ImportError:  # pragma: no cover
        psycopg = None
    if psycopg is not None:
        execute, executemany = psycopg.Cursor.execute, psycopg.Cursor.executemany

        def counted_execute(self: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
            counters.statement(query if isinstance(query, str | bytes) else repr(query))
            return execute(self, query, *args, **kwargs)

        def counted_executemany(self: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
            counters.statement(query if isinstance(query, str | bytes) else repr(query))
            return executemany(self, query, *args, **kwargs)

        psycopg.Cursor.execute = counted_execute  # type: ignore[method-assign]
        psycopg.Cursor.executemany = counted_executemany  # type: ignore[method-assign]
    # statements: SQLite (new connections, and this thread's open ones)
    connection_created.connect(_on_connection_created, weak=False)
    for conn in connections.all(initialized_only=True):
        if conn.vendor == "sqlite" and conn.connection is not None:
            _trace_sqlite(conn.connection)
    # database hops: each run_db call runs db._call (pool) or db._call_shared (tests)
    call, call_shared = db._call, db._call_shared

    def counted_call(*args: Any, **kwargs: Any) -> Any:
        with counters._lock:
            counters.db_hops += 1
        return call(*args, **kwargs)

    def counted_call_shared(*args: Any, **kwargs: Any) -> Any:
        with counters._lock:
            counters.db_hops += 1
        return call_shared(*args, **kwargs)

    db._call = counted_call  # type: ignore[assignment]
    db._call_shared = counted_call_shared  # type: ignore[assignment]
    # thread hops: every run_in_executor of an asyncio loop
    run_in_executor = asyncio.BaseEventLoop.run_in_executor

    def counted_run_in_executor(self: Any, executor: Any, func: Any, *args: Any) -> Any:
        with counters._lock:
            counters.thread_hops += 1
        return run_in_executor(self, executor, func, *args)

    asyncio.BaseEventLoop.run_in_executor = counted_run_in_executor  # type: ignore[method-assign]
    return counters
