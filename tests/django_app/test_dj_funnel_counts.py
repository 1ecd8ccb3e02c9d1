"""Issue 14: the funnel from aggregates kept with the step events (``funnel_counts.py``).

The counts written turn by turn equal the exact figures read from the events, a rebuild
(the migration's backfill) gives the same counts, pruning old events leaves the funnel as
it was, a turn without a step change writes nothing, and the median is exact to its
bucket. On SQLite or PostgreSQL (``DATABASE_URL``).
"""

from __future__ import annotations

import datetime as dt
import importlib
import uuid
from types import SimpleNamespace
from typing import Any

import pytest
from django.apps import apps as django_apps
from django.db import connection
from django.utils import timezone

from agent_runtime_framework.django.admin import analytics
from agent_runtime_framework.django.admin.analytics import journey_funnel
from agent_runtime_framework.django.host.registry import register_runtime, unregister_runtime
from agent_runtime_framework.django.host.turns import run_turn_sync
from agent_runtime_framework.django.management.commands.journey_prune import prune
from agent_runtime_framework.django.models import (
    Conversation,
    FunnelCount,
    Journey,
    JourneyEvent,
    JourneyStatus,
)
from agent_runtime_framework.django.store import funnel_counts
from agent_runtime_framework.testing import ScriptedLLM
from example_project.journeys.quote import QuoteAgent
from tests.django_app.test_dj_analytics import (
    CAR_STOPPED,
    CAR_TWO_DRIVERS,
    HOME_TWO_VALUABLES,
    _play,
)

pytestmark = pytest.mark.django_db(transaction=True)


def _exact(agent: Any) -> dict[str, dict[str, Any]]:
    """The per-step figures read from every step event (the funnel before issue 14)."""
    initial = analytics._initial_step(agent)
    with connection.cursor() as cursor:
        cursor.execute(*analytics._visit_rows_sql("quote", initial, None, None, None))
        return analytics._figures_from_visits(cursor.fetchall())


def _figures(funnel: dict[str, Any]) -> dict[str, tuple[Any, ...]]:
    return {
        r["step"]: (
            r["entered"],
            r["visits"],
            r["now"],
            r["left"],
            r["completed"],
            r["dropped"],
            r["completed_here"],
            tuple((t["step"], t["journeys"], t["transitions"]) for t in r["to_list"]),
            r["median_seconds"],
        )
        for r in funnel["rows"]
    }


def _counts() -> dict[tuple[Any, ...], tuple[int, float]]:
    return {
        (c.agent_key, c.day, c.kind, c.step, c.target): (c.n, c.total)
        for c in FunnelCount.objects.all()
        if c.n
    }


def _same(a: dict[tuple[Any, ...], tuple[int, float]], b: Any) -> bool:
    """The same counts; sums of seconds to a microsecond (summed in another order, floats
    differ in their last bits)."""
    return a.keys() == b.keys() and all(
        a[k][0] == b[k][0] and abs(a[k][1] - b[k][1]) < 1e-6 for k in a
    )


def _three_quotes(llm: ScriptedLLM, user: Any) -> None:
    _play("quote", llm, CAR_TWO_DRIVERS, user)
    _play("quote", llm, HOME_TWO_VALUABLES, user)
    _play("quote", llm, CAR_STOPPED, user)


def test_the_counts_of_real_turns_equal_the_exact_figures_and_a_rebuild(
    quote: tuple[QuoteAgent, ScriptedLLM], admin_user: Any
) -> None:
    agent, llm = quote
    _three_quotes(llm, admin_user)
    funnel = journey_funnel("quote", agent)
    rows = {r["step"]: r for r in funnel["rows"]}
    exact = _exact(agent)
    for step, figure in exact.items():
        row = rows[step]
        assert (row["entered"], row["visits"], row["completed"]) == (
            figure["entered"],
            figure["visits"],
            figure["completed"],
        ), step
        assert {t["step"]: (t["journeys"], t["transitions"]) for t in row["to_list"]} == {
            k: (v["journeys"], v["transitions"]) for k, v in figure["to"].items()
        }, step
        if figure["median"] is None:
            assert row["median_seconds"] is None
        else:  # exact to the bucket: within its width (19 %), or a few ms at that scale
            assert row["median_seconds"] == pytest.approx(figure["median"], rel=0.2, abs=0.005)
    # The one day, and what was counted of each journey.
    today = timezone.now().astimezone(dt.UTC).date()
    assert {c.day for c in FunnelCount.objects.all()} == {today, funnel_counts.ALL_TIME}
    assert journey_funnel("quote", agent, until=timezone.now())["rows"] == funnel["rows"]
    memo = Journey.objects.filter(agent_key="quote", status="complete").first().funnel_memo
    assert memo["done"] is True and "s:review" in memo and memo["cur"] == "complete"

    # The migration's backfill (rebuild) counts the same from the stored events.
    before = _counts()
    result = funnel_counts.rebuild()
    assert result["journeys"] == 3 and result["events"] == sum(
        1 for _ in JourneyEvent.objects.filter(type="journey.step_changed")
    )
    assert _same(_counts(), before)
    assert _figures(journey_funnel("quote", agent)) == _figures(funnel)


