"""Tools that need approval: held as pending, run once a person approves.

A tool declared ``@tool(needs_approval="user")`` (or ``"staff"``; optionally only when
``approval_if(tools, arguments)`` is true) is not run when the model calls it: the call is
validated like any other, stored as pending in an ``ApprovalGate`` and the run ends with a
reply (the user is asked to confirm a summary, or told staff will decide). A decision is a
conditional change ``pending -> approved|rejected`` in the gate, so of two approvals one
wins. Decided calls are *applied* inside the conversation's claim, at the start of the next
turn or by ``JourneyAgent.apply_approvals``: an approved call runs, its result enters the
history as the tool's result and the state is committed like any tool call; a rejection
tells the model who rejected it. The gate's ``applied`` marker is written with that commit
(the Django gate buffers an event into it), so a crash between approval and execution runs
the call once when work resumes, never twice.

While a user-approvable call is pending, the built-in tool ``answer_approval(decision)``
is offered, so the user approves by saying so.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..config import is_debug, should_swallow_exceptions
from ..messages import clean_text
from ..tools.base import ToolResult, ToolSpec, stringify_result
from ..tools.schema import ToolSchema, ToolSchemaBuilder

__all__ = [
    "APPROVALS_KEY",
    "APPROVAL_TOOL",
    "APPROVER_STAFF",
    "APPROVER_USER",
    "ApprovalGate",
    "ApprovalSession",
    "InMemoryApprovalGate",
    "PendingCall",
    "approval_messages",
    "default_summary",
    "run_approved",
]

#: The built-in tool a user approves or rejects with (offered while one is pending).
APPROVAL_TOOL = "answer_approval"
#: ``AgentContext.metadata`` key under which a host lends a run its ``ApprovalGate``.
APPROVALS_KEY = "_arf_approvals"
APPROVER_USER = "user"
APPROVER_STAFF = "staff"
APPROVERS = (APPROVER_USER, APPROVER_STAFF)

PENDING = "pending"
APPROVED = "approved"
REJECTED = "rejected"
EXECUTED = "executed"


@dataclass(slots=True)
class PendingCall:
    """One held tool call and what became of it."""

    id: str
    conversation_id: str
    journey: str
    tool: str
    arguments: dict[str, Any]
    approver: str
    summary: str
    status: str = PENDING
    decided_by: str = ""
    result: str | None = None
    #: The outcome is in the conversation (executed, or the rejection reported).
    reported: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def default_summary(spec: ToolSpec, schema: ToolSchema | None, arguments: Mapping[str, Any]) -> str:
    """``spec.approval_summary(arguments)`` if given, else the tool's first doc line + args."""
    if spec.approval_summary is not None:
        return str(spec.approval_summary(dict(arguments)))
    what = ((schema.description if schema else "") or spec.name).strip().splitlines()[0]
    what = what.rstrip(".")
    args = ", ".join(f"{k}: {v}" for k, v in arguments.items())
    return f"{what} ({args})" if args else what


def approval_messages(call: PendingCall) -> list[dict[str, Any]]:
    """The outcome as the model reads it: an assistant call and the tool's result.

    A fresh call id per approval keeps the history valid for providers whatever became of
    the turn that held the call, and names the outcome's messages (a marker for hosts).
    """
    call_id = f"approval_{uuid.UUID(call.id).hex}"
    if call.status == REJECTED:
        content = (
            f"Rejected by {call.decided_by or call.approver}: {call.tool} was not run. "
            "Tell the user, and do not call it again unless they ask."
        )
    else:
        content = f"Approved by {call.decided_by or call.approver}. {call.result or 'OK'}"
    return [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": call_id,
                    "type": "function",
                    "function": {"name": call.tool, "arguments": json.dumps(call.arguments)},
                }
            ],
        },
        {"role": "tool", "tool_call_id": call_id, "content": content},
    ]


