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

from __future__ import annotations

import uuid
from typing import Any

from django.http import HttpRequest, HttpResponseBase, JsonResponse

from ..messages import clean_text
from .approvals import (
    AlreadyDecided,
    NotAllowedToDecide,
    apply_decided,
    approval_dict,
    decide,
)
from .db import run_db
from .models import Approval
from .views import (
    ApiError,
    Caller,
    _caller,
    _owned_row_sync,
    _parse_conversation_id,
    _read_json,
    api_view,
)

__all__ = ["approval_view", "handoff_view"]


def _handoff_sync(cid: uuid.UUID, reason: str, caller: Caller) -> dict[str, Any]:
    from .handoff import request_handoff
    from .models import Conversation

    _owned_row_sync(cid, caller)  # 404 unless the caller owns the conversation
    requested = request_handoff(cid, reason, source="user")
    status = Conversation.objects.filter(id=cid).values_list("handoff_status", flat=True).get()
    return {"conversation_id": str(cid), "handoff_status": status, "requested": requested}


@api_view("POST")
async def handoff_view(request: HttpRequest, conversation_id: str) -> HttpResponseBase:
    """Hand the conversation to a person (the model is not asked); the user is told on the
    event stream (``handoff.requested``) and by the next turn's answer."""
    caller = await _caller(request)
    cid = _parse_conversation_id(conversation_id)
    data = _read_json(request)
    reason = data.get("reason", "")
    if not isinstance(reason, str):
        raise ApiError(400, "invalid_field", "reason must be a string", {"field": "reason"})
    reason = clean_text(reason)
    return JsonResponse(await run_db(_handoff_sync, cid, reason, caller))


def _decide_sync(cid: uuid.UUID, approval_id: str, approve: bool, caller: Caller) -> Approval:
    _owned_row_sync(cid, caller)  # 404 unless the caller owns the conversation
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


@api_view("POST")
async def approval_view(
    request: HttpRequest, conversation_id: str, approval_id: str
) -> HttpResponseBase:
    """Approve or reject a held tool call; answers with the approval as it stands."""
    caller = await _caller(request)
    cid = _parse_conversation_id(conversation_id)
    data = _read_json(request)
    decision = data.get("decision")
    if decision not in ("approve", "reject"):
        if not caller.identified:
            raise ApiError(
                404, "not_found", "Conversation not found", {"conversation_id": str(cid)}
            )
        raise ApiError(
            400,
            "invalid_decision",
            'decision must be "approve" or "reject"',
            {"field": "decision"},
        )
    row = await run_db(_decide_sync, cid, approval_id, decision == "approve", caller)
    await apply_decided(cid, row.agent_key)
    return JsonResponse({"approval": await run_db(_reload_sync, row.id)})
