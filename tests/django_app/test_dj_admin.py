"""The admin: journey list, journey page, funnel, actions — real data, bounded queries."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse
from django.utils import timezone

from agent_runtime_framework.django.admin.journeys import funnel_rows
from agent_runtime_framework.django.models import (
    Conversation,
    Journey,
    JourneyEvent,
    JourneyMessage,
    JourneyStatus,
)
from agent_runtime_framework.django.store import funnel_counts
from tests.journeys import OnboardingAgent

pytestmark = pytest.mark.django_db

STEPS = ["welcome", "collect_name", "collect_email", "complete"]
CHANGELIST = "admin:agent_runtime_journey_changelist"


def _seed(count: int, *, owner: Any = None) -> list[Journey]:
    """``count`` onboarding journeys spread over the steps, with messages and events."""
    conversations = [Conversation(agent_key="onboarding-agent", owner=owner) for _ in range(count)]
    Conversation.objects.bulk_create(conversations)
    journeys, messages, events = [], [], []
    for i, conversation in enumerate(conversations):
        step = STEPS[i % 4]
        status = JourneyStatus.COMPLETE if step == "complete" else JourneyStatus.ACTIVE
        if i % 8 == 1:
            status = JourneyStatus.ABANDONED
        journeys.append(
            Journey(
                conversation=conversation,
                agent_key="onboarding-agent",
                owner=owner,
                state={"step": step, "name": f"user{i}", "email": "", "_version": 1},
                step=step,
                status=status,
                turns=i % 4,
                total_tokens=15 * i,
            )
        )
        call = {"id": "c1", "type": "function", "function": {"name": "start", "arguments": "{}"}}
        for seq, message in enumerate(
            [
                {"role": "user", "content": "hello"},
                {"role": "assistant", "content": None, "tool_calls": [call]},
                {"role": "tool", "content": "Ask for the user's name.", "tool_call_id": "c1"},
                {"role": "assistant", "content": "What's your name?"},
            ]
        ):
            messages.append(JourneyMessage(conversation=conversation, seq=seq, **message))
        conversation.next_seq = 4
        run = uuid.uuid4()
        for seq, (kind, payload) in enumerate(
            [
                ("tool.call", {"name": "start", "arguments": {}}),
                ("journey.step_changed", {"from": "welcome", "to": "collect_name"}),
                ("assistant.message", {"content": "What's your name?"}),
            ]
        ):
            events.append(
                JourneyEvent(
                    conversation=conversation,
                    agent_key="onboarding-agent",
                    run_id=run,
                    seq=seq,
                    type=kind,
                    payload=payload,
                )
            )
    Conversation.objects.bulk_update(conversations, ["next_seq"])
    Journey.objects.bulk_create(journeys)
    JourneyMessage.objects.bulk_create(messages)
    JourneyEvent.objects.bulk_create(events)
    funnel_counts.rebuild()  # bulk_create bypasses the funnel's counts: recount them
    return journeys


def test_changelist_shows_progress_and_is_bounded(
    admin_client: Any, registered_onboarding: Any, django_assert_max_num_queries: Any
) -> None:
    owner = get_user_model().objects.create_user("ada", "ada@example.com")
    _seed(12, owner=owner)
    with django_assert_max_num_queries(8):
        response = admin_client.get(reverse(CHANGELIST))
    assert response.status_code == 200
    html = response.content.decode()
    assert "step 3 of 4" in html and "step 1 of 4" in html
    assert "ada" in html
    assert 'href="/admin/agent_runtime/journey/funnel/"' in html

    _seed(80, owner=owner)  # more rows, same number of queries
    with django_assert_max_num_queries(8):
        response = admin_client.get(reverse(CHANGELIST))
    assert response.status_code == 200
    assert response.content.decode().count("step 4 of 4") >= 10


def test_changelist_filters_and_search(admin_client: Any, registered_onboarding: Any) -> None:
    owner = get_user_model().objects.create_user("grace", "grace@navy.mil")
    journeys = _seed(16)
    mine = _seed(1, owner=owner)[0]
    url = reverse(CHANGELIST)

    response = admin_client.get(url, {"agent": "onboarding-agent", "step": "collect_email"})
    assert response.status_code == 200
    assert len(response.context["cl"].result_list) == 4
    html = response.content.decode()
    for step in STEPS:  # the step filter offers the agent's steps in order
        assert f"?agent=onboarding-agent&amp;step={step}" in html

    response = admin_client.get(url, {"status__exact": "abandoned"})
    assert {j.status for j in response.context["cl"].result_list} == {"abandoned"}

    start = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0)
    end = start + dt.timedelta(days=1)
    response = admin_client.get(url, {"updated_at__gte": str(start), "updated_at__lt": str(end)})
    assert len(response.context["cl"].result_list) == 17

    target = journeys[5]
    response = admin_client.get(url, {"q": str(target.conversation_id)})
    assert [j.pk for j in response.context["cl"].result_list] == [target.pk]
    response = admin_client.get(url, {"q": "navy.mil"})
    assert [j.pk for j in response.context["cl"].result_list] == [mine.pk]
    response = admin_client.get(url, {"q": "nobody"})
    assert list(response.context["cl"].result_list) == []


def test_journey_page_shows_state_transcript_events_and_steps(
    admin_client: Any, registered_onboarding: Any, django_assert_max_num_queries: Any
) -> None:
    journey = _seed(3)[2]  # at collect_email
    url = reverse("admin:agent_runtime_journey_change", args=[journey.pk])
    with django_assert_max_num_queries(9):
        response = admin_client.get(url)
    assert response.status_code == 200
    html = response.content.decode()
    assert "user2" in html  # a state field value
    assert "step 3 of 4" in html
    assert 'data-role="user"' in html and 'data-role="tool"' in html
    assert "art-msg-tool-call" in html and "start({})" in html
    assert "What&#x27;s your name?" in html
    assert "journey.step_changed" in html and "<strong>collect_name</strong>" in html
    assert 'name="_save"' not in html  # read-only page
    assert response.context["transcript"][1]["tool_calls"][0]["name"] == "start"
    assert [s["step"] for s in response.context["step_history"]] == ["(start)", "collect_name"]


def test_funnel_counts_reached_and_stopped(
    admin_client: Any, registered_onboarding: Any, django_assert_max_num_queries: Any
) -> None:
    _seed(20)  # 5 per step; indexes 1, 9, 17 (collect_name) are abandoned
    url = reverse("admin:agent_runtime_journey_funnel_agent", args=["onboarding-agent"])
    # Session, user, the funnel's two queries (analytics.py) and the agent's usage (usage.py).
    with django_assert_max_num_queries(5):
        response = admin_client.get(url)
    assert response.status_code == 200
    rows = response.context["funnel"]["rows"]
    # From what happened: every seeded journey started at welcome and has one recorded
    # move, welcome -> collect_name (the seed's rows are placed at other steps directly).
    assert [(r["step"], r["entered"]) for r in rows] == [
        ("welcome", 20),
        ("collect_name", 20),
        ("collect_email", 0),
        ("complete", 0),
    ]
    assert rows[0]["left"] == 15 and rows[0]["to_list"][0]["journeys"] == 20
    assert rows[1]["dropped"] == 3 and rows[1]["now"] == 2
    assert rows[3]["completed_here"] == 5
    html = response.content.decode()
    assert 'class="art-bar"' in html and "width:100.0%" in html
    assert "entered 20 of 20 (100.0%)" in html

    tomorrow = timezone.localdate() + dt.timedelta(days=1)
    response = admin_client.get(url, {"since": str(tomorrow)})
    assert response.context["funnel"]["total"] == 0
    response = admin_client.get(reverse("admin:agent_runtime_journey_funnel"))
    assert response.context["agent_key"] == "onboarding-agent"


def test_funnel_rows_put_unknown_steps_aside() -> None:
    counts = [
        {"step": "complete", "status": "complete", "n": 2},
        {"step": "legacy", "status": "active", "n": 1},
    ]
    funnel = funnel_rows(OnboardingAgent(), counts)
    assert funnel["total"] == 3
    assert [r["reached"] for r in funnel["rows"]] == [2, 2, 2, 2]
    assert funnel["unknown"] == {"legacy": 1}


def test_reset_action_returns_journeys_to_the_initial_state(
    admin_client: Any, registered_onboarding: Any
) -> None:
    journeys = _seed(4)
    done = journeys[3]
    busy = journeys[2]
    Conversation.objects.filter(pk=busy.conversation_id).update(
        lease_token="x", lease_expires_at=timezone.now() + dt.timedelta(minutes=5)
    )
    response = admin_client.post(
        reverse(CHANGELIST),
        {"action": "reset_journeys", "_selected_action": [done.pk, busy.pk]},
        follow=True,
    )
    assert response.status_code == 200
    done.refresh_from_db()
    busy.refresh_from_db()
    assert (done.step, done.status, done.completed_at) == ("welcome", "active", None)
    assert done.state["step"] == "welcome" and done.state["name"] == ""
    assert busy.step == "collect_email"  # a turn holds it: left alone
    text = response.content.decode()
    assert "Reset 1 journey" in text and "in a turn right now" in text
    event = JourneyEvent.objects.filter(conversation_id=done.conversation_id).latest("id")
    assert event.type == "journey.step_changed" and event.payload["to"] == "welcome"


def test_export_action_returns_transcripts_as_json(
    admin_client: Any, registered_onboarding: Any, django_assert_max_num_queries: Any
) -> None:
    journeys = _seed(3)
    with django_assert_max_num_queries(8):
        response = admin_client.post(
            reverse(CHANGELIST),
            {"action": "export_transcripts", "_selected_action": [j.pk for j in journeys]},
        )
    assert response.status_code == 200
    assert "attachment" in response["Content-Disposition"]
    data = json.loads(response.content)
    assert len(data) == 3
    first = data[0]
    assert first["agent_key"] == "onboarding-agent"
    assert [m["role"] for m in first["messages"]] == ["user", "assistant", "tool", "assistant"]
    assert first["messages"][1]["tool_calls"][0]["function"]["name"] == "start"


def test_unregistered_agent_still_renders(admin_client: Any) -> None:
    journey = _seed(1)[0]
    response = admin_client.get(reverse(CHANGELIST))
    assert response.status_code == 200
    response = admin_client.get(reverse("admin:agent_runtime_journey_change", args=[journey.pk]))
    assert response.status_code == 200
    assert "is not registered in this process" in response.content.decode()


def test_journey_page_caps_a_long_step_history_and_hides_internal_records(
    admin_client: Any, registered_onboarding: Any
) -> None:
    from agent_runtime_framework.django.admin.journeys import DETAIL_STEPS

    journey = _seed(3)[2]
    run_id = uuid.uuid4()
    JourneyEvent.objects.bulk_create(
        [
            JourneyEvent(
                conversation_id=journey.conversation_id,
                agent_key=journey.agent_key,
                run_id=run_id,
                seq=i,
                type="journey.step_changed",
                payload={"from": STEPS[i % 2 + 1], "to": STEPS[(i + 1) % 2 + 1]},
            )
            for i in range(DETAIL_STEPS + 5)
        ]
        + [
            JourneyEvent(
                conversation_id=journey.conversation_id,
                agent_key=journey.agent_key,
                run_id=run_id,
                seq=DETAIL_STEPS + 10,
                type="http.idempotent_response",
                payload={"key": "k1"},
            )
        ]
    )
    url = reverse("admin:agent_runtime_journey_change", args=[journey.pk])
    response = admin_client.get(url)
    history = response.context["step_history"]
    assert len(history) == DETAIL_STEPS + 1
    assert history[0]["reason"] == "earlier step changes not shown"
    assert response.context["step_history_cut"] is True
    assert all(not e["type"].startswith("http.") for e in response.context["events"])
    assert "_version" not in [f["name"] for f in response.context["state_fields"]]
