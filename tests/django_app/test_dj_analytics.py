"""Issue 14: the funnel from what happened, progress along the journey's path, routed
conversations in the admin, id-prefix search. Real turns of the example's quote (car and
home branches, both loops) through the host, on SQLite or PostgreSQL (``DATABASE_URL``)."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from agent_runtime_framework.django.admin.analytics import journey_funnel, router_funnel
from agent_runtime_framework.django.host.registry import register_runtime, unregister_runtime
from agent_runtime_framework.django.host.turns import run_turn_sync
from agent_runtime_framework.django.models import (
    Conversation,
    Journey,
    JourneyEvent,
    JourneyStatus,
)
from agent_runtime_framework.django.store import funnel_counts
from agent_runtime_framework.django.store.orm import DjangoMemoryManager
from agent_runtime_framework.testing import ScriptedLLM
from example_project.journeys.front_desk import FRONT_DESK_KEY, build_front_desk
from example_project.journeys.quote import QuoteAgent

pytestmark = pytest.mark.django_db(transaction=True)

START = (dt.date.today() + dt.timedelta(days=7)).isoformat()
FUNNEL = "admin:agent_runtime_journey_funnel_agent"
CHANGELIST = "admin:agent_runtime_journey_changelist"


@pytest.fixture
def admin(client: Any, admin_user: Any) -> Any:
    client.force_login(admin_user)
    return client


def _play(key: str, llm: ScriptedLLM, turns: list[tuple[str, dict[str, Any]]], user: Any) -> str:
    """One turn per (tool, arguments): the model calls the tool, then replies."""
    cid: str | None = None
    for name, arguments in turns:
        cid = _answer(llm, key if cid is None else None, cid, name, arguments, user)
    assert cid is not None
    return cid


def _answer(
    llm: ScriptedLLM, key: str | None, cid: str | None, name: str, args: dict[str, Any], user: Any
) -> str:
    """One turn in which the model calls ``name``; a held call is confirmed in a second."""
    if name == "accept_quote" and args.get("accept"):
        # Binding the policy waits for the user's confirmation (needs_approval="user"):
        # the call is held and the turn ends; the user's "yes" approves it.
        llm.call(name, **args)
        result = run_turn_sync(key, cid, "answer", user)
        assert result.stopped_reason == "approval_pending", result.stopped_reason
        llm.call("answer_approval", decision="approve").reply("ok")
        run_turn_sync(None, result.conversation_id, "yes", user)
        return str(result.conversation_id)
    llm.call(name, **args).reply("ok")
    return str(run_turn_sync(key, cid, "answer", user).conversation_id)


CAR_TWO_DRIVERS = [
    ("choose_cover", {"cover": "car"}),
    ("add_driver", {"age": 30}),
    ("more_drivers", {"add_another": True}),
    ("add_driver", {"age": 40}),
    ("more_drivers", {"add_another": False}),
    ("set_start_date", {"start_date": START}),
    ("accept_quote", {"accept": True}),
]
HOME_TWO_VALUABLES = [
    ("choose_cover", {"cover": "home"}),
    ("set_home_value", {"rebuild_value": 250000}),
    ("more_items", {"add_another": True}),
    ("add_item", {"description": "bicycle", "value": 1500}),
    ("more_items", {"add_another": True}),
    ("add_item", {"description": "watch", "value": 2000}),
    ("more_items", {"add_another": False}),
    ("set_start_date", {"start_date": START}),
    ("accept_quote", {"accept": True}),
]
CAR_STOPPED = [("choose_cover", {"cover": "car"}), ("add_driver", {"age": 25})]


def _rows(funnel: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["step"]: r for r in funnel["rows"]}


def _to(row: dict[str, Any]) -> dict[str, tuple[int, int]]:
    return {t["step"]: (t["journeys"], t["transitions"]) for t in row["to_list"]}


def _seed_journeys(count: int) -> None:
    """``count`` more car quotes (choose_cover -> add_driver -> more_drivers), in bulk."""
    conversations = [Conversation(agent_key="quote") for _ in range(count)]
    Conversation.objects.bulk_create(conversations)
    Journey.objects.bulk_create(
        [
            Journey(conversation=c, agent_key="quote", step="more_drivers", state={})
            for c in conversations
        ]
    )
    events = []
    for c in conversations:
        run = uuid.uuid4()
        moves = [("choose_cover", "add_driver"), ("add_driver", "more_drivers")]
        for seq, (a, b) in enumerate(moves):
            events.append(
                JourneyEvent(
                    conversation=c,
                    agent_key="quote",
                    run_id=run,
                    seq=seq,
                    type="journey.step_changed",
                    payload={"from": a, "to": b},
                )
            )
    JourneyEvent.objects.bulk_create(events)


def test_the_funnel_of_the_quote_counts_branches_and_loops_exactly(
    quote: tuple[QuoteAgent, ScriptedLLM], admin: Any, admin_user: Any
) -> None:
    agent, llm = quote
    car = _play("quote", llm, CAR_TWO_DRIVERS, admin_user)
    _play("quote", llm, HOME_TWO_VALUABLES, admin_user)
    _play("quote", llm, CAR_STOPPED, admin_user)

    with CaptureQueriesContext(connection) as few:
        funnel = journey_funnel("quote", agent)
    assert len(few.captured_queries) == 2
    assert funnel["total"] == 3
    rows = _rows(funnel)
    # Steps in the enum's order; every step is listed.
    assert [r["step"] for r in funnel["rows"]] == [
        "choose_cover", "add_driver", "more_drivers", "home_value", "more_items",
        "add_item", "start_date", "review", "complete",
    ]  # fmt: skip
    figures = {
        s: (r["entered"], r["visits"], r["now"], r["left"], r["completed"], r["dropped"])
        for s, r in rows.items()
    }
    assert figures == {
        "choose_cover": (3, 3, 0, 3, 2, 0),
        "add_driver": (2, 3, 0, 2, 1, 0),
        "more_drivers": (2, 3, 1, 1, 1, 0),
        "home_value": (1, 1, 0, 1, 1, 0),
        "more_items": (1, 3, 0, 1, 1, 0),
        "add_item": (1, 2, 0, 1, 1, 0),
        "start_date": (2, 2, 0, 2, 2, 0),
        "review": (2, 2, 0, 2, 2, 0),
        "complete": (2, 2, 0, 0, 2, 0),
    }
    assert _to(rows["choose_cover"]) == {"add_driver": (2, 2), "home_value": (1, 1)}
    assert _to(rows["more_drivers"]) == {"add_driver": (1, 1), "start_date": (1, 1)}
    assert _to(rows["more_items"]) == {"add_item": (1, 2), "start_date": (1, 1)}
    assert _to(rows["add_item"]) == {"more_items": (1, 2)}
    assert rows["complete"]["completed_here"] == 2 and _to(rows["complete"]) == {}
    # Time spent: every step left at least once has a median; "complete" is never left.
    assert all(rows[s]["median_seconds"] is not None for s in figures if s != "complete")
    assert rows["choose_cover"]["median_seconds"] >= 0
    assert rows["complete"]["median_seconds"] is None
    # The branch point comes from the journey's declared transitions.
    assert funnel["branches"] == [{"step": "choose_cover", "options": ["add_driver", "home_value"]}]

    # Per branch: the car quotes only.
    cars = _rows(journey_funnel("quote", agent, through="add_driver"))
    assert cars["choose_cover"]["entered"] == 2
    assert cars["home_value"]["entered"] == 0 and cars["complete"]["entered"] == 1
    homes = _rows(journey_funnel("quote", agent, through="home_value"))
    assert (homes["choose_cover"]["entered"], homes["add_item"]["visits"]) == (1, 2)

    # A date range: nothing started tomorrow; everything since yesterday.
    tomorrow = timezone.now() + dt.timedelta(days=1)
    assert journey_funnel("quote", agent, since=tomorrow)["total"] == 0
    assert journey_funnel("quote", agent, until=tomorrow)["total"] == 3

    # The admin page: the same figures, readable bar labels, branch links; the query
    # count does not grow with the journeys.
    url = reverse(FUNNEL, args=["quote"])
    with CaptureQueriesContext(connection) as small:
        response = admin.get(url)
    assert response.status_code == 200
    html = response.content.decode()
    assert "entered 2 of 3 (66.7%)" in html and "via home_value" in html
    assert response.context["funnel"]["total"] == 3
    _seed_journeys(150)
    with CaptureQueriesContext(connection) as large:
        response = admin.get(url)
    assert response.context["funnel"]["total"] == 153
    assert _rows(response.context["funnel"])["more_drivers"]["now"] == 151
    assert len(large.captured_queries) == len(small.captured_queries)
    with CaptureQueriesContext(connection) as many:
        funnel = journey_funnel("quote", agent, since=timezone.now() - dt.timedelta(days=1))
    assert len(many.captured_queries) == 2 and funnel["total"] == 153

    # The list and the journey page: progress along the journey's own path.
    response = admin.get(reverse(CHANGELIST), {"agent": "quote", "status": "complete"})
    html = response.content.decode()
    assert "step 5 of 5" in html and "step 6 of 6" in html and "of 9" not in html
    journey = Journey.objects.get(conversation_id=car, agent_key="quote")
    response = admin.get(reverse("admin:agent_runtime_journey_change", args=[journey.pk]))
    assert "step 5 of 5" in response.content.decode()
    stopped = Journey.objects.filter(agent_key="quote", turns=2).get()
    response = admin.get(reverse(CHANGELIST), {"q": str(stopped.conversation_id)[:8]})
    assert "step 2 of 5 · driver 1" in response.content.decode()


def test_search_by_id_prefix_and_by_owner(
    quote: tuple[QuoteAgent, ScriptedLLM], admin: Any
) -> None:
    _, llm = quote
    grace = get_user_model().objects.create_user("grace", "grace@navy.mil")
    alan = get_user_model().objects.create_user("alan", "alan@bletchley.uk")
    mine = _play("quote", llm, CAR_STOPPED, grace)
    other = _play("quote", llm, CAR_STOPPED, alan)

    def found(term: str) -> set[str]:
        response = admin.get(reverse(CHANGELIST), {"q": term})
        return {str(j.conversation_id) for j in response.context["cl"].result_list}

    assert found(mine[:8]) == {mine}  # the 8 characters the list shows
    assert found(mine[:8] + "…") == {mine}
    assert found(mine.upper()[:13]) == {mine}  # with the dash, any case
    assert found(mine) == {mine}
    assert found("grace") == {mine} and found("bletchley") == {other}
    assert found("0" * 8) <= {mine, other} and found("ffffffff") <= {mine, other}


@pytest.fixture
def front_desk() -> Iterator[tuple[Any, ScriptedLLM]]:
    llm = ScriptedLLM()
    desk = build_front_desk(llm)
    desk.memory = DjangoMemoryManager()
    for journey in desk.agents.values():
        journey.memory = desk.memory
        journey._memory_is_default = False
    register_runtime(desk)
    yield desk, llm
    unregister_runtime(FRONT_DESK_KEY)


def test_the_front_desk_in_the_admin(
    front_desk: tuple[Any, ScriptedLLM], admin: Any, admin_user: Any
) -> None:
    desk, llm = front_desk
    llm.call("request_quote").call("choose_cover", cover="car").reply("How old?")
    first = run_turn_sync(FRONT_DESK_KEY, None, "a quote for my car", admin_user)
    cid = first.conversation_id
    for name, arguments in CAR_TWO_DRIVERS[1:4]:
        llm.call(name, **arguments).reply("ok")
        result = run_turn_sync(None, cid, "answer", admin_user)
    assert result.progress["index"] == 2 and result.progress["round"] == 2

    router = Journey.objects.get(conversation_id=cid, agent_key=FRONT_DESK_KEY)
    assert (router.status, router.turns, router.step) == ("active", 4, "quote")
    # The list: the front desk's row shows the journey it routed to, and its progress.
    response = admin.get(reverse(CHANGELIST), {"agent": FRONT_DESK_KEY})
    html = response.content.decode()
    assert "▶ quote" in html and "step 2 of 5 · driver 2" in html
    # The front desk's page: its journeys and every step change of the conversation.
    response = admin.get(reverse("admin:agent_runtime_journey_change", args=[router.pk]))
    assert response.status_code == 200
    context = response.context
    assert [j["agent_key"] for j in context["conversation_journeys"]] == ["quote"]
    assert [s["step"] for s in context["step_history"]][1:] == [
        "add_driver", "more_drivers", "add_driver", "more_drivers",
    ]  # fmt: skip
    assert len(context["transcript"]) == context["transcript_total"]
    # The quote's own funnel counts the routed quote (its step events carry its key).
    quote_agent = next(a for a in desk.agents.values() if a.key == "quote")
    rows = _rows(journey_funnel("quote", quote_agent))
    assert (rows["add_driver"]["entered"], rows["add_driver"]["visits"]) == (1, 2)
    assert rows["more_drivers"]["entered"] == 1

    # Finish the quote: the front desk's row follows it.
    for name, arguments in CAR_TWO_DRIVERS[4:]:
        _answer(llm, None, cid, name, arguments, admin_user)
    router.refresh_from_db()
    # Seven answers and the user's confirmation of the quote's binding.
    assert (router.status, router.turns) == (JourneyStatus.COMPLETE, 8)

    # The front desk's funnel works: where its conversations went.
    response = admin.get(reverse(FUNNEL, args=[FRONT_DESK_KEY]))
    assert response.status_code == 200
    html = response.content.decode()
    assert "is not registered" not in html
    rows = _rows(response.context["funnel"])
    assert (rows["quote"]["entered"], rows["quote"]["completed"]) == (1, 1)
    assert rows["onboarding"]["entered"] == 0
    assert router_funnel(desk)["total"] == 1
    assert FRONT_DESK_KEY in response.context["agent_keys"]


def test_the_graph_draws_the_branches_and_loops_with_observed_counts(
    quote: tuple[QuoteAgent, ScriptedLLM], admin: Any, admin_user: Any
) -> None:
    from io import StringIO

    from django.core.management import call_command

    _, llm = quote
    _play("quote", llm, CAR_TWO_DRIVERS, admin_user)
    _play("quote", llm, HOME_TWO_VALUABLES, admin_user)
    # Declared: both branches, the loops (dotted), the way back from review.
    out = StringIO()
    call_command("journey_graph", "quote", stdout=out)
    text = out.getvalue()
    assert "choose_cover -->|choose_cover| add_driver" in text
    assert "choose_cover -->|choose_cover| home_value" in text
    assert "more_drivers -.->|more_drivers| add_driver" in text
    assert "more_items -.->|more_items| add_item" in text
    assert "add_item -.->|add_item| more_items" in text
    assert "more_drivers -->|more_drivers| start_date" in text
    assert "review -.->|accept_quote| choose_cover" in text
    assert "add_driver --> home_value" not in text  # not the enum's straight line
    assert "journey" not in text

    # Observed: how many journeys took each edge, and how often a loop repeated it; a
    # transition taken but not declared is drawn thick.
    conversation = Conversation.objects.filter(agent_key="quote").first()
    assert conversation is not None
    JourneyEvent.objects.create(
        conversation=conversation,
        agent_key="quote",
        run_id=uuid.uuid4(),
        seq=0,
        type="journey.step_changed",
        payload={"from": "complete", "to": "start_date"},
    )
    out = StringIO()
    call_command("journey_graph", "quote", "--observed", stdout=out)
    text = out.getvalue()
    assert "choose_cover -->|choose_cover<br/>1 journey| add_driver" in text
    assert "choose_cover -->|choose_cover<br/>1 journey| home_value" in text
    assert "add_item -.->|add_item<br/>1 journey, 2 transitions| more_items" in text
    assert "more_items -.->|more_items<br/>1 journey, 2 transitions| add_item" in text
    assert "start_date -->|set_start_date<br/>2 journeys| review" in text
    assert "review -.->|accept_quote<br/>0 journeys| choose_cover" in text
    assert "complete ==>|not declared<br/>1 journey| start_date" in text

    # The admin's funnel page shows the same graph, server-side.
    response = admin.get(reverse(FUNNEL, args=["quote"]))
    html = response.content.decode()
    assert 'class="art-graph"' in html
    assert 'data-from="more_items" data-to="add_item"><td>more_items</td>' in html
    assert "observed only (not declared)" in html


def test_the_median_time_spent_in_a_step() -> None:
    """choose_cover left after 10, 20 and 60 s (median 20); add_driver after 5 and 7 s
    (median 6, the mean of the middle two); more_drivers never left (no median)."""
    start = timezone.now() - dt.timedelta(hours=1)
    plans = [(10, 5), (20, 7), (60, None)]
    for first, second in plans:
        conversation = Conversation.objects.create(agent_key="quote")
        step = "more_drivers" if second is not None else "add_driver"
        journey = Journey.objects.create(conversation=conversation, agent_key="quote", step=step)
        Journey.objects.filter(pk=journey.pk).update(created_at=start)
        run = uuid.uuid4()
        moves = [("choose_cover", "add_driver", first)]
        if second is not None:
            moves.append(("add_driver", "more_drivers", first + second))
        for seq, (a, b, at) in enumerate(moves):
            event = JourneyEvent.objects.create(
                conversation=conversation,
                agent_key="quote",
                run_id=run,
                seq=seq,
                type="journey.step_changed",
                payload={"from": a, "to": b},
            )
            JourneyEvent.objects.filter(pk=event.pk).update(
                created_at=start + dt.timedelta(seconds=at)
            )
    # Times rewritten behind the framework's back (QuerySet.update): recount them.
    funnel_counts.rebuild("quote")
    rows = _rows(journey_funnel("quote", QuoteAgent()))
    assert rows["choose_cover"]["median_seconds"] == pytest.approx(20, abs=0.01)
    assert rows["add_driver"]["median_seconds"] == pytest.approx(6, abs=0.01)
    assert rows["more_drivers"]["median_seconds"] is None
    assert (rows["add_driver"]["entered"], rows["add_driver"]["now"]) == (3, 1)


def test_the_date_range_compares_instants_not_local_wall_clocks(
    quote: tuple[QuoteAgent, ScriptedLLM], admin_user: Any
) -> None:
    """CI once ran at 00:40 UTC with Chicago as the site's zone: "since tomorrow" still
    counted today's journeys on SQLite, which compared the local wall clock as text."""
    from zoneinfo import ZoneInfo

    agent, llm = quote
    _play("quote", llm, CAR_STOPPED, admin_user)
    behind = ZoneInfo("Etc/GMT+12")  # twelve hours behind UTC, whatever the hour here
    in_an_hour = (timezone.now() + dt.timedelta(hours=1)).astimezone(behind)
    an_hour_ago = (timezone.now() - dt.timedelta(hours=1)).astimezone(behind)
    assert journey_funnel("quote", agent, since=in_an_hour)["total"] == 0
    assert journey_funnel("quote", agent, since=an_hour_ago)["total"] == 1
    assert journey_funnel("quote", agent, until=an_hour_ago)["total"] == 0
