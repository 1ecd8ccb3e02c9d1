"""``manage.py journey_prune --older-than 30d``: drop old messages and events of finished
conversations, keeping each journey's final state.

A conversation is finished when it has journeys, every one of them is complete, failed or
abandoned (not active, not parked), and no turn holds its lease. Of those conversations,
messages and events created before the cutoff are deleted in batches (one short
transaction each, the finished condition re-checked in every DELETE, so a conversation
that comes back to life mid-run is left alone). ``Conversation`` and ``Journey`` rows stay:
the admin still shows where every journey ended. Events not tied to a conversation are
not touched. Nor are the funnel's counts (``arf_funnel_count``, kept as the step events
were written): the funnel stays as it was.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone

from ...models import Conversation, Journey, JourneyEvent, JourneyMessage, JourneyStatus

__all__ = ["FINISHED_STATUSES", "Command", "finished_conversations", "parse_age", "prune"]

#: Journey statuses after which nothing more happens on its own.
FINISHED_STATUSES = (JourneyStatus.COMPLETE, JourneyStatus.FAILED, JourneyStatus.ABANDONED)

_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_AGE = re.compile(r"^\s*(\d+)\s*([smhdw]?)\s*$")


def parse_age(text: str) -> timedelta:
    """``"30d"``, ``"12h"``, ``"90m"``, ``"2w"``, ``"45s"`` (a bare number means days)."""
    match = _AGE.match(text or "")
    if match is None:
        raise ValueError(f"not an age: {text!r} (use e.g. 30d, 12h, 90m, 2w)")
    amount, unit = int(match.group(1)), match.group(2) or "d"
    return timedelta(**{_UNITS[unit]: amount})


def finished_conversations(now: datetime | None = None) -> QuerySet[Conversation]:
    """Conversations with journeys, all of them finished, and no live lease."""
    now = now or timezone.now()
    unfinished = Journey.objects.filter(conversation=OuterRef("pk")).exclude(
        status__in=FINISHED_STATUSES
    )
    free = Q(lease_token="") | Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lt=now)
    return (
        Conversation.objects.filter(free)
        .filter(Exists(Journey.objects.filter(conversation=OuterRef("pk"))))
        .exclude(Exists(unfinished))
    )


def _old(model: Any, cutoff: datetime, now: datetime) -> QuerySet[Any]:
    finished = finished_conversations(now).values("pk")
    return model.objects.filter(created_at__lt=cutoff, conversation_id__in=finished)


def prune(
    older_than: timedelta,
    *,
    batch_size: int = 1000,
    dry_run: bool = False,
    now: datetime | None = None,
) -> dict[str, int]:
    """Delete (or with ``dry_run`` count) old messages and events of finished conversations.

    Returns ``{"conversations", "messages", "events", "batches"}``.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    now = now or timezone.now()
    cutoff = now - older_than
    has_old = Q(
        Exists(JourneyMessage.objects.filter(conversation=OuterRef("pk"), created_at__lt=cutoff))
    ) | Q(Exists(JourneyEvent.objects.filter(conversation=OuterRef("pk"), created_at__lt=cutoff)))
    touched = finished_conversations(now).filter(has_old).count()
    counts = {"conversations": touched, "messages": 0, "events": 0, "batches": 0}
    for model, name in ((JourneyMessage, "messages"), (JourneyEvent, "events")):
        if dry_run:
            counts[name] = _old(model, cutoff, now).count()
            continue
        while True:
            batch = _old(model, cutoff, timezone.now()).order_by().values_list("pk", flat=True)
            ids = list(batch[:batch_size])
            if not ids:
                break
            with transaction.atomic():
                # The condition again, in the DELETE itself: a turn may have started since.
                deleted, _ = _old(model, cutoff, timezone.now()).filter(pk__in=ids).delete()
            counts[name] += deleted
            counts["batches"] += 1
            if deleted == 0:
                break  # every selected row's conversation came back to life
    return counts


class Command(BaseCommand):
    help = (
        "Delete messages and events older than --older-than of finished conversations "
        "(every journey complete/failed/abandoned, no turn running); journey rows are kept."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--older-than",
            required=True,
            help="Age of the rows to delete: 30d, 12h, 90m, 2w, 45s (a bare number: days).",
        )
        parser.add_argument(
            "--batch-size",
            type=int,
            default=1000,
            help="Rows deleted per transaction (default 1000).",
        )
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="Only print how many rows would be deleted.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            age = parse_age(options["older_than"])
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        if options["batch_size"] < 1:
            raise CommandError("--batch-size must be at least 1")
        counts = prune(age, batch_size=options["batch_size"], dry_run=options["dry_run"])
        verb = "Would delete" if options["dry_run"] else "Deleted"
        self.stdout.write(
            f"{verb} {counts['messages']} messages and {counts['events']} events "
            f"of {counts['conversations']} finished conversations older than "
            f"{options['older_than']}"
            + ("" if options["dry_run"] else f" ({counts['batches']} batches)")
            + "."
        )