def test_the_migration_backfills_an_install_whose_events_came_before_it(
    quote: tuple[QuoteAgent, ScriptedLLM], admin_user: Any
) -> None:
    agent, llm = quote
    _three_quotes(llm, admin_user)
    expected = _figures(journey_funnel("quote", agent))
    # As before migration 0009: no counts, no memos.
    FunnelCount.objects.all().delete()
    Journey.objects.update(funnel_memo={})
    assert journey_funnel("quote", agent)["rows"][1]["entered"] == 0
    migration = importlib.import_module(
        "agent_runtime_framework.django.migrations.0009_funnel_counts"
    )
    migration.backfill(django_apps, SimpleNamespace(connection=connection))
    assert _figures(journey_funnel("quote", agent)) == expected
    # Small batches give the same.
    funnel_counts.rebuild("quote", batch_size=1)
    assert _figures(journey_funnel("quote", agent)) == expected


def test_pruning_old_events_leaves_the_funnel_as_it_was(
    quote: tuple[QuoteAgent, ScriptedLLM], admin_user: Any
) -> None:
    agent, llm = quote
    _three_quotes(llm, admin_user)
    Journey.objects.filter(agent_key="quote", status="active").update(
        status=JourneyStatus.ABANDONED
    )
    funnel_counts.rebuild("quote")  # the status set behind the framework's back
    before = _figures(journey_funnel("quote", agent))
    counts = prune(dt.timedelta(0))  # everything of the finished conversations
    assert counts["events"] > 0
    assert not JourneyEvent.objects.filter(type="journey.step_changed").exists()
    assert _figures(journey_funnel("quote", agent)) == before
    assert journey_funnel("quote", agent)["total"] == 3


def test_a_turn_without_a_step_change_writes_no_counts(
    quote: tuple[QuoteAgent, ScriptedLLM], admin_user: Any
) -> None:
    _, llm = quote
    cid = _play("quote", llm, CAR_STOPPED, admin_user)
    counts = _counts()
    memo = Journey.objects.get(conversation_id=cid, agent_key="quote").funnel_memo
    llm.reply("Anything else?")
    run_turn_sync(None, cid, "just chatting", admin_user)
    assert _counts() == counts
    assert Journey.objects.get(conversation_id=cid, agent_key="quote").funnel_memo == memo


def test_turns_after_the_completion_count_nothing_more(
    quote: tuple[QuoteAgent, ScriptedLLM], admin_user: Any
) -> None:
    agent, llm = quote
    car = _play("quote", llm, CAR_TWO_DRIVERS, admin_user)
    counts = _counts()
    for text in ("thanks", "bye"):
        llm.reply("You're welcome.")
        run_turn_sync(None, car, text, admin_user)
    assert _counts() == counts
    rows = {r["step"]: r for r in journey_funnel("quote", agent)["rows"]}
    assert rows["choose_cover"]["completed"] == rows["complete"]["completed"] == 1


def test_completion_undone_moves_the_completed_counts_back(
    quote: tuple[QuoteAgent, ScriptedLLM], admin_user: Any
) -> None:
    agent, llm = quote
    car = _play("quote", llm, CAR_TWO_DRIVERS, admin_user)
    rows = {r["step"]: r for r in journey_funnel("quote", agent)["rows"]}
    assert rows["choose_cover"]["completed"] == rows["add_driver"]["completed"] == 1
    Journey.objects.filter(conversation_id=car).update(status=JourneyStatus.ACTIVE)
    funnel_counts.resync(car, "quote")
    rows = {r["step"]: r for r in journey_funnel("quote", agent)["rows"]}
    assert all(r["completed"] == 0 for r in rows.values())
    assert rows["add_driver"]["entered"] == 1  # the visits stay


def test_a_step_event_saved_through_the_orm_is_counted() -> None:
    conversation = Conversation.objects.create(agent_key="quote")
    Journey.objects.create(conversation=conversation, agent_key="quote", step="add_driver")
    JourneyEvent.objects.create(
        conversation=conversation,
        agent_key="quote",
        run_id=uuid.uuid4(),
        seq=0,
        type="journey.step_changed",
        payload={"from": "choose_cover", "to": "add_driver"},
    )
    rows = {r["step"]: r for r in journey_funnel("quote", QuoteAgent())["rows"]}
    assert (rows["choose_cover"]["entered"], rows["add_driver"]["entered"]) == (1, 1)
    assert rows["choose_cover"]["to_list"] == [
        {"step": "add_driver", "transitions": 1, "journeys": 1}
    ]


