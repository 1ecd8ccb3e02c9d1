"""The task that plays a conversation's queued turns, for each engine we support.

- ``play_conversation_task``: a task of Django's tasks framework (``django.tasks`` on
  Django 6, the ``django_tasks`` backport on 5.2); None when neither is installed. Run it
  with the backend of the ``TASKS`` setting, e.g. django-tasks-db's ``manage.py db_worker``.
- ``play_conversation_celery``: a Celery shared task named
  ``agent_runtime_framework.play_conversation`` (None without Celery). A Celery app that
  calls ``autodiscover_tasks()`` finds it here (this module is the app's ``tasks``). It
  acknowledges late and is re-delivered when its worker is lost, so a killed worker's
  conversation is played by another.

Both only call ``queued.play_conversation``; the engine is chosen by ``QUEUE``.
"""

from __future__ import annotations

from typing import Any

from asgiref.sync import async_to_sync

__all__ = ["play_conversation_celery", "play_conversation_task"]


def _play(conversation_id: str) -> int:
    from .queued import play_conversation

    return int(async_to_sync(play_conversation)(conversation_id))


def _tasks_decorator() -> Any:
    import importlib

    for module in ("django.tasks", "django_tasks"):  # Django 6, else the 5.2 backport
        try:
            return importlib.import_module(module).task
        except ImportError:
            continue
    return None


def _celery_decorator() -> Any:
    try:
        from celery import shared_task
    except ImportError:
        return None
    return shared_task


_task = _tasks_decorator()
play_conversation_task: Any = None
if _task is not None:
    # The worker finds a task by its function's dotted path: the name must be the task's.

    @_task()
    def play_conversation_task(conversation_id: str) -> int:
        """Play the conversation's unfinished runs, oldest first; returns how many."""
        return _play(conversation_id)


_shared_task = _celery_decorator()
play_conversation_celery: Any = None
if _shared_task is not None:

    def play_conversation_on_celery(conversation_id: str) -> int:
        """Play the conversation's unfinished runs, oldest first; returns how many."""
        return _play(conversation_id)

    play_conversation_celery = _shared_task(
        name="agent_runtime_framework.play_conversation",
        acks_late=True,
        reject_on_worker_lost=True,
        ignore_result=True,
    )(play_conversation_on_celery)
