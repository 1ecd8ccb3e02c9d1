"""Tools that need approval, the Django half: held calls in ``arf_approval``.

``DjangoApprovalGate`` is the ``ApprovalGate`` (agents/approvals.py) every journey turn of
the host gets. A held call is a row (``pending``); a decision is one conditional ``UPDATE``
``pending -> approved|rejected``, so of two approvals exactly one wins and the other gets
``AlreadyDecided``. The decided call is then applied inside the conversation's claim
(``apply_decided``, or the next turn): an approved call runs and its ``approval.executed``
event is written in the same transaction as the state and the messages with its result;
a call whose event exists is never run again, so retries, concurrent workers and a crash
between approval and execution run it exactly once.

Events (and signals of ``signals.py``): ``approval.requested``, ``approval.approved``,
``approval.rejected``, ``approval.executed``.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.db.models import QuerySet
from django.utils import timezone

from ...agents.approvals import APPROVER_STAFF, ApprovalGate, PendingCall
from ..models import Approval, ApprovalStatus, Conversation, JourneyEvent
from ..signals import approval_decided, approval_executed, approval_requested
from ..store.db import run_db
from ..store.events import JourneyEventLog, record_event

__all__ = [
    "APPROVAL_APPROVED",
    "APPROVAL_EXECUTED",
    "APPROVAL_REJECTED",
    "APPROVAL_REQUESTED",
    "AlreadyDecided",
    "ApprovalError",
    "DjangoApprovalGate",
    "NotAllowedToDecide",
    "apply_decided",
    "approval_dict",
    "approvals_of",
    "decide",
    "decide_and_apply",
    "gate_metadata",
    "pending_approvals",
]

APPROVAL_REQUESTED = "approval.requested"
APPROVAL_APPROVED = "approval.approved"
APPROVAL_REJECTED = "approval.rejected"
APPROVAL_EXECUTED = "approval.executed"


class ApprovalError(Exception):
    """A decision that does not fit the approval; ``code`` names why."""

    code = "approval_error"


class AlreadyDecided(ApprovalError):
    """The approval was approved or rejected already (by someone else, or before)."""

    code = "already_decided"

    def __init__(self, status: str) -> None:
        super().__init__(f"This approval is already {status}")
        self.status = status


class NotAllowedToDecide(ApprovalError):
    """A user deciding an approval that only staff may decide."""

    code = "staff_only"


def _call(row: Approval) -> PendingCall:
    return PendingCall(
        id=str(row.id),
        conversation_id=str(row.conversation_id),
        journey=row.agent_key,
        tool=row.tool,
        arguments=dict(row.arguments or {}),
        approver=row.approver,
        summary=row.summary,
        status=row.status,
        decided_by=row.decided_by,
        result=row.result,
        reported=row.reported_at is not None,
    )


def approval_dict(row: Approval) -> dict[str, Any]:
    """An approval as the API and the admin show it."""
    return {
        "id": str(row.id),
        "journey": row.agent_key,
        "tool": row.tool,
        "arguments": row.arguments,
        "approver": row.approver,
        "summary": row.summary,
        "status": row.status,
        "decided_by": row.decided_by or None,
        "result": row.result,
        "created_at": row.created_at.isoformat(),
        "decided_at": row.decided_at.isoformat() if row.decided_at else None,
    }


def _record(cid: uuid.UUID, agent_key: str, event_type: str, payload: dict[str, Any]) -> None:
    record_event(uuid.uuid4(), event_type, payload, conversation_id=cid, agent_key=agent_key)


def _hold_sync(call: PendingCall) -> None:
    cid = uuid.UUID(call.conversation_id)
    Approval.objects.create(
        id=uuid.UUID(call.id),
        conversation_id=cid,
        agent_key=call.journey,
        tool=call.tool,
        arguments=call.arguments,
        approver=call.approver,
        summary=call.summary,
    )
    payload = {
        "approval_id": call.id,
        "tool": call.tool,
        "approver": call.approver,
        "summary": call.summary,
    }
    _record(cid, call.journey, APPROVAL_REQUESTED, payload)
    approval_requested.send_robust(
        sender=Approval, conversation_id=cid, approval_id=call.id, approver=call.approver
    )


def _is_executed(cid: uuid.UUID, approval_id: str) -> bool:
    """Whether the commit that put the call's result into the conversation happened."""
    return JourneyEvent.objects.filter(
        conversation_id=cid, type=APPROVAL_EXECUTED, payload__approval_id=approval_id
    ).exists()