class ApprovalGate:
    """Where held calls live. Subclass for persistence (the Django app: ``arf_approval``).

    ``decide`` must be one conditional change (``pending`` -> decided), so concurrent
    decisions have one winner; ``mark_applied`` runs inside the claim before the commit of
    the outcome and should make ``to_apply`` skip the call once that commit is durable.
    """

    async def hold(self, call: PendingCall) -> None:
        raise NotImplementedError

    async def pending(self, conversation_id: Any) -> list[PendingCall]:
        raise NotImplementedError

    async def decide(
        self, conversation_id: Any, approval_id: Any, approve: bool, by: str, approver: str
    ) -> PendingCall | None:
        """Decide a pending call ``approver`` may decide; None when it is not pending."""
        raise NotImplementedError

    async def to_apply(self, conversation_id: Any, journey: str) -> list[PendingCall]:
        """Decided calls of ``journey`` whose outcome is not in the conversation yet."""
        raise NotImplementedError

    async def outstanding(
        self, conversation_id: Any, journey: str
    ) -> tuple[list[PendingCall], list[PendingCall]]:
        """``(pending, to_apply)``: what a turn starts with. A store that can read both in
        one trip overrides this (the Django gate does, once per turn)."""
        return await self.pending(conversation_id), await self.to_apply(conversation_id, journey)

    async def mark_applied(self, call: PendingCall) -> None:
        """Before the outcome's commit: the marker that commit makes durable."""

    async def settle(self, call: PendingCall) -> None:
        """After the outcome's commit: record it (executed / rejection reported)."""
        raise NotImplementedError


class InMemoryApprovalGate(ApprovalGate):
    """The in-process gate (tests, demos without Django); lost with the process."""

    def __init__(self) -> None:
        self.calls: dict[str, PendingCall] = {}

    async def hold(self, call: PendingCall) -> None:
        self.calls[call.id] = call

    async def pending(self, conversation_id: Any) -> list[PendingCall]:
        cid = str(conversation_id)
        return [c for c in self.calls.values() if c.conversation_id == cid and c.status == PENDING]

    async def decide(
        self, conversation_id: Any, approval_id: Any, approve: bool, by: str, approver: str
    ) -> PendingCall | None:
        call = self.calls.get(str(approval_id))
        if (
            call is None
            or call.conversation_id != str(conversation_id)
            or call.status != PENDING
            or (approver == APPROVER_USER and call.approver != APPROVER_USER)
        ):
            return None
        call.status = APPROVED if approve else REJECTED
        call.decided_by = by
        return call

    async def to_apply(self, conversation_id: Any, journey: str) -> list[PendingCall]:
        cid = str(conversation_id)
        return [
            c
            for c in self.calls.values()
            if c.conversation_id == cid
            and c.journey == journey
            and c.status in (APPROVED, REJECTED)
            and not c.reported
        ]

    async def settle(self, call: PendingCall) -> None:
        stored = self.calls.get(call.id)
        if stored is not None:
            stored.reported = True
            stored.result = call.result
            if stored.status == APPROVED:
                stored.status = EXECUTED


_SCHEMA: list[ToolSchema] = []


def _answer_schema() -> ToolSchema:
    if not _SCHEMA:
        _SCHEMA.append(
            ToolSchemaBuilder(APPROVAL_TOOL)
            .description(
                "Record the user's answer to the action waiting for their confirmation: "
                "'approve' when they confirm it (yes, go ahead), 'reject' when they decline."
            )
            .param("decision", "string", "The user's answer.", enum=["approve", "reject"])
            .build()
        )
    return _SCHEMA[0]


Runner = Callable[[PendingCall], Any]


async def run_approved(agent: Any, tools: Any, call: PendingCall, gate: ApprovalGate) -> None:
    """Run an approved call (as any tool call: errors become its result in production),
    keep its result on ``call`` and let the gate write its marker with the next commit."""
    try:
        raw = await agent.execute_tool(tools, call.tool, dict(call.arguments))
        result = raw if isinstance(raw, str) else stringify_result(raw)
    except Exception as exc:
        if is_debug() or not should_swallow_exceptions():
            raise
        result = f"Error executing {call.tool}: {exc}"
    call.result = clean_text(result)
    call.status = EXECUTED
    await gate.mark_applied(call)


