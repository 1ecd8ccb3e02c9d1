"""People in the loop over HTTP and the admin console: a conversation handed to staff and
back (issue 11), with a scripted model and the offline stand-in."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse

from agent_runtime_framework.agents import ESCALATION_TOOL, JourneyConfig
from agent_runtime_framework.django.conf import app_settings
from agent_runtime_framework.django.host import handoff, registry
from agent_runtime_framework.django.models import (
    Conversation,
    HandoffStatus,
    JourneyEvent,
    JourneyMessage,
)
from agent_runtime_framework.django.store.orm import DjangoMemoryManager
from agent_runtime_framework.llm.standin import OfflineStandInLLM
from agent_runtime_framework.testing import ScriptedLLM, tool_call
from tests.journeys import OnboardingAgent

KEY = "onboarding-agent"


@pytest.fixture
def scripted() -> ScriptedLLM:
    return ScriptedLLM()


@pytest.fixture
def desk(scripted: ScriptedLLM) -> Iterator[OnboardingAgent]:
    agent = OnboardingAgent(
        llm_client=scripted,
        memory=DjangoMemoryManager(busy_wait=0.3),
        config=JourneyConfig(offer_escalation=True),
    )
    registry.register_runtime(agent, key=KEY)
    yield agent
    registry.unregister_runtime(KEY)


def _staff(name: str, *, permitted: bool = True) -> Any:
    user = get_user_model().objects.create_user(name, is_staff=True, first_name=name.title())
    if permitted:
        user.user_permissions.add(Permission.objects.get(codename="handle_conversation"))
    return get_user_model().objects.get(pk=user.pk)  # fresh permission cache


def _types(cid: str) -> list[str]:
    return list(
        JourneyEvent.objects.filter(conversation_id=cid)
        .order_by("id")
        .values_list("type", flat=True)
    )


def _read_stream_until(api: Any, cid: str, wanted: str) -> dict[str, Any]:
    """Read the SSE stream (from the start) until an event of type ``wanted``."""
    with api.client.stream(
        "GET", api.url(f"conversations/{cid}/events?last_event_id=0"), timeout=10
    ) as response:
        assert response.status_code == 200
        kind = ""
        for line in response.iter_lines():
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: ") and kind == wanted:
                return dict(json.loads(line[6:]))
    raise AssertionError(f"no {wanted} event")


def test_handoff_to_staff_and_back(
    make_api: Any, users: Any, desk: Any, scripted: ScriptedLLM
) -> None:
    scripted.script.extend(
        [
            tool_call("start"),
            "What's your name?",
            # The model asks for a person twice in one answer: one handoff.
            [
                tool_call(ESCALATION_TOOL, reason="wants a human"),
                tool_call(ESCALATION_TOOL, reason="again"),
            ],
        ]
    )
    alice = users[0]
    api = make_api(alice)
    started = api.start(KEY, "hi")
    assert started.status_code == 201, started.text
    cid = started.json()["conversation_id"]
    assert started.json()["step"] == "collect_name"

    escalated = api.say(cid, "I want to talk to a person")
    assert escalated.status_code == 200, escalated.text
    body = escalated.json()
    reply = app_settings().HANDOFF_REPLY
    assert body["reply"] == reply and body["stopped_reason"] == "handoff"
    assert body["step"] == "collect_name"
    row = Conversation.objects.get(id=cid)
    assert row.handoff_status == HandoffStatus.WAITING
    assert row.handoff_reason == "wants a human" and row.handoff_source == "model"
    assert _types(cid).count("handoff.requested") == 1
    assert handoff.request_handoff(cid, "once more", source="model") is False  # idempotent

    # While with people: stored, no model call, the waiting reply.
    calls = len(scripted.calls)
    waiting = api.say(cid, "hello? anyone?")
    assert waiting.status_code == 200
    assert waiting.json()["reply"] == reply
    assert waiting.json()["stopped_reason"] == "with_staff"
    assert waiting.json()["step"] == "collect_name"
    assert len(scripted.calls) == calls
    last = JourneyMessage.objects.filter(conversation_id=cid).order_by("-seq").first()
    assert last is not None and last.role == "user" and last.content == "hello? anyone?"

    # Staff: one without the permission, two with it racing to take over.
    outsider = _staff("olga", permitted=False)
    carol, dave = _staff("carol"), _staff("dave")
    with pytest.raises(handoff.NotPermitted):
        handoff.take_over(cid, outsider)
    with pytest.raises(handoff.NotWithStaff):
        handoff.staff_reply(cid, carol, "Hi!")  # not taken yet
    assert handoff.take_over(cid, carol) is True
    with pytest.raises(handoff.AlreadyTaken) as taken:
        handoff.take_over(cid, dave)
    assert taken.value.by == "Carol"
    assert handoff.take_over(cid, carol) is False  # already hers: no-op
    with pytest.raises(handoff.NotWithStaff):
        handoff.staff_reply(cid, dave, "Me too")
    with pytest.raises(ValueError):
        handoff.staff_reply(cid, carol, "   ")
    handoff.staff_reply(cid, carol, "Hello, I'm Carol. Your name, please?")

    # The user sees the reply live, with the staff member's name.
    event = _read_stream_until(api, cid, "staff.message")
    assert event["staff"] == "Carol" and event["content"].startswith("Hello, I'm Carol")
    detail = api.get(f"conversations/{cid}").json()
    assert detail["messages"][-1]["content"].startswith("Hello, I'm Carol")

    # Hand back: the journey resumes at its step and the model reads what was said.
    with pytest.raises(handoff.AlreadyTaken):
        handoff.hand_back(cid, dave)
    handoff.hand_back(cid, carol)
    with pytest.raises(handoff.NotWithStaff):
        handoff.hand_back(cid, carol)
    with pytest.raises(handoff.NotWithStaff):
        handoff.staff_reply(cid, carol, "late")
    scripted.script.extend([tool_call("save_name", name="Ada"), "Your email?"])
    resumed = api.say(cid, "Ada")
    assert resumed.status_code == 200
    assert resumed.json()["step"] == "collect_email"
    seen = json.dumps(scripted.calls[-2].messages)
    assert "Hello, I'm Carol" in seen and "hello? anyone?" in seen
    types = _types(cid)
    for kind in ("handoff.requested", "handoff.user_message", "handoff.taken"):
        assert kind in types
    assert types.count("staff.message") == 1 and types.count("handoff.returned") == 1


def test_the_stand_in_hands_over_when_asked_for_a_person(
    make_api: Any, users: Any, scripted: ScriptedLLM
) -> None:
    agent = OnboardingAgent(
        llm_client=OfflineStandInLLM(),
        memory=DjangoMemoryManager(busy_wait=0.3),
        config=JourneyConfig(offer_escalation=True),
    )
    registry.register_runtime(agent, key=KEY)
    try:
        api = make_api(users[0])
        cid = api.start(KEY, "hello").json()["conversation_id"]
        answer = api.say(cid, "Can I talk to a person please?")
        assert answer.status_code == 200, answer.text
        assert answer.json()["reply"] == app_settings().HANDOFF_REPLY
        assert Conversation.objects.get(id=cid).handoff_status == HandoffStatus.WAITING
    finally:
        registry.unregister_runtime(KEY)


def test_the_console_needs_the_permission_and_takes_over_once(
    make_api: Any, users: Any, desk: Any, scripted: ScriptedLLM
) -> None:
    scripted.script.extend([tool_call("start"), "What's your name?"])
    api = make_api(users[0])
    cid = api.start(KEY, "hi").json()["conversation_id"]
    handoff.request_handoff(cid, "billing question", source="user")
    queue = reverse("admin:agent_runtime_conversation_changelist")
    page = reverse("admin:agent_runtime_conversation_console", args=[cid])
    poll = reverse("admin:agent_runtime_conversation_console_poll", args=[cid])

    # No permission: 403 and no data; not staff: the admin login.
    outsider = Client()
    outsider.force_login(_staff("olga", permitted=False))
    for url in (queue, page, poll):
        response = outsider.get(url)
        assert response.status_code == 403
        assert b"billing question" not in response.content
    assert outsider.post(page, {"action": "take"}).status_code == 403
    assert Conversation.objects.get(id=cid).handled_by_id is None
    anonymous = Client()
    assert anonymous.get(queue).status_code == 302

    carol, dave = Client(), Client()
    carol.force_login(_staff("carol"))
    dave.force_login(_staff("dave"))
    listed = carol.get(queue)
    assert listed.status_code == 200 and b"billing question" in listed.content
    assert b"collect_name" in listed.content
    # A reply before taking over is refused with a message.
    refused = carol.post(page, {"action": "reply", "content": "hi"}, follow=True)
    assert b"not with you" in refused.content
    assert carol.post(page, {"action": "take"}).status_code == 302
    lost = dave.post(page, {"action": "take"}, follow=True)
    assert b"Carol is already handling" in lost.content
    sent = carol.post(page, {"action": "reply", "content": "How can I help?"}, follow=True)
    assert b"Reply sent" in sent.content and b"How can I help?" in sent.content
    data = carol.get(poll + "?after=-1").json()
    assert data["status"] == "staff" and data["messages"][-1]["staff"] == "Carol"
    missing = reverse("admin:agent_runtime_conversation_console", args=[uuid.uuid4()])
    assert carol.get(missing).status_code == 404
    # CSRF is enforced on the forms.
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(_staff("erin"))
    assert strict.post(page, {"action": "hand_back"}).status_code == 403
    assert carol.post(page, {"action": "hand_back"}).status_code == 302
    assert Conversation.objects.get(id=cid).handoff_status == HandoffStatus.ASSISTANT


def test_the_user_asks_for_a_person_over_http_without_the_model(
    make_api: Any, users: Any, desk: OnboardingAgent, scripted: ScriptedLLM
) -> None:
    """``POST conversations/<id>/handoff``: the chat page's "Talk to a person" button.
    The model is not called, then or on the next message; other callers get 404."""
    alice, bob = make_api(users[0]), make_api(users[1])
    cid = alice.start(KEY).json()["conversation_id"]
    path = f"conversations/{cid}/handoff"
    assert bob.post(path, {"reason": "mine"}).status_code == 404
    assert make_api().post(path, {}).status_code in (403, 404)
    assert alice.post(path, {"reason": 5}).status_code == 400
    assert Conversation.objects.get(id=cid).handoff_status == HandoffStatus.ASSISTANT

    first = alice.post(path, {"reason": "I'd rather talk to someone\x00"})
    assert first.status_code == 200
    assert first.json() == {
        "conversation_id": cid, "handoff_status": "waiting", "requested": True
    }  # fmt: skip
    again = alice.post(path, {})
    assert again.json()["requested"] is False  # idempotent: still waiting, one event
    row = Conversation.objects.get(id=cid)
    assert row.handoff_source == "user" and row.handoff_reason == "I'd rather talk to someone"
    assert _types(cid).count("handoff.requested") == 1

    turn = alice.say(cid, "hello?").json()
    assert turn["stopped_reason"] == "with_staff" and turn["reply"] == app_settings().HANDOFF_REPLY
    assert scripted.calls == []  # the model was never asked