def _pending_sync(cid: uuid.UUID) -> list[PendingCall]:
    rows = Approval.objects.filter(conversation_id=cid, status=ApprovalStatus.PENDING)
    return [_call(row) for row in rows]


def _outstanding_sync(cid: uuid.UUID, journey: str) -> tuple[list[PendingCall], list[PendingCall]]:
    """A turn's start: pending calls and decided ones to apply, in one database trip."""
    return _pending_sync(cid), _to_apply_sync(cid, journey)


def _to_apply_sync(cid: uuid.UUID, journey: str) -> list[PendingCall]:
    found: list[PendingCall] = []
    rows = Approval.objects.filter(
        conversation_id=cid,
        agent_key=journey,
        status__in=[ApprovalStatus.APPROVED, ApprovalStatus.REJECTED],
        reported_at__isnull=True,
    ).order_by("decided_at", "created_at")
    for row in rows:
        if row.status == ApprovalStatus.APPROVED and _is_executed(cid, str(row.id)):
            # Ran and committed, but not settled (a crash right after): never again.
            _settle_sync(_call(row), None)
            continue
        found.append(_call(row))
    return found


def _settle_sync(call: PendingCall, result: str | None) -> None:
    cid = uuid.UUID(call.conversation_id)
    changes: dict[str, Any] = {"reported_at": timezone.now()}
    if call.status in (ApprovalStatus.APPROVED, ApprovalStatus.EXECUTED):
        changes["status"] = ApprovalStatus.EXECUTED
        if result is not None:
            changes["result"] = result
    updated = Approval.objects.filter(id=call.id, reported_at__isnull=True).update(**changes)
    if updated and changes.get("status") == ApprovalStatus.EXECUTED:
        approval_executed.send_robust(
            sender=Approval, conversation_id=cid, approval_id=call.id, result=result
        )


class DjangoApprovalGate(ApprovalGate):
    """The gate over ``arf_approval`` (one per host; it holds no per-run state)."""

    async def hold(self, call: PendingCall) -> None:
        await run_db(_hold_sync, call)

    async def pending(self, conversation_id: Any) -> list[PendingCall]:
        return await run_db(_pending_sync, uuid.UUID(str(conversation_id)))

    async def decide(
        self, conversation_id: Any, approval_id: Any, approve: bool, by: str, approver: str
    ) -> PendingCall | None:
        def run() -> PendingCall | None:
            try:
                row = decide(conversation_id, approval_id, approve, by=by, as_staff=False)
            except (ApprovalError, Approval.DoesNotExist):
                return None
            return _call(row)

        return await run_db(run)

    async def to_apply(self, conversation_id: Any, journey: str) -> list[PendingCall]:
        return await run_db(_to_apply_sync, uuid.UUID(str(conversation_id)), journey)

    async def outstanding(
        self, conversation_id: Any, journey: str
    ) -> tuple[list[PendingCall], list[PendingCall]]:
        return await run_db(_outstanding_sync, uuid.UUID(str(conversation_id)), journey)

    async def mark_applied(self, call: PendingCall) -> None:
        # Deferred into the claim's next commit: the marker is durable with the result.
        log = JourneyEventLog(uuid.uuid4(), call.conversation_id, call.journey)
        await log.record(
            APPROVAL_EXECUTED,
            {"approval_id": call.id, "tool": call.tool, "result": call.result or ""},
        )

    async def settle(self, call: PendingCall) -> None:
        await run_db(_settle_sync, call, call.result)


