"""Queued turns: a posted message is stored, then played by a worker of an existing engine.

With ``AGENT_RUNTIME_FRAMEWORK["TURNS"] = "queued"`` the API stores the user's message as a
``Run`` row (durable before it answers 202 with the run id) and enqueues the conversation
on ``QUEUE``: Django's tasks framework (``django.tasks``, or the django-tasks backport on
Django 5.2, e.g. with django-tasks-db's ``db_worker``) or Celery. There is no queue, worker
loop or scheduler of our own: the engine delivers "play conversation X", and
``play_conversation`` plays X's unfinished runs, oldest first, while it holds X's claim.

Why the task names a conversation, not a run: order. Whichever worker holds the claim plays
the oldest run, so messages are answered in arrival order, one turn at a time, on any
worker; a task that finds the conversation busy leaves its run to the holder (which looks
again after releasing) and asks the engine to look again when the holder's lease would
expire, in case the holder died.

Crash safety: the worker stores the run's message in the history in the same transaction
as it claims the conversation and marks the run running (``message_seq``), so a retried
run never stores it twice and resumes from the history: tool calls committed before a crash
are history, not re-run. Each started run also asks the engine to look again after the
lease would expire (a delayed task; engines that cannot defer rely on the next post, the
run-status endpoint and ``journey_requeue``), so a SIGKILLed worker's run is played
by another once its lease (renewed every third of ``LEASE_SECONDS`` while alive) runs out.
Consecutive messages are not merged: each is its own turn.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone
from django.utils.module_loading import import_string

from ...agents.context import INPUT_STORED_KEY
from ..models import JourneyMessage, Run, RunStatus
from ..store.db import run_db
from ..store.events import RUN_FAILED, RUN_STARTED, RUN_SUCCEEDED, record_events

__all__ = [
    "INLINE",
    "QUEUED",
    "QueueUnavailable",
    "QueuedTurn",
    "enqueue_conversation",
    "play_conversation",
    "queued_mode",
    "requeue_stalled",
    "run_status",
    "submit_turn",
]

logger = logging.getLogger("agent_runtime_framework.django")

INLINE = "inline"
QUEUED = "queued"
_PENDING = (RunStatus.QUEUED, RunStatus.RUNNING)


class QueueUnavailable(RuntimeError):
    """The engine refused the task; the message is stored and waits (``run_id``)."""

    def __init__(self, run_id: str, error: BaseException) -> None:
        super().__init__(f"The task queue is unavailable ({type(error).__name__}: {error})")
        self.run_id = run_id


def queued_mode() -> bool:
    """Whether ``TURNS`` is ``"queued"`` (the checks framework validates the value)."""
    from ..conf import app_settings

    return str(app_settings().TURNS) == QUEUED


# -- posting ---------------------------------------------------------------------------------


@dataclass(slots=True)
class QueuedTurn:
    """The API's 202 answer: the stored message and where its run stands."""

    conversation_id: str
    run_id: str
    message_id: str
    status: str
    #: Unfinished runs of the conversation ahead of this one.
    position: int
    replayed: bool = False

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        del data["replayed"]
        return data


def _submit_sync(
    cid: uuid.UUID,
    agent_key: str | None,
    caller: Callable[[], tuple[Any, str | None]],
    message: str,
    idempotency_key: str | None,
    create: bool,
    message_id: str | None = None,
) -> QueuedTurn:
    """Resolve the caller, check ownership (creating the conversation when allowed) and
    store the run, in one unit of database work."""
    from ..store.orm import _owner_id
    from .turns import check_access_sync
    from .usage import check_limits_sync

    user, session = caller()
    user_id, session_key = _owner_id(user), session or ""
    check_limits_sync(user, user_id, session_key)  # 429 before anything is stored
    with transaction.atomic():
        check_access_sync(cid, agent_key, user_id, session_key, create, reach_ownerless=False)
        replayed = False
        try:
            with transaction.atomic():
                run = Run.objects.create(
                    conversation_id=cid,
                    message=message,
                    idempotency_key=idempotency_key or "",
                    message_id=uuid.UUID(message_id) if message_id else uuid.uuid4(),
                )
        except IntegrityError:
            # The same Idempotency-Key again: the first request's run, not a second one.
            run = Run.objects.get(conversation_id=cid, idempotency_key=idempotency_key)
            replayed = True
        ahead = Run.objects.filter(conversation_id=cid, status__in=_PENDING, id__lt=run.pk)
        position = ahead.count() if run.status in _PENDING else 0
    return QueuedTurn(
        str(cid), str(run.run_id), str(run.message_id), run.status, position, replayed
    )