class ApprovalSession:
    """One run's approvals: which tools need one, the held call, the user's open ones."""

    __slots__ = (
        "conversation_id", "decided", "gate", "journey", "open", "requested", "settled", "specs"
    )  # fmt: skip

    def __init__(
        self,
        gate: ApprovalGate,
        conversation_id: Any,
        journey: str,
        specs: Mapping[str, tuple[ToolSpec, ToolSchema]],
    ) -> None:
        self.gate = gate
        self.conversation_id = str(conversation_id)
        self.journey = journey
        self.specs = dict(specs)
        #: Pending calls the user may decide (the built-in tool is offered while any).
        self.open: list[PendingCall] = []
        #: The call held this run (it ends the run).
        self.requested: PendingCall | None = None
        #: Calls applied this run, to settle after the turn's commit.
        self.settled: list[PendingCall] = []
        #: Calls decided since the last turn, whose outcome enters the history first.
        self.decided: list[PendingCall] = []

    async def load(self) -> None:
        pending, self.decided = await self.gate.outstanding(self.conversation_id, self.journey)
        self.open = [c for c in pending if c.approver == APPROVER_USER]

    def tools(self) -> list[ToolSchema]:
        return [_answer_schema()] if self.open and self.requested is None else []

    def needs(self, name: str, tools: Any, arguments: Mapping[str, Any]) -> str | None:
        """Who must approve this call (``"user"``/``"staff"``), or None to run it now."""
        found = self.specs.get(name)
        if found is None or found[0].needs_approval is None:
            return None
        spec = found[0]
        if spec.approval_if is not None and not spec.approval_if(tools, dict(arguments)):
            return None
        return spec.needs_approval

    async def hold(self, name: str, arguments: dict[str, Any], approver: str) -> ToolResult:
        spec, schema = self.specs[name]
        call = PendingCall(
            id=str(uuid.uuid4()),
            conversation_id=self.conversation_id,
            journey=self.journey,
            tool=name,
            arguments=dict(arguments),
            approver=approver,
            summary=default_summary(spec, schema, arguments)[:1000],
        )
        await self.gate.hold(call)
        self.requested = call
        who = "the user's confirmation" if approver == APPROVER_USER else "approval by staff"
        return ToolResult(
            content=f"Held for {who} (approval {call.id}): {call.summary}. It has not run yet.",
            data={"approval": call.id, "approver": approver},
        )

    def reply(self) -> str:
        """What the user reads when the run ends on a held call."""
        call = self.requested
        assert call is not None
        if call.approver == APPROVER_USER:
            return (
                f"Before I go ahead, please confirm: {call.summary}. Shall I proceed (yes or no)?"
            )
        return (
            f"This needs approval by our staff: {call.summary}. "
            "I'll continue here as soon as they have decided."
        )

    async def answer(self, decision: str, run: Runner) -> ToolResult:
        """The built-in tool: decide the newest open call, run it when approved."""
        approve = decision == "approve"
        while self.open:
            call = self.open.pop()
            decided = await self.gate.decide(
                self.conversation_id, call.id, approve, APPROVER_USER, APPROVER_USER
            )
            if decided is None:
                continue  # decided elsewhere meanwhile (the API, another turn)
            if not approve:
                decided.reported = True
                self.settled.append(decided)
                return ToolResult(
                    content=f"Rejected by the user: {decided.tool} was not run.",
                    data={"approval": decided.id, "status": REJECTED},
                )
            await run(decided)
            self.settled.append(decided)
            return ToolResult(
                content=f"Approved by the user. {decided.result or 'OK'}",
                data={"approval": decided.id, "status": EXECUTED},
            )
        return ToolResult.fail("Nothing is waiting for the user's confirmation any more.")