def decide(
    conversation_id: Any,
    approval_id: Any,
    approve: bool,
    *,
    by: str,
    user: Any = None,
    as_staff: bool = False,
) -> Approval:
    """Approve or reject a pending call of ``conversation_id`` (sync; one conditional
    ``UPDATE``). ``Approval.DoesNotExist`` for an unknown id or one of another
    conversation; ``NotAllowedToDecide`` for a staff-only approval unless ``as_staff``;
    ``AlreadyDecided`` when it is not pending any more. Run it with ``apply_decided``."""
    cid = uuid.UUID(str(conversation_id))
    try:
        aid = uuid.UUID(str(approval_id))
    except ValueError:
        raise Approval.DoesNotExist(f"Approval {approval_id} not found") from None
    row = Approval.objects.filter(id=aid, conversation_id=cid).first()
    if row is None:
        raise Approval.DoesNotExist(f"Approval {approval_id} not found")
    if row.approver == APPROVER_STAFF and not as_staff:
        raise NotAllowedToDecide("Only staff may decide this approval")
    decision = {
        "status": ApprovalStatus.APPROVED if approve else ApprovalStatus.REJECTED,
        "decided_by": by[:200],
        "decided_by_user": user if getattr(user, "pk", None) is not None else None,
        "decided_at": timezone.now(),
    }
    updated = Approval.objects.filter(id=aid, status=ApprovalStatus.PENDING).update(**decision)
    if not updated:
        row.refresh_from_db(fields=["status"])  # what the winner decided
        raise AlreadyDecided(row.status)
    for field, value in decision.items():
        setattr(row, field, value)
    event = APPROVAL_APPROVED if approve else APPROVAL_REJECTED
    _record(cid, row.agent_key, event, {"approval_id": str(aid), "tool": row.tool, "by": by})
    approval_decided.send_robust(
        sender=Approval,
        conversation_id=cid,
        approval_id=str(aid),
        approved=approve,
        by=by,
        user=user,
    )
    return row


async def apply_decided(conversation_id: Any, journey: str) -> bool:
    """Apply the decided calls of ``journey`` now, inside the conversation's claim.

    False when the conversation is busy (a turn holds it): that turn, or the next,
    applies them. The tool runs at most once per approval either way.
    """
    from ...agents.journey import JourneyAgent
    from ...memory.stores import JourneyBusy
    from .handoff import escalation_metadata
    from .registry import find_journey_agent
    from .turns import _prepare, _resolve_runtime

    agent = find_journey_agent(journey)
    if not isinstance(agent, JourneyAgent):
        return False
    cid = uuid.UUID(str(conversation_id))
    owner_key = await run_db(
        lambda: Conversation.objects.filter(id=cid).values_list("agent_key", flat=True).first()
    )
    if owner_key:
        _prepare(_resolve_runtime(str(owner_key)))  # the ORM memory, as a turn gets it
    try:
        await agent.apply_approvals(cid, metadata=escalation_metadata())
    except JourneyBusy:
        return False
    return True


def decide_and_apply(
    conversation_id: Any,
    approval_id: Any,
    approve: bool,
    *,
    by: str,
    user: Any = None,
    as_staff: bool = False,
) -> Approval:
    """``decide``, then apply it at once when the conversation is free (sync callers)."""
    from asgiref.sync import async_to_sync

    row = decide(conversation_id, approval_id, approve, by=by, user=user, as_staff=as_staff)
    async_to_sync(apply_decided)(conversation_id, row.agent_key)
    row.refresh_from_db()
    return row


def approvals_of(conversation_id: Any) -> list[dict[str, Any]]:
    """The conversation's approvals, oldest first (the API's detail, the console)."""
    cid = uuid.UUID(str(conversation_id))
    return [approval_dict(row) for row in Approval.objects.filter(conversation_id=cid)]


def pending_approvals(approver: str | None = None) -> QuerySet[Approval]:
    """Pending approvals, oldest first (``approver="staff"``: the staff queue)."""
    rows = Approval.objects.filter(status=ApprovalStatus.PENDING)
    if approver is not None:
        rows = rows.filter(approver=approver)
    return rows.select_related("conversation").order_by("created_at")


def gate_metadata() -> dict[str, Any]:
    """What the host lends each journey turn: the database gate."""
    from ...agents.approvals import APPROVALS_KEY

    return {APPROVALS_KEY: _GATE}


_GATE = DjangoApprovalGate()
