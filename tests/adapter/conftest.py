"""Fixtures of the adapter tests: database threads do not outlive a test."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from agent_runtime_framework.django.store import db


def close_db_threads() -> None:
    """Database threads and their connections do not outlive a test."""
    db.shutdown_db_threads()
    gc.collect()


@pytest.fixture(autouse=True)
def _close_db_threads() -> Iterator[None]:
    yield
    close_db_threads()
