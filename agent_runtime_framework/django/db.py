"""Database work from async code, on a small pool of threads.

``sync_to_async`` (and Django's ``a*`` ORM methods) run every ORM call on one shared
thread, so one slow query stalls every conversation. ``run_db`` uses a pool of
``DB_THREADS`` threads instead; each keeps its own connection, and each call is a complete
unit of work (typically one ``transaction.atomic`` block), so no transaction ever spans an
``await`` and none is held across an LLM call.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ParamSpec, TypeVar

from django.db import close_old_connections, connections

__all__ = ["run_db", "shutdown_db_threads"]

P = ParamSpec("P")
R = TypeVar("R")

_pool: ThreadPoolExecutor | None = None
_lock = threading.Lock()


def _get_pool() -> ThreadPoolExecutor:
    global _pool
    if _pool is None:
        with _lock:
            if _pool is None:
                from .conf import app_settings

                _pool = ThreadPoolExecutor(
                    max_workers=int(app_settings().DB_THREADS), thread_name_prefix="art-db"
                )
    return _pool


def _call(fn: Callable[..., R], args: tuple[Any, ...], kwargs: dict[str, Any]) -> R:
    close_old_connections()
    return fn(*args, **kwargs)


async def run_db(fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    """Run ``fn(*args, **kwargs)`` (sync ORM code) on the database thread pool."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_get_pool(), functools.partial(_call, fn, args, kwargs))


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
    from asgiref.sync import SyncToAsync

    SyncToAsync.single_thread_executor.submit(connections.close_all).result()
