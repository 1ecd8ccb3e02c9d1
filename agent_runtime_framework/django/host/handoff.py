"""People in the loop: hand a conversation to staff and back.

The state lives on the ``Conversation`` row (``handoff_status``, ``handled_by``,
``handoff_reason``, ``handoff_source``, ``handoff_requested_at``). Every change is one
conditional ``UPDATE``, so two members of staff taking over at once have exactly one
winner, and a repeated request changes nothing. While the conversation is with a person,
``run_turn`` stores the user's messages and answers with ``HANDOFF_REPLY`` without calling
the model (``intercept_turn_sync``); staff replies are assistant messages with
``metadata["staff"]``, so the model reads them when the journey resumes at its step.

Each change is an event (``handoff.requested``, ``handoff.taken``, ``staff.message``,
``handoff.returned``, and ``handoff.user_message`` for what the user says meanwhile) and a
signal of ``signals.py``. Who may take over and reply: users with the permission
``agent_runtime.handle_conversation``.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from django.db import transaction
from django.db.models import Case, F, Q, QuerySet, Value, When
from django.db.models.functions import Coalesce
from django.dispatch import Signal
from django.utils import timezone

from ..models import Conversation, HandoffStatus
from ..signals import handoff_requested, handoff_returned, handoff_taken, staff_replied
from ..store.events import record_event

__all__ = [
    "HANDLE_PERMISSION",
    "HANDOFF_REQUESTED",
    "HANDOFF_RETURNED",
    "HANDOFF_TAKEN",
    "HANDOFF_USER_MESSAGE",
    "STAFF_MESSAGE",
    "AlreadyTaken",
    "HandoffError",
    "NotPermitted",
    "NotWithStaff",
    "can_handle",
    "display_name",
    "escalation_metadata",
    "hand_back",
    "handoff_queue",
    "intercept_turn_sync",
    "request_handoff",
    "staff_reply",
    "take_over",
]

#: The permission that lets a user take over, answer and hand back conversations.
HANDLE_PERMISSION = "agent_runtime.handle_conversation"

HANDOFF_REQUESTED = "handoff.requested"
HANDOFF_TAKEN = "handoff.taken"
STAFF_MESSAGE = "staff.message"
HANDOFF_RETURNED = "handoff.returned"
HANDOFF_USER_MESSAGE = "handoff.user_message"

_WITH_PEOPLE = (HandoffStatus.WAITING, HandoffStatus.STAFF)


class HandoffError(Exception):
    """A handoff action that does not fit the conversation's state; ``code`` names why."""

    code = "handoff_error"


class NotWithStaff(HandoffError):
    """Replying to (or handing back) a conversation that is not with this member of staff."""

    code = "not_with_staff"


class AlreadyTaken(HandoffError):
    """Another member of staff took the conversation over first."""

    code = "already_taken"

    def __init__(self, by: str) -> None:
        super().__init__(f"{by} is already handling this conversation")
        self.by = by


class NotPermitted(PermissionError):
    """The user lacks ``agent_runtime.handle_conversation``."""


def can_handle(user: Any) -> bool:
    """Whether ``user`` may take over and answer conversations."""
    return bool(
        user is not None
        and getattr(user, "is_active", False)
        and getattr(user, "is_authenticated", False)
        and user.has_perm(HANDLE_PERMISSION)
    )


def display_name(user: Any) -> str:
    """How staff are shown to the user: full name, else username."""
    if user is None:
        return ""
    full = user.get_full_name() if hasattr(user, "get_full_name") else ""
    return str(full or user.get_username())


def escalation_metadata() -> dict[str, Any]:
    """What the host lends each journey turn (people in the loop): the escalation tool
    with the configured reply, ``OFFER_ESCALATION`` as the default of journeys that do not
    say, and the database gate of tools that need approval (``approvals.py``)."""
    from ...agents.people import ESCALATION_DEFAULT_KEY, ESCALATION_KEY, Escalation
    from ..conf import app_settings
    from .approvals import gate_metadata

    settings = app_settings()
    return {
        ESCALATION_KEY: Escalation(str(settings.HANDOFF_REPLY)),
        ESCALATION_DEFAULT_KEY: bool(settings.OFFER_ESCALATION),
        **gate_metadata(),
    }


