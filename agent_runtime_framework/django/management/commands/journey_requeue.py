"""``manage.py journey_requeue``: hand stalled queued turns to the engine again.

A queued run is stalled when it has waited a few seconds and nobody holds its
conversation (its worker died, or the engine lost the task). Engines that can defer tasks
(django-tasks-db, Celery) recover by themselves; run this from cron for the others, or
after restoring a broker.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from ...host.queued import requeue_stalled


class Command(BaseCommand):
    help = "Enqueue every conversation whose queued turns are stalled."

    def handle(self, *args: Any, **options: Any) -> None:
        count = requeue_stalled()
        self.stdout.write(f"{count} conversation(s) handed to the queue again")
