"""The example project: three insurance journeys, a front desk and a chat page.

Run it with ``python manage.py migrate`` then ``uvicorn example_project.asgi:application``
(or ``python3 run.py demo``, which does both). Its Celery app is loaded when Celery is
installed, so web processes enqueue queued turns on it (``AGENT_RUNTIME_QUEUE=celery``).
"""

try:
    from .celery import app as celery_app
except ImportError:  # Celery is optional
    celery_app = None

__all__ = ["celery_app"]