def test_a_date_range_maps_onto_the_utc_days_it_overlaps() -> None:
    utc = dt.UTC
    days = analytics.utc_days(
        dt.datetime(2026, 3, 1, 0, 0, tzinfo=utc), dt.datetime(2026, 3, 31, 0, 0, tzinfo=utc)
    )
    assert days == (dt.date(2026, 3, 1), dt.date(2026, 3, 31))  # [first, end)
    days = analytics.utc_days(
        dt.datetime(2026, 3, 1, 23, 30, tzinfo=utc), dt.datetime(2026, 3, 2, 0, 1, tzinfo=utc)
    )
    assert days == (dt.date(2026, 3, 1), dt.date(2026, 3, 3))
    chicago = dt.timezone(dt.timedelta(hours=-6))
    since = dt.datetime(2026, 3, 1, 0, 0, tzinfo=chicago)  # 06:00 UTC
    assert analytics.utc_days(since, None) == (dt.date(2026, 3, 1), None)


def test_the_median_is_exact_to_its_bucket() -> None:
    bucket = funnel_counts.bucket_of
    low, high = funnel_counts.bucket_bounds(bucket(20.0))
    assert low <= 20.0 < high and high / low == pytest.approx(2**0.25)
    assert bucket(0.0) == bucket(1e-9) == -40
    assert bucket(1.0) == 0 and bucket(2.0) == 4 and bucket(3600.0) == 47

    def median(values: list[float]) -> float | None:
        buckets: dict[int, list[float]] = {}
        for v in values:
            entry = buckets.setdefault(bucket(v), [0, 0.0])
            entry[0] += 1
            entry[1] += v
        return funnel_counts.median_of_buckets(buckets)

    assert median([]) is None
    assert median([10, 20, 60]) == pytest.approx(20)  # the middle one alone in its bucket
    assert median([5, 7]) == pytest.approx(6)  # the mean of the middle two
    assert median([20, 21, 22, 300]) == pytest.approx(21)  # one bucket: its mean
    # Otherwise within the bucket's width of the true median.
    values = [1.3 * k for k in range(1, 100)]
    assert median(values) == pytest.approx(65.0, rel=0.2)


def test_the_rebuild_command(quote: tuple[QuoteAgent, ScriptedLLM], admin_user: Any) -> None:
    from io import StringIO

    from django.core.management import call_command

    _, llm = quote
    _play("quote", llm, CAR_STOPPED, admin_user)
    before = _counts()
    FunnelCount.objects.all().delete()
    out = StringIO()
    call_command("journey_funnel_rebuild", "--agent", "quote", stdout=out)
    assert "Counted 1 journeys and 2 step events" in out.getvalue()
    assert _same(_counts(), before)


@pytest.mark.django_db(transaction=True)
def test_steps_of_a_str_enum_are_counted_by_their_value(admin_user: Any) -> None:
    """The seed's steps are ``class Step(str, Enum)``: counted as "complete", never as
    "OnboardingStep.COMPLETE" (what ``str()`` gives such a member before StrEnum); and an
    agent registered under another key than its own (the README's
    ``register_runtime(OnboardingAgent(), key=...)``) has its funnel under its own key."""
    from tests.journeys import OnboardingAgent

    llm = (
        ScriptedLLM()
        .call("start")
        .reply("Your name?")
        .call("save_name", name="Ada")
        .reply("Your email?")
        .call("save_email", email="ada@example.com")
        .reply("Done!")
    )
    agent = register_runtime(OnboardingAgent(llm_client=llm), key="onboarding-enum")
    try:
        cid = None
        for text in ("hello", "I am Ada", "ada@example.com"):
            cid = run_turn_sync("onboarding-enum", cid, text, admin_user).conversation_id
        names = {"", "welcome", "collect_name", "collect_email", "complete"}
        rows = FunnelCount.objects.filter(agent_key=agent.key)
        assert rows.exists()
        edges = {r.target for r in rows if r.kind.startswith("edge")}
        assert {r.step for r in rows} | edges <= names
        assert edges  # the transitions were counted under the journey's own key
        funnel = {r["step"]: r for r in journey_funnel(agent.key, agent)["rows"]}
        assert funnel["complete"]["entered"] == 1
    finally:
        unregister_runtime("onboarding-enum")
