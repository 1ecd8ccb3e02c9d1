"""A project with our app and the django_agent_runtime stand-in, on ``ARF_STANDIN_DATABASE_URL``."""

import os

from agent_runtime_framework.django.dburl import database_from_url

SECRET_KEY = "tests-only-not-secret"
USE_TZ = True
INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "agent_runtime_framework.django",
    "tests.standin_dar",
]
DATABASES = {"default": database_from_url(os.environ["ARF_STANDIN_DATABASE_URL"])}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AGENT_RUNTIME_FRAMEWORK: dict[str, object] = {}
