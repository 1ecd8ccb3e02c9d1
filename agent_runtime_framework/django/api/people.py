"""People in the loop over HTTP: the user asks for a person, or decides a held tool call.

``POST conversations/<id>/handoff`` with ``{"reason": "..."}`` (optional) hands the
conversation to staff without asking the model (the chat page's "Talk to a person"
button); 200 with ``{"handoff_status": ...}``, also when it already waits for or is with a
person (nothing changes then).

``POST conversations/<id>/approvals/<approval_id>`` with ``{"decision": "approve"|"reject"}``
(the chat page's buttons use it). Owner-checked like every endpoint: 404 for a
conversation that is not the caller's (or an approval of another conversation), 403 for
an approval only staff may decide, 409 for one decided already. The decision is applied at
once when the conversation is free (the approved tool runs, exactly once), else by the
turn that holds it.
"""

import uuid
from typing import Annotated, Any

from django.http import HttpRequest
from ninja import Path, Router

from ...messages import clean_text
from ..host.approvals import (
    AlreadyDecided,
    NotAllowedToDecide,
    apply_decided,
    approval_dict,
    decide,
)
from ..models import Approval
from ..store.db import run_db
from .access import Caller, caller_first, caller_of
from .conversations import owned_row_sync
from .errors import ApiError, errors
from .schemas import ApprovalAnswer, ApprovalDecision, HandoffAnswer, HandoffRequest

__all__ = ["router"]

router = Router()


def _handoff_sync(cid: uuid.UUID, reason: str, caller: Caller) -> dict[str, Any]:
    from ..host.handoff import request_handoff
    from ..models import Conversation

    owned_row_sync(cid, caller)  # 404 unless the caller owns the conversation
    requested = request_handoff(cid, reason, source="user")
    status = Conversation.objects.filter(id=cid).values_list("handoff_status", flat=True).get()
    return {"conversation_id": str(cid), "handoff_status": status, "requested": requested}


@router.post(
    "/conversations/{conversation_id}/handoff",
    url_name="handoff",
    operation_id="requestHandoff",
    summary="Hand the conversation to a person, without asking the model",
    response={200: HandoffAnswer, **errors(400, 403, 404, 413, 415)},
    exclude_unset=True,
)
@caller_first()
async def request_handoff(
    request: HttpRequest, conversation_id: uuid.UUID, body: HandoffRequest
) -> Any:
    """Staff see it in the admin's queue; until one hands it back the model is not called
    and each message is answered with HANDOFF_REPLY. Idempotent: a conversation already
    waiting for or with a person stays as it is (requested: false). The user is told on
    the event stream (``handoff.requested``) and by the next turn's answer."""
    caller = await caller_of(request)
    reason = clean_text(body.reason)
    return await run_db(_handoff_sync, conversation_id, reason, caller)


def _decide_sync(cid: uuid.UUID, approval_id: str, approve: bool, caller: Caller) -> Approval:
    owned_row_sync(cid, caller)  # 404 unless the caller owns the conversation
    try:
        return decide(cid, approval_id, approve, by="the user", user=caller.user, as_staff=False)
    except Approval.DoesNotExist:
        raise ApiError(
            404, "approval_not_found", "Approval not found", {"approval_id": approval_id}
        ) from None
    except NotAllowedToDecide as exc:
        raise ApiError(403, "staff_only", str(exc), {"approval_id": approval_id}) from None
    except AlreadyDecided as exc:
        raise ApiError(
            409, "already_decided", str(exc), {"approval_id": approval_id, "status": exc.status}
        ) from None


def _reload_sync(approval_id: Any) -> dict[str, Any]:
    return approval_dict(Approval.objects.get(id=approval_id))


@router.post(
    "/conversations/{conversation_id}/approvals/{approval_id}",
    url_name="approval",
    operation_id="decideApproval",
    summary="Approve or reject a tool call held for the user's approval",
    response={200: ApprovalAnswer, **errors(400, 403, 404, 409, 413, 415)},
    exclude_unset=True,
)
@caller_first(owner=True, codes=("invalid_decision",))
async def decide_approval(
    request: HttpRequest,
    conversation_id: uuid.UUID,
    approval_id: Annotated[str, Path(description="The approval's id (its UUID)")],
    body: ApprovalDecision,
) -> Any:
    """Approving runs the tool exactly once (at once when the conversation is free, else
    with the turn that holds it); its result enters the conversation as the tool's
    result. Rejecting tells the model. 403 also for an approval only staff may decide."""
    caller = await caller_of(request)
    row = await run_db(
        _decide_sync, conversation_id, approval_id, body.decision == "approve", caller
    )
    await apply_decided(conversation_id, row.agent_key)
    return {"approval": await run_db(_reload_sync, row.id)}