async def submit_turn(
    agent_key: str | None,
    conversation_id: uuid.UUID,
    message: str,
    *,
    caller: Callable[[], tuple[Any, str | None]],
    idempotency_key: str | None = None,
    create: bool = False,
    message_id: str | None = None,
) -> QueuedTurn:
    """Store a user message as a queued run and enqueue its conversation.

    Raises ``ConversationNotFound`` for a conversation the caller does not own, and
    ``QueueUnavailable`` (the run stays stored and queued) when the engine refuses.
    """
    queued = await run_db(
        _submit_sync,
        conversation_id,
        agent_key,
        caller,
        message,
        idempotency_key,
        create,
        message_id,
    )
    if queued.status in _PENDING:
        try:
            await run_db(enqueue_conversation, conversation_id)
        except Exception as exc:
            logger.exception("could not enqueue conversation %s", conversation_id)
            raise QueueUnavailable(queued.run_id, exc) from exc
    return queued


# -- engines ---------------------------------------------------------------------------------


def enqueue_conversation(conversation_id: Any, delay: float | None = None) -> bool:
    """Ask the engine to play the conversation's unfinished runs (after ``delay`` seconds).

    Returns False when a delay was asked of an engine that cannot defer (nothing queued).
    Runs on a database thread (the database task backend writes a row).
    """
    from ..conf import app_settings

    engine = str(app_settings().QUEUE)
    cid = str(conversation_id)
    if engine == "tasks":
        from .tasks import play_conversation_task

        if play_conversation_task is None:
            raise RuntimeError(
                "QUEUE is 'tasks' but Django's tasks framework is missing: use Django 6, or "
                'install the backport ("agent-runtime-framework[tasks]")'
            )
        task = play_conversation_task
        if delay is not None:
            if not task.get_backend().supports_defer:
                return False
            task = task.using(run_after=timezone.now() + dt.timedelta(seconds=delay))
        task.enqueue(cid)
        return True
    if engine == "celery":
        from .tasks import play_conversation_celery

        if play_conversation_celery is None:
            raise RuntimeError('QUEUE is "celery" but Celery is not installed')
        play_conversation_celery.apply_async((cid,), countdown=delay)
        return True
    import_string(engine)(cid, delay)
    return True


def _enqueue_quietly(conversation_id: uuid.UUID, delay: float | None = None) -> None:
    """``enqueue_conversation`` for a second look that the run does not depend on (the
    message is stored; the next post, ``run_status`` or ``journey_requeue`` looks too)."""
    try:
        enqueue_conversation(conversation_id, delay)
    except Exception:
        logger.exception("could not enqueue conversation %s", conversation_id)


# -- the worker ------------------------------------------------------------------------------


@dataclass(slots=True)
class _Taken:
    """What the worker's claim found: ``kind`` is "play", "idle", "busy" or "settled"."""

    kind: str
    wait: float = 0.0
    run: dict[str, Any] | None = None
    opened: Any = None


def _answered_after(cid: uuid.UUID, seq: int) -> str | None:
    """The assistant's final reply stored after the run's message, if the turn finished
    (a worker died between the turn's last commit and marking the run done)."""
    replies = JourneyMessage.objects.filter(
        conversation_id=cid, seq__gt=seq, role="assistant", tool_calls__isnull=True
    )
    found = replies.order_by("-seq").values_list("content", flat=True)[:1]
    return next((content or "" for content in found), None)


