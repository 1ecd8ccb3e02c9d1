"""Token usage per agent from the aggregates kept with the usage events (``usage.py``,
``arf_usage_count``): the same figures as summing the events, kept when events are pruned,
rebuilt (and backfilled by migration 0010) from the events. SQLite or PostgreSQL
(``DATABASE_URL``)."""

from __future__ import annotations

import datetime as dt
import importlib
import uuid
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.utils import timezone

from agent_runtime_framework.django.host import usage
from agent_runtime_framework.django.host.registry import register_runtime, unregister_runtime
from agent_runtime_framework.django.host.turns import run_turn_sync
from agent_runtime_framework.django.host.usage import (
    USAGE_EVENT_TYPES,
    UsageSummary,
    agent_usage,
    price_table,
    rebuild_usage,
)
from agent_runtime_framework.django.management.commands.journey_prune import prune
from agent_runtime_framework.django.models import (
    Conversation,
    Journey,
    JourneyEvent,
    JourneyStatus,
    UsageCount,
)
from agent_runtime_framework.django.store.orm import DjangoMemoryManager
from agent_runtime_framework.llm.base import LLMServerError
from agent_runtime_framework.testing import ScriptedLLM
from example_project.journeys.front_desk import FRONT_DESK_KEY, build_front_desk
from tests.django_app.test_dj_usage import KEY, PRICES, USAGE
from tests.journeys import OnboardingAgent

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def played(settings: Any) -> Iterator[None]:
    """Onboarding turns (one failed), and a routed turn of the front desk."""
    settings.AGENT_RUNTIME_FRAMEWORK = {"PRICES": PRICES}
    user = get_user_model().objects.create_user("ada", "ada@example.com", "pw")
    llm = ScriptedLLM(usage=USAGE, model="gpt-4o-mini")
    agent = OnboardingAgent(llm_client=llm)
    register_runtime(agent)
    router_llm = ScriptedLLM(usage=USAGE, model="gpt-4o-mini")
    journey_llm = ScriptedLLM(usage=USAGE, model="gpt-4o")
    desk = build_front_desk(router_llm)
    desk.memory = DjangoMemoryManager()
    for journey in desk.agents.values():
        journey.memory = desk.memory
        journey._memory_is_default = False
    quote = next(a for a in desk.agents.values() if a.key == "quote")
    quote.llm_client = journey_llm
    register_runtime(desk)
    try:
        for _ in range(2):
            llm.call("start").reply("What is your name?")
            cid = run_turn_sync(KEY, None, "hi", user).conversation_id
            llm.call("save_name", name="Ada").reply("Your email?")
            run_turn_sync(None, cid, "Ada", user)
        llm.call("start").fail(LLMServerError("down", provider="test"))
        with pytest.raises(LLMServerError):
            run_turn_sync(KEY, uuid.uuid4(), "hi", user)
        router_llm.call("request_quote")
        journey_llm.call("choose_cover", cover="car").reply("How old is the driver?")
        run_turn_sync(FRONT_DESK_KEY, None, "a quote for my car", user)
        yield
    finally:
        unregister_runtime(FRONT_DESK_KEY)
        unregister_runtime(agent.key)


def _from_events(
    agent_key: str,
    routers: tuple[str, ...] = (),
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
) -> UsageSummary:
    """``agent_usage`` as it was: one grouped query over the usage events."""
    keys = [agent_key, *[r for r in routers if r != agent_key]]
    queryset = JourneyEvent.objects.filter(type__in=USAGE_EVENT_TYPES, agent_key__in=keys)
    if since is not None:
        queryset = queryset.filter(created_at__gte=since)
    if until is not None:
        queryset = queryset.filter(created_at__lt=until)
    summary = UsageSummary()
    for row in usage._grouped(queryset, "agent_key", "journey"):
        if row["agent_key"] == agent_key or row["journey"] == agent_key:
            summary.add(row, price_table())
    return summary


def _figures(summary: UsageSummary) -> tuple[Any, ...]:
    models = sorted((sorted(m.items()) for m in summary.models), key=str)
    return (
        summary.turns,
        summary.prompt_tokens,
        summary.completion_tokens,
        summary.total_tokens,
        summary.cost,
        sorted(summary.unpriced),
        models,
    )


