"""Tools that need approval (issue 11 part 3) over HTTP and the admin console: held calls,
decisions by the user (in words or through the endpoint) and by staff, exactly once."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse

from agent_runtime_framework import BaseJourneyState, BaseJourneyTools, JourneyAgent
from agent_runtime_framework.agents.approvals import APPROVAL_TOOL
from agent_runtime_framework.django.host import approvals, registry
from agent_runtime_framework.django.models import Approval, JourneyEvent, JourneyMessage
from agent_runtime_framework.django.store.orm import DjangoMemoryManager
from agent_runtime_framework.testing import ScriptedLLM, tool_call
from agent_runtime_framework.tools.base import tool

KEY = "payments"
RUNS: list[tuple[str, Any]] = []


class PayStep(str, Enum):
    START = "start"
    DONE = "done"


@dataclass
class PayState(BaseJourneyState[PayStep]):
    step: PayStep = PayStep.START
    paid: int = 0
    cover: str = ""

    def is_complete(self) -> bool:
        return self.step == PayStep.DONE


class PayTools(BaseJourneyTools[PayState]):
    @tool(
        steps=[PayStep.START],
        needs_approval="staff",
        approval_if=lambda tools, args: args["amount"] > 100,
    )
    def pay(self, amount: int) -> str:
        """Pay out a claim."""
        RUNS.append(("pay", amount))
        self.state.paid = amount
        self.state.step = PayStep.DONE
        return f"Paid {amount}."

    @tool(
        steps=[PayStep.START],
        needs_approval="user",
        approval_summary=lambda args: f"bind a {args['cover']} policy",
    )
    def bind(self, cover: str) -> str:
        """Bind the policy."""
        RUNS.append(("bind", cover))
        self.state.cover = cover
        self.state.step = PayStep.DONE
        return f"Bound {cover}."


class PayAgent(JourneyAgent[PayState, PayTools, PayStep]):
    tools_class = PayTools

    @property
    def key(self) -> str:
        return KEY

    def get_initial_state(self) -> PayState:
        return PayState()

    def get_system_prompt(self, state: PayState) -> str:
        return f"Payments, step {state.step.value}."


@pytest.fixture
def scripted() -> ScriptedLLM:
    return ScriptedLLM()


@pytest.fixture
def payments(scripted: ScriptedLLM) -> Iterator[PayAgent]:
    RUNS.clear()
    agent = PayAgent(llm_client=scripted, memory=DjangoMemoryManager(busy_wait=2))
    registry.register_runtime(agent, key=KEY)
    yield agent
    registry.unregister_runtime(KEY)


def _staff(name: str, *, permitted: bool = True) -> Any:
    user = get_user_model().objects.create_user(name, is_staff=True, first_name=name.title())
    if permitted:
        user.user_permissions.add(Permission.objects.get(codename="handle_conversation"))
    return get_user_model().objects.get(pk=user.pk)


def _types(cid: str) -> list[str]:
    return list(
        JourneyEvent.objects.filter(conversation_id=cid, type__startswith="approval.")
        .order_by("id")
        .values_list("type", flat=True)
    )


def _held(api: Any, cid: str) -> dict[str, Any]:
    detail = api.get(f"conversations/{cid}").json()
    (pending,) = [a for a in detail["approvals"] if a["status"] == "pending"]
    return dict(pending)


def _console(user: Any, cid: str, **data: str) -> Any:
    client = Client(enforce_csrf_checks=False)
    client.force_login(user)
    url = reverse("admin:agent_runtime_conversation_console", args=[cid])
    return client.post(url, data, follow=True)


def test_staff_approval_runs_the_tool_once(
    make_api: Any, users: Any, payments: PayAgent, scripted: ScriptedLLM
) -> None:
    scripted.script.extend([tool_call("pay", amount=500)])
    alice, bob = users
    api = make_api(alice)
    started = api.start(KEY, "pay me 500")
    assert started.status_code == 201, started.text
    body = started.json()
    cid = body["conversation_id"]
    assert body["stopped_reason"] == "approval_pending"
    assert "approval by our staff" in body["reply"] and body["step"] == "start"
    assert RUNS == []  # held, not run
    held = _held(api, cid)
    assert held["approver"] == "staff" and held["tool"] == "pay"
    assert held["arguments"] == {"amount": 500}

    # The user may not decide a staff approval; another user cannot even see it.
    path = f"conversations/{cid}/approvals/{held['id']}"
    refused = api.post(path, {"decision": "approve"})
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "staff_only"
    other = make_api(bob).post(path, {"decision": "approve"})
    assert other.status_code == 404
    anonymous = make_api().post(path, {"decision": "approve"})
    assert anonymous.status_code == 403  # anonymous use is off in the test settings
    assert anonymous.json()["error"]["code"] == "authentication_required"

    # Staff without the permission reach nothing.
    outsider = _staff("mallory", permitted=False)
    assert _console(outsider, cid, action="approve", approval_id=held["id"]).status_code == 403
    assert Approval.objects.get(id=held["id"]).status == "pending"

    carol = _staff("carol")
    queue = Client()
    queue.force_login(carol)
    listed = queue.get(reverse("admin:agent_runtime_conversation_changelist"))
    assert b"approval-queue" in listed.content and b"Pay out a claim" in listed.content
    page = _console(carol, cid, action="approve", approval_id=held["id"])
    assert page.status_code == 200 and b"Pay: executed." in page.content
    assert RUNS == [("pay", 500)]
    row = Approval.objects.get(id=held["id"])
    assert row.status == "executed" and row.decided_by == "Carol" and row.result == "Paid 500."
    detail = api.get(f"conversations/{cid}").json()
    assert detail["step"] == "done" and detail["complete"] is True
    assert detail["messages"][-1]["role"] == "tool"
    assert detail["messages"][-1]["content"] == "Approved by Carol. Paid 500."
    assert _types(cid) == ["approval.requested", "approval.approved", "approval.executed"]

    # Twice: refused, nothing runs again.
    again = _console(carol, cid, action="approve", approval_id=held["id"])
    assert b"already executed" in again.content
    assert api.post(path, {"decision": "reject"}).status_code == 403
    assert RUNS == [("pay", 500)]


def test_small_amounts_need_no_approval(
    make_api: Any, users: Any, payments: PayAgent, scripted: ScriptedLLM
) -> None:
    scripted.script.extend([tool_call("pay", amount=50), "Paid."])
    started = make_api(users[0]).start(KEY, "pay me 50")
    assert started.json()["step"] == "done" and RUNS == [("pay", 50)]
    assert not Approval.objects.exists()


def test_the_user_confirms_in_words_and_rejects_through_the_endpoint(
    make_api: Any, users: Any, payments: PayAgent, scripted: ScriptedLLM
) -> None:
    scripted.script.extend(
        [
            tool_call("bind", cover="car"),
            tool_call(APPROVAL_TOOL, decision="reject"),
            "OK, I won't.",
            tool_call("bind", cover="home"),
        ]
    )
    api = make_api(users[0])
    first = api.start(KEY, "bind car")
    cid = first.json()["conversation_id"]
    assert first.json()["reply"].startswith("Before I go ahead, please confirm: bind a car")
    # The built-in tool is offered only while something waits for the user.
    assert APPROVAL_TOOL not in scripted.calls[0].tool_names
    said_no = api.say(cid, "no thanks")
    assert APPROVAL_TOOL in scripted.calls[1].tool_names
    assert said_no.json()["reply"] == "OK, I won't."
    assert RUNS == [] and [
        a["status"] for a in api.get(f"conversations/{cid}").json()["approvals"]
    ] == ["rejected"]

    api.say(cid, "bind home then")
    held = _held(api, cid)
    path = f"conversations/{cid}/approvals/{held['id']}"
    approved = api.post(path, {"decision": "approve"})
    assert approved.status_code == 200, approved.text
    assert approved.json()["approval"]["status"] == "executed"
    assert RUNS == [("bind", "home")]
    twice = api.post(path, {"decision": "approve"})
    assert twice.status_code == 409 and twice.json()["error"]["code"] == "already_decided"
    assert api.post(path, {"decision": "maybe"}).status_code == 400
    # An approval id of another conversation is not found here.
    other = api.start(KEY).json()["conversation_id"]
    assert (
        api.post(
            f"conversations/{other}/approvals/{held['id']}", {"decision": "reject"}
        ).status_code
        == 404
    )
    assert (
        api.post(
            f"conversations/{cid}/approvals/{uuid.uuid4()}", {"decision": "reject"}
        ).status_code
        == 404
    )
    assert RUNS == [("bind", "home")]


def test_the_user_approves_in_words(
    make_api: Any, users: Any, payments: PayAgent, scripted: ScriptedLLM
) -> None:
    scripted.script.extend(
        [tool_call("bind", cover="car"), tool_call(APPROVAL_TOOL, decision="approve"), "Done."]
    )
    api = make_api(users[0])
    cid = api.start(KEY, "bind car").json()["conversation_id"]
    yes = api.say(cid, "yes")
    assert yes.json()["reply"] == "Done." and yes.json()["step"] == "done"
    assert RUNS == [("bind", "car")]
    tool_results = [
        m["content"]
        for m in api.get(f"conversations/{cid}").json()["messages"]
        if m["role"] == "tool"
    ]
    assert "Approved by the user. Bound car." in tool_results
    assert Approval.objects.get().status == "executed"
    assert _types(cid) == ["approval.requested", "approval.approved", "approval.executed"]


def test_concurrent_approvals_run_the_tool_once(
    make_api: Any, users: Any, payments: PayAgent, scripted: ScriptedLLM
) -> None:
    scripted.script.extend([tool_call("pay", amount=900)])
    api = make_api(users[0])
    cid = api.start(KEY, "pay 900").json()["conversation_id"]
    held = _held(api, cid)
    carol = _staff("carol")
    outcomes: list[str] = []
    barrier = threading.Barrier(4)

    def approve() -> None:
        from django.db import connection

        try:
            barrier.wait()
            approvals.decide_and_apply(cid, held["id"], True, by="Carol", user=carol, as_staff=True)
            outcomes.append("ok")
        except approvals.AlreadyDecided:
            outcomes.append("already")
        finally:
            connection.close()

    threads = [threading.Thread(target=approve) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(outcomes) == ["already", "already", "already", "ok"]
    assert RUNS == [("pay", 900)]
    assert Approval.objects.get(id=held["id"]).status == "executed"
    assert _types(cid).count("approval.executed") == 1


def test_a_crash_between_approval_and_execution_runs_it_once_on_resume(
    make_api: Any, users: Any, payments: PayAgent, scripted: ScriptedLLM, monkeypatch: Any
) -> None:
    scripted.script.extend([tool_call("pay", amount=700), "Your payment went through.", "Hi."])
    api = make_api(users[0])
    cid = api.start(KEY, "pay 700").json()["conversation_id"]
    held = _held(api, cid)
    carol = _staff("carol")
    # Claimed, then the worker died before executing it.
    approvals.decide(cid, held["id"], True, by="Carol", user=carol, as_staff=True)
    assert RUNS == [] and Approval.objects.get(id=held["id"]).status == "approved"
    # Work resumes with the next turn: it runs once, before the model is called.
    resumed = api.say(cid, "any news?")
    assert resumed.json()["reply"] == "Your payment went through."
    assert resumed.json()["step"] == "done" and RUNS == [("pay", 700)]
    history = scripted.calls[1].messages
    assert any(m.get("content") == "Approved by Carol. Paid 700." for m in history)
    api.say(cid, "thanks, hi")
    assert RUNS == [("pay", 700)]


def test_a_crash_after_execution_is_never_run_again(
    make_api: Any, users: Any, payments: PayAgent, scripted: ScriptedLLM, monkeypatch: Any
) -> None:
    from asgiref.sync import async_to_sync

    scripted.script.extend([tool_call("pay", amount=300)])
    api = make_api(users[0])
    cid = api.start(KEY, "pay 300").json()["conversation_id"]
    held = _held(api, cid)
    approvals.decide(cid, held["id"], True, by="Carol", as_staff=True)

    def crash(*args: Any) -> None:
        raise RuntimeError("worker died")

    # The result was committed, then the worker died before recording "executed".
    monkeypatch.setattr(approvals, "_settle_sync", crash)
    with pytest.raises(RuntimeError):
        async_to_sync(approvals.apply_decided)(cid, KEY)
    monkeypatch.undo()
    assert RUNS == [("pay", 300)] and Approval.objects.get(id=held["id"]).status == "approved"
    assert async_to_sync(approvals.apply_decided)(cid, KEY) is True
    assert RUNS == [("pay", 300)]
    assert Approval.objects.get(id=held["id"]).status == "executed"
    results = JourneyMessage.objects.filter(
        conversation_id=cid, role="tool", content__startswith="Approved"
    )
    assert results.count() == 1