def _take_sync(cid: uuid.UUID, token: str, lease_seconds: float) -> _Taken:
    """Claim the conversation (whoever owns it), pick its oldest unfinished run, store the
    run's message in the history and mark it running: one transaction. Then read the state
    and history for the turn (as the HTTP turn's first trip does)."""
    from ..store.orm import _release_sync, append_with_claim_sync, claim_any_sync
    from .handoff import intercept_turn_sync
    from .turns import _Opened, _prepare_claimed, journeys_of_sync, where_it_stands

    now = timezone.now()
    with transaction.atomic():
        claimed = claim_any_sync(cid, token, lease_seconds)
        if isinstance(claimed, float):
            return _Taken("busy", wait=claimed)
        if claimed is None:
            return _Taken("idle")  # the conversation is gone
        key, handoff_status, owner_id, session_key = claimed
        found = (
            Run.objects.filter(conversation_id=cid, status__in=_PENDING)
            .order_by("id")
            .values("id", "run_id", "message_id", "message", "message_seq", "status")
            .first()
        )
        if found is None:
            _release_sync(cid, token)
            return _Taken("idle")
        run: dict[str, Any] = dict(found)
        if run["message_seq"] is not None:
            reply = _answered_after(cid, run["message_seq"])
            if reply is not None:
                stands = where_it_stands(key, journeys_of_sync([cid]).get(cid, []))
                turn = {"conversation_id": str(cid), "reply": reply, "agent": key, **stands}
                _finish_sync(run, key, turn, release=(cid, token))
                return _Taken("settled")
        elif handoff_status:
            staff_turn = intercept_turn_sync(cid, key, run["message"], handoff_status)
            if staff_turn is not None:
                _finish_sync(run, key, staff_turn, release=(cid, token))
                return _Taken("settled")
        started: dict[str, Any] = {"message": run["message"], "message_id": str(run["message_id"])}
        if run["message_seq"] is None:
            message = {"role": "user", "content": run["message"]}
            message["message_id"] = str(run["message_id"])  # kept in the row's metadata
            run["message_seq"] = append_with_claim_sync(cid, token, message)
        else:
            started["resumed"] = True
        Run.objects.filter(id=run["id"]).update(
            status=RunStatus.RUNNING,
            message_seq=run["message_seq"],
            started_at=now,
            attempts=F("attempts") + 1,
        )
    (row,) = record_events(
        run["run_id"], [(RUN_STARTED, started)], conversation_id=cid, agent_key=key
    )
    run["first_seq"] = row.seq + 1
    owner = None
    if owner_id is not None:
        owner = get_user_model().objects.filter(pk=owner_id).first()
    opened = _Opened(key, owner, session_key or "")
    try:
        _prepare_claimed(opened, cid, token, lease_seconds)
    except BaseException:
        _release_sync(cid, token)
        raise
    return _Taken("play", run=run, opened=opened)


def _finish_sync(
    run: Mapping[str, Any],
    agent_key: str,
    turn: dict[str, Any],
    *,
    release: tuple[uuid.UUID, str] | None = None,
) -> None:
    """Mark a run done with its turn (and release the claim in the same transaction)."""
    from ..store.orm import _release_sync

    cid = uuid.UUID(str(turn["conversation_id"]))
    with transaction.atomic():
        changed = Run.objects.filter(id=run["id"], status__in=_PENDING).update(
            status=RunStatus.DONE, result=turn, finished_at=timezone.now()
        )
        if release is not None:
            _release_sync(*release)
    if not changed:
        return  # another worker settled it already
    summary = {
        key: turn.get(key)
        for key in ("reply", "journey", "step", "progress", "complete", "stopped_reason")
    }
    summary["message_id"] = str(run["message_id"])
    record_events(
        run["run_id"], [(RUN_SUCCEEDED, summary)], conversation_id=cid, agent_key=agent_key
    )


def _fail_sync(run: Mapping[str, Any], cid: uuid.UUID, agent_key: str, exc: BaseException) -> None:
    error = {"type": type(exc).__name__, "message": str(exc)[:2000]}
    changed = Run.objects.filter(id=run["id"], status__in=_PENDING).update(
        status=RunStatus.FAILED, error=error, finished_at=timezone.now()
    )
    if changed:
        payload = {**error, "message_id": str(run["message_id"])}
        record_events(
            run["run_id"], [(RUN_FAILED, payload)], conversation_id=cid, agent_key=agent_key
        )