CASES = [
    (KEY, ()),
    (FRONT_DESK_KEY, ()),
    ("quote", (FRONT_DESK_KEY,)),
    ("nobody", ()),
]


def _rows() -> list[tuple[Any, ...]]:
    return sorted(
        UsageCount.objects.values_list(
            "agent_key",
            "hour",
            "journey",
            "model",
            "turns",
            "records",
            "prompt_tokens",
            "completion_tokens",
            "total_tokens",
        )
    )


def test_the_aggregates_equal_the_sums_of_the_events(played: None) -> None:
    assert JourneyEvent.objects.filter(type="llm.usage").count() == 2  # failed, routing
    hour = timezone.now().replace(minute=0, second=0, microsecond=0)
    ranges = [
        (None, None),
        (hour - dt.timedelta(hours=2), None),
        (None, hour + dt.timedelta(hours=1)),
        (hour - dt.timedelta(days=1), hour + dt.timedelta(days=1)),
        (hour + dt.timedelta(hours=1), None),  # nothing yet
    ]
    for agent_key, routers in CASES:
        for since, until in ranges:
            found = agent_usage(agent_key, routers=routers, since=since, until=until)
            assert _figures(found) == _figures(_from_events(agent_key, routers, since, until))
    onboarding = agent_usage(KEY)
    assert (onboarding.turns, onboarding.prompt_tokens) == (5, 900)  # 2 x (2 + 2 calls) + 1
    assert agent_usage("quote", routers=(FRONT_DESK_KEY,)).total_tokens == 240
    assert agent_usage(FRONT_DESK_KEY).total_tokens == 360
    # Each usage record went to its hour's row and to the all-time row.
    rows = UsageCount.objects.all()
    records = JourneyEvent.objects.filter(type__in=USAGE_EVENT_TYPES).count()
    assert sum(r.records for r in rows if r.hour == usage.ALL_TIME_HOUR) == records
    assert sum(r.records for r in rows if r.hour != usage.ALL_TIME_HOUR) == records
    # A rebuild from the events finds the same rows.
    before = _rows()
    assert rebuild_usage(batch_size=2)["events"] == records
    assert _rows() == before


def test_pruning_events_leaves_the_agents_usage(played: None) -> None:
    before = {key: _figures(agent_usage(key, routers=r)) for key, r in CASES}
    Journey.objects.update(status=JourneyStatus.COMPLETE)
    Conversation.objects.update(lease_token="", lease_expires_at=None)
    prune(dt.timedelta(days=1), now=timezone.now() + dt.timedelta(days=3))
    assert not JourneyEvent.objects.filter(type__in=USAGE_EVENT_TYPES).exists()
    after = {key: _figures(agent_usage(key, routers=r)) for key, r in CASES}
    assert after == before
    assert agent_usage(KEY).turns == 5


def test_the_migration_backfills_events_written_behind_the_frameworks_back(
    played: None,
) -> None:
    # Events loaded with bulk_create (a fixture, a restore) are not counted as written...
    cid = Conversation.objects.first()
    assert cid is not None
    when = timezone.now() - dt.timedelta(days=400)
    loaded = [
        JourneyEvent(
            conversation=cid,
            agent_key=KEY,
            run_id=uuid.uuid4(),
            seq=0,
            type="llm.usage",
            payload={"usage": USAGE, "model": "gpt-4o"},
        )
        for _ in range(3)
    ]
    JourneyEvent.objects.bulk_create(loaded)
    JourneyEvent.objects.filter(pk__in=[e.pk for e in loaded]).update(created_at=when)
    assert _figures(agent_usage(KEY)) != _figures(_from_events(KEY))
    # ... until the aggregates are rebuilt: what migration 0010 does on an existing install.
    UsageCount.objects.all().delete()
    migration = importlib.import_module(
        "agent_runtime_framework.django.migrations.0010_usage_counts"
    )
    migration.backfill(None, SimpleNamespace(connection=connection))
    assert _figures(agent_usage(KEY)) == _figures(_from_events(KEY))
    assert agent_usage(KEY).turns == 5 + 3
    old = agent_usage(KEY, until=when + dt.timedelta(hours=1))
    assert (old.turns, old.models[0]["model"], old.cost is not None) == (3, "gpt-4o", True)
    assert _figures(old) == _figures(_from_events(KEY, until=when + dt.timedelta(hours=1)))
