"""Settings of the example project: SQLite out of the box, PostgreSQL via DATABASE_URL.

Environment variables:

- ``DATABASE_URL``: e.g. ``postgres://user:pass@127.0.0.1:5432/journeys`` (default: the
  SQLite file ``db.sqlite3`` next to ``manage.py``).
- ``OPENAI_API_KEY`` / ``ANTHROPIC_API_KEY`` / ``AGENT_RUNTIME_LLM``: the model. With none
  set, the offline stand-in answers (rule-based, not an AI) and the chat page says so.
- ``DJANGO_DEBUG`` (default ``1``), ``DJANGO_SECRET_KEY``, ``DJANGO_ALLOWED_HOSTS``
  (comma-separated): set these before exposing the project anywhere.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from agent_runtime_framework.django.dburl import database_from_url

BASE_DIR = Path(__file__).resolve().parent.parent


def _env_flag(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in ("1", "true", "yes", "on")


# An example, so it runs with no configuration; never deploy with this key.
SECRET_KEY = os.environ.get(
    "DJANGO_SECRET_KEY", "django-insecure-example-project-key-do-not-use-in-production"
)
DEBUG = _env_flag("DJANGO_DEBUG", True)
ALLOWED_HOSTS = [
    host.strip()
    for host in os.environ.get("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost,[::1]").split(",")
    if host.strip()
]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "agent_runtime_framework.django",
    "example_project.journeys.apps.JourneysConfig",
    "example_project.chat.apps.ChatConfig",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "example_project.urls"
ASGI_APPLICATION = "example_project.asgi.application"
WSGI_APPLICATION = "example_project.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

DATABASES = {
    "default": database_from_url(
        os.environ.get("DATABASE_URL", ""), default_sqlite=str(BASE_DIR / "db.sqlite3")
    )
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"

LOGIN_URL = "admin:login"

# Where urls.py mounts the journeys API; the chat page's script is told the same prefix.
CHAT_API_PREFIX = "api/"

#: Claims above this amount wait for staff approval before they are filed (journeys/claim.py).
CLAIM_APPROVAL_ABOVE = 10_000

AGENT_RUNTIME_FRAMEWORK = {
    # The chat page works without logging in; conversations belong to the browser session.
    "ALLOW_ANONYMOUS": True,
    # No API key configured? Use the rule-based offline stand-in (the page says so).
    "ALLOW_OFFLINE_STANDIN": True,
    # AGENT_RUNTIME_TURNS=queued: each message is stored and played by a worker
    # (``manage.py db_worker``; with AGENT_RUNTIME_QUEUE=celery, a Celery worker).
    "TURNS": os.environ.get("AGENT_RUNTIME_TURNS", "inline"),
    "QUEUE": os.environ.get("AGENT_RUNTIME_QUEUE", "tasks"),
    "LIVE_EVENTS": os.environ.get("AGENT_RUNTIME_LIVE_EVENTS", "auto"),
}
if os.environ.get("AGENT_RUNTIME_LEASE_SECONDS"):
    AGENT_RUNTIME_FRAMEWORK["LEASE_SECONDS"] = float(os.environ["AGENT_RUNTIME_LEASE_SECONDS"])

# Queued turns on Django's tasks framework, stored in this database (django-tasks-db, the
# "tasks" extra; on Django 5.2 with the django-tasks backport).
if importlib.util.find_spec("django_tasks_db") is not None:
    if importlib.util.find_spec("django.tasks") is None:
        INSTALLED_APPS.append("django_tasks")
    INSTALLED_APPS.append("django_tasks_db")
    TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}

# Celery (AGENT_RUNTIME_QUEUE=celery): the broker, e.g. redis://127.0.0.1:6379/0.
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0")
CELERY_TASK_DEFAULT_QUEUE = os.environ.get("CELERY_TASK_DEFAULT_QUEUE", "celery")
CELERY_TASK_ACKS_LATE = True

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {
        "agent_runtime_framework": {
            "handlers": ["console"],
            "level": os.environ.get("AGENT_RUNTIME_LOG_LEVEL", "INFO"),
        }
    },
}
