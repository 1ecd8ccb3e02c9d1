"""``journey_prune``: old messages/events of finished conversations go, journeys stay."""

from __future__ import annotations

import uuid
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from agent_runtime_framework.django.management.commands.journey_prune import parse_age, prune
from agent_runtime_framework.django.models import (
    Conversation,
    Journey,
    JourneyEvent,
    JourneyMessage,
    JourneyStatus,
)

pytestmark = pytest.mark.django_db

OLD = timedelta(days=40)


def _conversation(
    statuses: list[str],
    *,
    messages: int = 4,
    age: timedelta = OLD,
    recent: int = 0,
    lease: bool = False,
) -> uuid.UUID:
    """A conversation with journeys of these statuses, ``messages`` old messages and as many
    old events, plus ``recent`` new ones of each."""
    now = timezone.now()
    conversation = Conversation.objects.create(
        agent_key="onboarding-agent",
        next_seq=messages + recent,
        lease_token="token" if lease else "",
        lease_expires_at=now + timedelta(minutes=2) if lease else None,
    )
    for index, status in enumerate(statuses):
        Journey.objects.create(
            conversation=conversation,
            agent_key=f"journey-{index}",
            state={"step": "complete", "name": "Ada"},
            step="complete",
            status=status,
        )
    run = uuid.uuid4()
    for seq in range(messages + recent):
        JourneyMessage.objects.create(conversation=conversation, seq=seq, role="user", content="x")
        JourneyEvent.objects.create(
            conversation=conversation, agent_key="a", run_id=run, seq=seq, type="tool.call"
        )
    old_seqs = range(messages)
    JourneyMessage.objects.filter(conversation=conversation, seq__in=old_seqs).update(
        created_at=now - age
    )
    JourneyEvent.objects.filter(conversation=conversation, seq__in=old_seqs).update(
        created_at=now - age
    )
    return conversation.id


def _left(cid: uuid.UUID) -> tuple[int, int]:
    return (
        JourneyMessage.objects.filter(conversation_id=cid).count(),
        JourneyEvent.objects.filter(conversation_id=cid).count(),
    )


def test_parse_age() -> None:
    assert parse_age("30d") == timedelta(days=30)
    assert parse_age("12h") == timedelta(hours=12)
    assert parse_age("90m") == timedelta(minutes=90)
    assert parse_age("2w") == timedelta(weeks=2)
    assert parse_age("7") == timedelta(days=7)
    with pytest.raises(ValueError):
        parse_age("soon")


def test_old_rows_of_finished_conversations_go_everything_else_stays() -> None:
    done = _conversation([JourneyStatus.COMPLETE, JourneyStatus.ABANDONED], recent=2)
    failed = _conversation([JourneyStatus.FAILED])
    active = _conversation([JourneyStatus.COMPLETE, JourneyStatus.ACTIVE])
    parked = _conversation([JourneyStatus.PARKED, JourneyStatus.COMPLETE])
    leased = _conversation([JourneyStatus.COMPLETE], lease=True)
    young = _conversation([JourneyStatus.COMPLETE], age=timedelta(days=3))
    no_journey = _conversation([])
    orphan_event = JourneyEvent.objects.create(
        conversation=None, run_id=uuid.uuid4(), seq=0, type="progress.update"
    )
    JourneyEvent.objects.filter(pk=orphan_event.pk).update(created_at=timezone.now() - OLD)

    counts = prune(timedelta(days=30), batch_size=3)
    assert counts == {"conversations": 2, "messages": 8, "events": 8, "batches": 6}
    assert _left(done) == (2, 2)  # the recent rows of a finished conversation stay
    assert _left(failed) == (0, 0)
    for kept in (active, parked, leased, young, no_journey):
        assert _left(kept) == (4, 4)
    assert JourneyEvent.objects.filter(pk=orphan_event.pk).exists()
    # The journeys' final state and the conversation rows are kept.
    journey = Journey.objects.get(conversation_id=failed)
    assert journey.status == JourneyStatus.FAILED and journey.state["name"] == "Ada"
    assert Conversation.objects.get(id=failed).next_seq == 4
    assert prune(timedelta(days=30))["messages"] == 0  # nothing left to do


def test_an_expired_lease_does_not_keep_a_conversation() -> None:
    cid = _conversation([JourneyStatus.COMPLETE], lease=True)
    Conversation.objects.filter(id=cid).update(
        lease_expires_at=timezone.now() - timedelta(minutes=1)
    )
    prune(timedelta(days=30))
    assert _left(cid) == (0, 0)


def test_dry_run_counts_and_deletes_nothing() -> None:
    cid = _conversation([JourneyStatus.COMPLETE], messages=5)
    _conversation([JourneyStatus.ACTIVE])
    out = StringIO()
    call_command("journey_prune", "--older-than", "30d", "--dry-run", stdout=out)
    assert out.getvalue().strip() == (
        "Would delete 5 messages and 5 events of 1 finished conversations older than 30d."
    )
    assert _left(cid) == (5, 5)


def test_the_command_deletes_in_batches() -> None:
    cid = _conversation([JourneyStatus.COMPLETE], messages=5)
    out = StringIO()
    call_command("journey_prune", "--older-than", "30d", "--batch-size", "2", stdout=out)
    assert out.getvalue().strip() == (
        "Deleted 5 messages and 5 events of 1 finished conversations older than 30d (6 batches)."
    )
    assert _left(cid) == (0, 0)
    assert Journey.objects.filter(conversation_id=cid).count() == 1


def test_bad_arguments() -> None:
    with pytest.raises(CommandError, match="not an age"):
        call_command("journey_prune", "--older-than", "a while", stdout=StringIO())
    with pytest.raises(CommandError, match="batch-size"):
        call_command("journey_prune", "--older-than", "30d", "--batch-size", "0", stdout=StringIO())