def _require(user: Any) -> None:
    if not can_handle(user):
        raise NotPermitted(f"{HANDLE_PERMISSION} is required")


def _cid(conversation_id: Any) -> uuid.UUID:
    from ..store.orm import conversation_uuid

    return conversation_uuid(conversation_id)


def _emit(
    signal: Signal,
    cid: uuid.UUID,
    event_type: str,
    payload: Mapping[str, Any],
    agent_key: str = "",
    **kwargs: Any,
) -> None:
    """The action's event (its own run id) and its signal, after the change committed."""
    record_event(uuid.uuid4(), event_type, payload, conversation_id=cid, agent_key=agent_key)
    signal.send_robust(sender=Conversation, conversation_id=cid, **kwargs)


def _agent_key(cid: uuid.UUID) -> str:
    return str(Conversation.objects.filter(id=cid).values_list("agent_key", flat=True).first())


def request_handoff(conversation_id: Any, reason: str = "", *, source: str = "user") -> bool:
    """Ask for a person. Idempotent: False (and no event) when already with people."""
    cid = _cid(conversation_id)
    reason = (reason or "").strip()[:500]
    updated = Conversation.objects.filter(id=cid, handoff_status=HandoffStatus.ASSISTANT).update(
        handoff_status=HandoffStatus.WAITING,
        handoff_reason=reason,
        handoff_source=source,
        handoff_requested_at=timezone.now(),
        handled_by=None,
    )
    if not updated:
        return False
    _emit(
        handoff_requested,
        cid,
        HANDOFF_REQUESTED,
        {"reason": reason, "source": source},
        _agent_key(cid),
        reason=reason,
        source=source,
    )
    return True


def take_over(conversation_id: Any, user: Any) -> bool:
    """Take the conversation (waiting, or still with the assistant) for ``user``.

    One conditional ``UPDATE``: of two staff at once, one wins and the other gets
    ``AlreadyTaken``. Taking one's own conversation again is a no-op (False).
    """
    _require(user)
    cid = _cid(conversation_id)
    updated = Conversation.objects.filter(id=cid, handled_by__isnull=True).update(
        handoff_status=HandoffStatus.STAFF,
        handled_by=user,
        handoff_requested_at=Coalesce(F("handoff_requested_at"), Value(timezone.now())),
        handoff_source=Case(
            When(handoff_status=HandoffStatus.ASSISTANT, then=Value("staff")),
            default=F("handoff_source"),
        ),
    )
    if not updated:
        row = Conversation.objects.filter(id=cid).select_related("handled_by").first()
        if row is None:
            raise Conversation.DoesNotExist(f"Conversation {cid} not found")
        if row.handled_by_id == user.pk:
            return False
        raise AlreadyTaken(display_name(row.handled_by))
    name = display_name(user)
    _emit(handoff_taken, cid, HANDOFF_TAKEN, {"staff": name}, _agent_key(cid), user=user)
    return True


def _append(cid: uuid.UUID, guard: Q, message: dict[str, Any]) -> int | None:
    """Append one message when the conversation row matches ``guard``; its seq or None.

    The ``UPDATE`` of ``next_seq`` is the guard and the sequence reservation at once; the
    row is written by the one write path of messages (``stores``), which redacts it when
    ``REDACT_MESSAGES`` is on, as it does the model's and the user's.
    """
    from ..store.orm import _insert_messages

    with transaction.atomic():
        updated = Conversation.objects.filter(guard, id=cid).update(
            next_seq=F("next_seq") + 1, updated_at=timezone.now()
        )
        if not updated:
            return None
        seq = int(Conversation.objects.filter(id=cid).values_list("next_seq", flat=True).get() - 1)
        _insert_messages(cid, seq, [message])
    return seq


