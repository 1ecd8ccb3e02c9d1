"""The example's Celery app, for queued turns on Celery (``AGENT_RUNTIME_QUEUE=celery``):

    celery -A example_project worker --pool=solo --concurrency=1

It reads ``CELERY_*`` settings and finds the framework's task
(``agent_runtime_framework.play_conversation``) by autodiscovery.
"""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "example_project.settings")

app = Celery("example_project")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
