"""Database work from async code, on a small pool of threads.

``sync_to_async`` (and Django's ``a*`` ORM methods) run every ORM call on one shared
thread, so one slow query stalls every conversation. ``run_db`` uses a pool of
``DB_THREADS`` threads instead; each keeps its own connection, and each call is a complete
unit of work (typically one ``transaction.atomic`` block), so no transaction ever spans an
``await`` and none is held across an LLM call.

In a test wrapped in a transaction (pytest-django's ``db`` fixture, Django's ``TestCase``)
other connections cannot see the test's rows (PostgreSQL) or wait on its lock (SQLite), so
``share_test_connections`` (turned on by the pytest plugin) routes ``run_db`` to the test's
own connections instead; see its docstring.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ParamSpec, TypeVar

from asgiref.sync import SyncToAsync, sync_to_async
from django.db import close_old_connections, connections

__all__ = [
    "run_db",
    "share_test_connections",
    "sharing_test_connections",
    "shutdown_db_threads",
]

P = ParamSpec("P")
R = TypeVar("R")

_pool: ThreadPoolExecutor | None = None
_lock = threading.Lock()
#: The test's connections by alias while ``share_test_connections`` is on, else None.
#: ``run_db`` reads only this global to choose its path, so the pool path costs nothing more.
_shared: dict[str, Any] | None = None


def _get_pool() -> ThreadPoolExecutor:
    global _pool
    if _pool is None:
        with _lock:
            if _pool is None:
                from ..conf import app_settings

                _pool = ThreadPoolExecutor(
                    max_workers=int(app_settings().DB_THREADS), thread_name_prefix="art-db"
                )
    return _pool


def _call(fn: Callable[..., R], args: tuple[Any, ...], kwargs: dict[str, Any]) -> R:
    close_old_connections()
    return fn(*args, **kwargs)


async def run_db(fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    """Run ``fn(*args, **kwargs)`` (sync ORM code) on the database thread pool.

    Under ``share_test_connections`` it runs on asgiref's thread-sensitive thread with the
    test's connections instead, so it works inside the test's transaction.
    """
    if _shared is not None:
        return await sync_to_async(_call_shared, thread_sensitive=True)(fn, args, kwargs)
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_get_pool(), functools.partial(_call, fn, args, kwargs))


# -- tests: database work inside the test's transaction ------------------------------------


def sharing_test_connections() -> bool:
    """True while ``run_db`` works on a test's connections (``share_test_connections``)."""
    return _shared is not None


@contextlib.contextmanager
def share_test_connections(aliases: Iterable[str] | None = None) -> Iterator[bool]:
    """Make ``run_db`` and Django's async ORM use this thread's connections until exit.

    For tests wrapped in a transaction that is rolled back (pytest-django's ``db`` fixture,
    Django's ``TestCase``): enter it on the test's thread, inside that transaction. Work on
    other connections would not see the test's rows (PostgreSQL) or would wait on its write
    lock (SQLite), and its own rows would outlive the test. While on:

    - ``run_db`` runs on asgiref's thread-sensitive thread (the test's thread under
      ``async_to_sync``, asgiref's single thread under an event loop such as
      pytest-asyncio's) with these connections, one call at a time, and without
      ``close_old_connections`` (which would close a connection inside a transaction);
      each ``transaction.atomic`` in it becomes a savepoint of the test's transaction;
    - asgiref's single thread, where Django's ``a*`` ORM methods run in an async test
      (the event loop's own thread has separate connections), uses them too.

    ``aliases`` defaults to those in a transaction on this thread; with none, nothing
    changes and the context yields False.
    """
    global _shared
    if aliases is None:
        aliases = [c.alias for c in connections.all(initialized_only=True) if c.in_atomic_block]
    shared = {alias: connections[alias] for alias in aliases}
    if not shared:
        yield False
        return
    previous = _shared
    single = SyncToAsync.single_thread_executor
    replaced = single.submit(_install, shared).result()
    _shared = shared
    try:
        yield True
    finally:
        _shared = previous
        single.submit(_restore, replaced).result()


def _install(shared: dict[str, Any]) -> list[tuple[str, Any]]:
    """Put ``shared`` in this thread's ``connections``; return what it replaced."""
    replaced = []
    for alias, conn in shared.items():
        current = connections[alias]
        if current is not conn:
            conn.inc_thread_sharing()
            connections[alias] = conn
            replaced.append((alias, current))
    return replaced


def _restore(replaced: list[tuple[str, Any]]) -> None:
    for alias, previous in replaced:
        connections[alias].dec_thread_sharing()
        connections[alias] = previous


def _call_shared(fn: Callable[..., R], args: tuple[Any, ...], kwargs: dict[str, Any]) -> R:
    """``fn`` on the shared connections (already this thread's, unless in another thread
    such as a ``ThreadSensitiveContext``'s, where they are lent for the call)."""
    replaced = _install(_shared) if _shared is not None else []
    try:
        return fn(*args, **kwargs)
    finally:
        _restore(replaced)


def shutdown_db_threads() -> None:
    """Close every pool thread's connection, then stop the pool (tests, shutdown).

    The pool is recreated on next use. Connections must be closed by the threads that own
    them: one task per thread, held together by a barrier so each thread takes one. Also
    closes the connection of asgiref's shared thread (used by Django's ``a*`` ORM methods).
    PostgreSQL refuses to drop a database while any of these is open.
    """
    global _pool
    with _lock:
        pool, _pool = _pool, None
    if pool is not None:
        size = pool._max_workers
        barrier = threading.Barrier(size)

        def close() -> None:
            connections.close_all()
            with contextlib.suppress(threading.BrokenBarrierError):
                barrier.wait(timeout=5)

        for future in [pool.submit(close) for _ in range(size)]:
            future.result()
        pool.shutdown(wait=True)
    SyncToAsync.single_thread_executor.submit(_close_own_connections).result()


def _close_own_connections() -> None:
    """``connections.close_all()``, except connections lent by ``share_test_connections``
    (closing one would end the test's transaction under it)."""
    shared = _shared or {}
    for conn in connections.all(initialized_only=True):
        if shared.get(conn.alias) is not conn:
            conn.close()