def staff_reply(conversation_id: Any, user: Any, content: str) -> int:
    """Store ``user``'s reply as an assistant message and tell the user live.

    Raises ``NotWithStaff`` unless ``user`` handles the conversation; returns the seq.
    """
    _require(user)
    from ..conf import app_settings

    text = (content or "").strip()
    if not text:
        raise ValueError("The reply is empty")
    limit = int(app_settings().MAX_MESSAGE_CHARS)
    if len(text) > limit:
        raise ValueError(f"The reply is longer than {limit} characters")
    cid = _cid(conversation_id)
    name = display_name(user)
    seq = _append(
        cid,
        Q(handoff_status=HandoffStatus.STAFF, handled_by=user),
        # Keys beyond the message's own are kept in the row's metadata.
        {"role": "assistant", "content": text, "staff": {"id": user.pk, "name": name}},
    )
    if seq is None:
        raise NotWithStaff("This conversation is not with you: take it over first")
    _emit(
        staff_replied,
        cid,
        STAFF_MESSAGE,
        {"content": text, "staff": name, "seq": seq},
        _agent_key(cid),
        user=user,
        content=text,
        message_seq=seq,
    )
    return seq


def hand_back(conversation_id: Any, user: Any) -> None:
    """Give the conversation back to the assistant; the journey resumes at its step.

    Allowed to the member of staff handling it (anyone with the permission while it only
    waits; superusers always). Raises ``NotWithStaff`` / ``AlreadyTaken`` otherwise.
    """
    _require(user)
    cid = _cid(conversation_id)
    mine = Q(handled_by__isnull=True) | Q(handled_by=user)
    if getattr(user, "is_superuser", False):
        mine = Q()
    updated = Conversation.objects.filter(mine, id=cid, handoff_status__in=_WITH_PEOPLE).update(
        handoff_status=HandoffStatus.ASSISTANT,
        handled_by=None,
        handoff_reason="",
        handoff_source="",
        handoff_requested_at=None,
    )
    if not updated:
        row = Conversation.objects.filter(id=cid).select_related("handled_by").first()
        if row is not None and row.handoff_status in _WITH_PEOPLE and row.handled_by_id:
            raise AlreadyTaken(display_name(row.handled_by))
        raise NotWithStaff("This conversation is not with a person")
    name = display_name(user)
    _emit(handoff_returned, cid, HANDOFF_RETURNED, {"staff": name}, _agent_key(cid), user=user)


def handoff_queue() -> QuerySet[Conversation]:
    """Conversations with people: waiting ones first (oldest first), then taken ones."""
    return (
        Conversation.objects.filter(handoff_status__in=_WITH_PEOPLE)
        .select_related("handled_by", "owner")
        .order_by("-handoff_status", "handoff_requested_at")
    )


def intercept_turn_sync(
    cid: uuid.UUID, agent_key: str, message: str, status: str | None = None
) -> dict[str, Any] | None:
    """The turn's answer while the conversation is with people, else None (the model runs).

    Stores the user's message (no model call) and records ``handoff.user_message`` so the
    staff console shows it; the reply is ``HANDOFF_REPLY``. Runs on a database thread.
    """
    if not message:
        return None
    if status is None:  # not read by the claim (the conversation was busy): read it now
        status = (
            Conversation.objects.filter(id=cid).values_list("handoff_status", flat=True).first()
        )
    if not status:
        return None  # the usual case: the model answers
    seq = _append(
        cid,
        Q(handoff_status__in=_WITH_PEOPLE),
        {"role": "user", "content": message, "handoff": True},
    )
    if seq is None:
        return None
    from ..conf import app_settings
    from .turns import journeys_of_sync, where_it_stands

    reply = str(app_settings().HANDOFF_REPLY)
    record_event(
        uuid.uuid4(),
        HANDOFF_USER_MESSAGE,
        {"content": message, "seq": seq},
        conversation_id=cid,
        agent_key=agent_key,
    )
    stands = where_it_stands(agent_key, journeys_of_sync([cid]).get(cid, []))
    return {
        "conversation_id": str(cid),
        "reply": reply,
        "agent": agent_key,
        "journey": stands["journey"],
        "step": stands["step"],
        "progress": stands["progress"],
        "state": stands["state"],
        "complete": False,
        "stopped_reason": "with_staff",
        "usage": {},
    }
