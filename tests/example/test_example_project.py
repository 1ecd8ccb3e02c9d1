"""The example project's wiring, checked in a subprocess with its own settings.

The test suite runs on ``tests.settings``; the example project has its own settings
module, so these checks start ``manage.py`` (and a short script) with
``DJANGO_SETTINGS_MODULE=example_project.settings`` against a throwaway SQLite file.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def example_env(tmp_path: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("OPENAI_", "ANTHROPIC_", "AZURE_OPENAI_", "PYTEST_"))
    }
    env.update(
        DJANGO_SETTINGS_MODULE="example_project.settings",
        DATABASE_URL=f"sqlite:///{tmp_path / 'example.sqlite3'}",
        AGENT_RUNTIME_LLM="standin",
    )
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )


def test_manage_py_check_passes(example_env: dict[str, str]) -> None:
    done = run(["manage.py", "check"], example_env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "no issues" in done.stdout


def test_migrations_are_complete(example_env: dict[str, str]) -> None:
    done = run(["manage.py", "makemigrations", "--check", "--dry-run"], example_env)
    assert done.returncode == 0, done.stdout + done.stderr


SCRIPT = textwrap.dedent(
    """
    import json
    import django
    django.setup()
    from django.test.utils import setup_test_environment
    setup_test_environment()  # allows the test client's host, "testserver"
    from django.conf import settings
    from django.contrib.staticfiles import finders
    from django.test import Client
    from agent_runtime_framework.django.host.registry import registered_runtimes

    page = Client().get("/")
    print(json.dumps({
        "runtimes": sorted(registered_runtimes()),
        "database": settings.DATABASES["default"]["ENGINE"],
        "status": page.status_code,
        "html": page.content.decode(),
        "csrf_cookie": "csrftoken" in page.cookies,
        "static": [bool(finders.find(p)) for p in ("chat/chat.js", "chat/chat.css")],
    }))
    """
)


def test_settings_apps_and_the_chat_page(example_env: dict[str, str]) -> None:
    done = run(["-c", SCRIPT], example_env)
    assert done.returncode == 0, done.stderr
    facts = json.loads(done.stdout.strip().splitlines()[-1])
    assert facts["runtimes"] == ["claim", "front-desk", "onboarding", "quote"]
    assert facts["database"] == "django.db.backends.sqlite3"
    assert facts["status"] == 200
    assert facts["csrf_cookie"], "the page's script needs the CSRF cookie to post"
    assert facts["static"] == [True, True]
    html = facts["html"]
    for testid in (
        "agent-select",
        "start-over",
        "standin-banner",
        "step-label",
        "progress-bar",
        "transcript",
        "message-input",
        "send-button",
    ):
        assert f'data-testid="{testid}"' in html
    assert 'data-api-base="/api/"' in html


def test_database_url_switches_to_postgresql(example_env: dict[str, str]) -> None:
    env = {**example_env, "DATABASE_URL": "postgres://someone:secret@db.example:6543/journeys"}
    script = (
        "import django; django.setup(); from django.conf import settings; "
        "d = settings.DATABASES['default']; print(d['ENGINE'], d['NAME'], d['HOST'], d['PORT'])"
    )
    done = run(["-c", script], env)
    assert done.returncode == 0, done.stderr
    engine, name, host, port = done.stdout.split()
    assert (engine, name, host, port) == (
        "django.db.backends.postgresql",
        "journeys",
        "db.example",
        "6543",
    )
