"""Conversation control over HTTP: parked journeys in the detail payload, the events and
the journey rows (status ``parked``), with a scripted model."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from agent_runtime_framework.agents import SWITCH_TOOL
from agent_runtime_framework.django.host import registry
from agent_runtime_framework.django.models import Journey, JourneyEvent, JourneyStatus
from agent_runtime_framework.django.store.orm import DjangoMemoryManager
from agent_runtime_framework.testing import ScriptedLLM, tool_call
from tests.core.test_conversation_control import desk

KEY = "control-desk"


@pytest.fixture
def scripted() -> ScriptedLLM:
    return ScriptedLLM()


@pytest.fixture
def control_desk(scripted: ScriptedLLM) -> Iterator[Any]:
    agent = desk(scripted, key=KEY)
    agent.memory = DjangoMemoryManager(busy_wait=0.3)
    for journey in agent.agents.values():
        journey.memory = agent.memory
        journey._memory_is_default = False
    registry.register_runtime(agent, key=KEY)
    yield agent
    registry.unregister_runtime(KEY)


def _events(cid: str) -> list[tuple[str, dict[str, Any]]]:
    rows = JourneyEvent.objects.filter(conversation_id=cid, type__startswith="journey.")
    return [(e.type, e.payload) for e in rows.order_by("id")]


def test_the_detail_payload_shows_parked_journeys_and_switching_back_resumes(
    make_api: Any, users: Any, control_desk: Any, scripted: ScriptedLLM
) -> None:
    scripted.script.extend(
        [
            tool_call("get_quote"),
            tool_call("choose_cover", cover="car"),
            "How old is the driver?",
            tool_call(SWITCH_TOOL, journey="signup"),
            "What is your name?",
            tool_call("save_name", name="Ada"),
            "Your email?",
            tool_call(SWITCH_TOOL, journey="cover"),
            "How old is the driver?",
        ]
    )
    api = make_api(users[0])
    started = api.start(KEY, "a quote for my car")
    assert started.status_code == 201, started.text
    cid = started.json()["conversation_id"]

    turn = api.say(cid, "Actually no, I want to open an account instead")
    assert turn.status_code == 200, turn.text
    assert turn.json()["journey"] == "signup" and turn.json()["reply"] == "What is your name?"
    detail = api.get(f"conversations/{cid}").json()
    assert detail["journey"] == "signup" and detail["status"] == "active"
    assert detail["parked"] == ["cover"]
    by_key = {j["journey"]: j for j in detail["journeys"]}
    assert by_key["cover"]["status"] == "parked" and by_key["cover"]["step"] == "driver"
    assert by_key["cover"]["progress"]["index"] == 2
    cover_row = Journey.objects.get(conversation_id=cid, agent_key="cover")
    assert cover_row.status == JourneyStatus.PARKED and cover_row.get_status_display() == "Parked"
    assert ("journey.parked", {"journey": "cover", "step": "driver"}) in _events(cid)

    api.say(cid, "Ada")
    back = api.say(cid, "let's get back to my quote").json()
    assert back["journey"] == "cover" and back["step"] == "driver"
    detail = api.get(f"conversations/{cid}").json()
    assert detail["journey"] == "cover" and detail["parked"] == ["signup"]
    assert detail["state"]["cover"] == "car"
    by_key = {j["journey"]: j for j in detail["journeys"]}
    assert by_key["signup"]["status"] == "parked" and by_key["signup"]["step"] == "email"
    assert by_key["cover"]["status"] == "active"
    types = [t for t, _ in _events(cid)]
    assert types.count("journey.parked") == 2 and types.count("journey.resumed") == 1
    # One row per journey (and the router's), however often the user switches.
    assert Journey.objects.filter(conversation_id=cid).count() == 3
    scripted.assert_exhausted()


def test_switching_back_and_forth_keeps_one_row_per_journey_and_corrections_are_events(
    make_api: Any, users: Any, control_desk: Any, scripted: ScriptedLLM
) -> None:
    scripted.script.extend([tool_call("get_quote"), tool_call("choose_cover", cover="car"), "Age?"])
    for _ in range(4):
        scripted.script.extend(
            [
                tool_call(SWITCH_TOOL, journey="signup"),
                "Name?",
                tool_call(SWITCH_TOOL, journey="cover"),
                "Age?",
            ]
        )
    scripted.script.extend(
        [
            tool_call("add_driver", age=30),
            "Another driver?",
            tool_call("choose_cover", cover="home"),  # a correction that changes the path
            "What is your home worth?",
        ]
    )
    api = make_api(users[0])
    cid = api.start(KEY, "car quote").json()["conversation_id"]
    for _ in range(4):
        assert api.say(cid, "account instead").status_code == 200
        assert api.say(cid, "back to the quote").status_code == 200
    api.say(cid, "30")
    turn = api.say(cid, "actually, home cover instead").json()
    assert turn["step"] == "home_value" and turn["state"]["ages"] == []
    assert Journey.objects.filter(conversation_id=cid).count() == 3
    revised = [p for t, p in _events(cid) if t == "journey.revised"]
    assert revised == [
        {
            "journey": "cover",
            "step": "cover",
            "tool": "choose_cover",
            "changed": True,
            "cleared": ["ages"],
            "continue_at": "home_value",
        }
    ]
    detail = api.get(f"conversations/{cid}").json()
    assert detail["parked"] == ["signup"] and detail["step"] == "home_value"


def test_the_admin_shows_parked_journeys(
    make_api: Any, users: Any, control_desk: Any, scripted: ScriptedLLM, admin_client: Any
) -> None:
    from django.urls import reverse

    scripted.script.extend(
        [
            tool_call("get_quote"),
            tool_call("choose_cover", cover="car"),
            "Age?",
            tool_call(SWITCH_TOOL, journey="signup"),
            "Name?",
        ]
    )
    api = make_api(users[0])
    cid = api.start(KEY, "car quote").json()["conversation_id"]
    api.say(cid, "account instead")
    parked = Journey.objects.get(conversation_id=cid, agent_key="cover")
    listing = admin_client.get(
        reverse("admin:agent_runtime_journey_changelist"), {"status__exact": "parked"}
    )
    assert listing.status_code == 200 and cid[:8] in listing.content.decode()
    active = Journey.objects.get(conversation_id=cid, agent_key="signup")
    page = admin_client.get(reverse("admin:agent_runtime_journey_change", args=[active.id]))
    html = page.content.decode()
    assert "Other journeys of this conversation" in html
    assert reverse("admin:agent_runtime_journey_change", args=[parked.id]) in html
    assert "Parked" in html and "journey.parked" in html
