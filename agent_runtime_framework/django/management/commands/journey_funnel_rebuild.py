"""``manage.py journey_funnel_rebuild [--agent KEY]``: recount the journey funnel's
aggregates from the journeys and their step events (``funnel_counts.rebuild``).

The counts are kept turn by turn; this is for rows written behind the framework's back
(``bulk_create``, raw SQL, an import) and is what migration 0009 runs once. Pruned events
are gone from what it reads: after ``journey_prune`` a rebuild counts less than the
counts kept at the time.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ...store.funnel_counts import rebuild

__all__ = ["Command"]


class Command(BaseCommand):
    help = "Recount the journey funnel's aggregates from the journeys and their step events."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--agent", default=None, help="Only this agent key.")
        parser.add_argument(
            "--batch-size", type=int, default=2000, help="Journeys read per batch (2000)."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["batch_size"] < 1:
            raise CommandError("--batch-size must be at least 1")
        totals = rebuild(options["agent"], batch_size=options["batch_size"])
        self.stdout.write(
            f"Counted {totals['journeys']} journeys and {totals['events']} step events "
            f"into {totals['counts']} funnel counts."
        )