async def play_next_run(cid: uuid.UUID) -> _Taken:
    """Play the conversation's oldest unfinished run, if this worker can claim it."""
    from ..conf import app_settings
    from ..store.orm import LeaseLost, _owner_id
    from .turns import _play, _resolve_runtime

    lease = float(app_settings().LEASE_SECONDS)
    taken = await run_db(_take_sync, cid, uuid.uuid4().hex, lease)
    if taken.kind != "play":
        return taken
    run, opened = taken.run, taken.opened
    assert run is not None and opened is not None
    # If this worker dies, the engine looks again once the lease would have expired.
    await run_db(_enqueue_quietly, cid, lease + 1.0)
    runtime = _resolve_runtime(opened.key)
    user_id = _owner_id(opened.user)
    try:
        async with opened.hold(cid):
            turn = await _play(
                runtime,
                opened.key,
                cid,
                run["message"],
                opened.user,
                user_id,
                opened.session_key,
                run["run_id"],
                {INPUT_STORED_KEY: True},
                start_seq=run["first_seq"],
            )
    except LeaseLost:
        # This worker stalled past its lease and another took the run over.
        logger.warning("run %s: lease lost; another worker plays it", run["run_id"])
        return _Taken("settled")
    except Exception as exc:
        logger.exception("queued run %s failed", run["run_id"])
        await run_db(_fail_sync, run, cid, opened.key, exc)
        return _Taken("settled")
    await run_db(_finish_sync, run, opened.key, turn.to_dict())
    return taken


async def play_conversation(conversation_id: Any) -> int:
    """The task body: play the conversation's unfinished runs in order; returns how many.

    A busy conversation is left to the worker holding it (it looks again after releasing);
    the engine is asked to look again when that worker's lease would expire.
    """
    from ..store.orm import conversation_uuid

    cid = conversation_uuid(conversation_id)
    played = 0
    while True:
        taken = await play_next_run(cid)
        if taken.kind == "idle":
            return played
        if taken.kind == "busy":
            await run_db(_enqueue_quietly, cid, taken.wait + 1.0)
            return played
        played += 1


# -- status and recovery ---------------------------------------------------------------------


def run_status(conversation_id: uuid.UUID, run_id: uuid.UUID) -> dict[str, Any] | None:
    """A run as the API shows it (None: no such run in this conversation). A run whose
    conversation nobody holds although it waits is handed to the engine again."""
    row = (
        Run.objects.filter(conversation_id=conversation_id, run_id=run_id)
        .values(
            "id",
            "run_id",
            "message_id",
            "status",
            "attempts",
            "result",
            "error",
            "created_at",
            "started_at",
            "finished_at",
        )
        .first()
    )
    if row is None:
        return None
    position = 0
    if row["status"] in _PENDING:
        position = Run.objects.filter(
            conversation_id=conversation_id, status__in=_PENDING, id__lt=row["id"]
        ).count()
        _kick_if_stalled(conversation_id)
    return {
        "conversation_id": str(conversation_id),
        "run_id": str(row["run_id"]),
        "message_id": str(row["message_id"]),
        "status": row["status"],
        "position": position,
        "attempts": row["attempts"],
        "turn": row["result"] if row["status"] == RunStatus.DONE else None,
        "error": row["error"],
        "created_at": row["created_at"].isoformat(),
        "started_at": row["started_at"].isoformat() if row["started_at"] else None,
        "finished_at": row["finished_at"].isoformat() if row["finished_at"] else None,
    }


#: A queued run nobody started for this long, on a conversation nobody holds, is stalled.
STALLED_AFTER_SECONDS = 5.0


def _stalled(now: dt.datetime) -> Q:
    free = (
        Q(conversation__lease_token="")
        | Q(conversation__lease_expires_at__isnull=True)
        | Q(conversation__lease_expires_at__lt=now)
    )
    waited = now - dt.timedelta(seconds=STALLED_AFTER_SECONDS)
    return free & Q(status__in=_PENDING, created_at__lt=waited)


def _kick_if_stalled(conversation_id: uuid.UUID) -> None:
    if Run.objects.filter(_stalled(timezone.now()), conversation_id=conversation_id).exists():
        _enqueue_quietly(conversation_id)


def requeue_stalled() -> int:
    """Hand every conversation with stalled runs to the engine again; returns how many
    (``manage.py journey_requeue``, e.g. from cron, for engines that cannot defer)."""
    found = (
        Run.objects.filter(_stalled(timezone.now()))
        .values_list("conversation_id", flat=True)
        .distinct()
    )
    conversations = list(found)
    for cid in conversations:
        enqueue_conversation(cid)
    return len(conversations)
