"""The example project under uvicorn, for the browser tests.

``run_example_server()`` migrates a fresh database (a temporary SQLite file, or a
dedicated PostgreSQL database ``art_browser_<random>`` when ``DATABASE_URL`` points at
PostgreSQL) and serves ``example_project.asgi:application`` with uvicorn on 127.0.0.1 and a
free port; by default with the offline stand-in model (API keys are removed from its
environment). Its log goes to the artifacts folder.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

__all__ = [
    "ARTIFACTS",
    "CHROMIUM",
    "CHROMIUM_ARGS",
    "ExampleServer",
    "QueuedSite",
    "example_env",
    "fresh_database",
    "migrate_example",
    "queued_site",
    "require_chromium",
    "run_example_server",
    "start_uvicorn",
    "stop_process",
    "wait_until_up",
    "worker_command",
]

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(os.environ.get("ARTIFACTS_DIR") or REPO / "artifacts").resolve()
SERVER_START_TIMEOUT = 60.0


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def require_chromium() -> None:
    if CHROMIUM.exists():
        return
    message = (
        f"{CHROMIUM} is missing: install Debian's chromium (apt-get install -y chromium) "
        "to run the browser tests"
    )
    if _in_ci():
        pytest.fail(message + " (CI=true: the browser tests must run in CI)", pytrace=False)
    pytest.skip(message)


# -- the example project under uvicorn ------------------------------------------------------


@dataclass
class ExampleServer:
    """A running example project: its URL and how to run ``manage.py`` against its DB."""

    base_url: str
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen[bytes] = field(repr=False)

    def url(self, path: str) -> str:
        return self.base_url + "/" + path.lstrip("/")

    def manage(self, *args: str, extra_env: dict[str, str] | None = None) -> str:
        """Run ``manage.py`` with the server's settings and database; returns stdout."""
        done = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=REPO,
            env={**self.env, **(extra_env or {})},
            capture_output=True,
            text=True,
            timeout=120,
        )
        if done.returncode != 0:
            raise AssertionError(
                f"manage.py {' '.join(args)} failed ({done.returncode}):\n"
                f"{done.stdout}\n{done.stderr}"
            )
        return done.stdout

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def example_env(database_url: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        # The stand-in must answer, whatever keys the developer has set.
        if not key.startswith(("OPENAI_", "ANTHROPIC_", "AZURE_OPENAI_", "PYTEST_"))
    }
    env.update(
        DJANGO_SETTINGS_MODULE="example_project.settings",
        DATABASE_URL=database_url,
        AGENT_RUNTIME_LLM="standin",
        DJANGO_DEBUG="0",
        # The fake provider of the provider tests listens on 127.0.0.1: never proxy it.
        NO_PROXY="127.0.0.1,localhost",
        no_proxy="127.0.0.1,localhost",
        DJANGO_SECRET_KEY="browser-tests-" + secrets.token_hex(16),
        PYTHONUNBUFFERED="1",
    )
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


@contextlib.contextmanager
def fresh_database() -> Iterator[str]:
    """A DATABASE_URL for a database of its own (the suite's kind), removed afterwards."""
    url = os.environ.get("DATABASE_URL", "")
    if url.startswith(("postgres://", "postgresql://", "pgsql://")):
        with _postgres_database(url) as database_url:
            yield database_url
    else:
        folder = Path(tempfile.mkdtemp(prefix="art_browser_"))
        try:
            yield f"sqlite:///{folder / 'db.sqlite3'}"
        finally:
            shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def _postgres_database(url: str) -> Iterator[str]:
    import psycopg
    from psycopg import sql

    from agent_runtime_framework.django.dburl import database_from_url

    settings = database_from_url(url)
    connect = {
        "dbname": settings["NAME"],
        "user": settings["USER"],
        "password": settings["PASSWORD"],
        "host": settings["HOST"],
        "port": settings["PORT"],
    }
    connect = {key: value for key, value in connect.items() if value}
    name = f"art_browser_{secrets.token_hex(4)}"
    with psycopg.connect(**connect, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield urlunsplit(urlsplit(url)._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(**connect, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def migrate_example(env: dict[str, str]) -> None:
    """``manage.py migrate`` of the example project on the database ``env`` names."""
    migrate = subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    if migrate.returncode != 0:
        pytest.fail(f"migrate failed:\n{migrate.stdout}\n{migrate.stderr}", pytrace=False)


def start_uvicorn(
    env: dict[str, str], log_path: Path, *, log_level: str = "warning"
) -> tuple[int, subprocess.Popen[bytes]]:
    """The example project under uvicorn on a free port; its output goes to ``log_path``."""
    port = _free_port()
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "example_project.asgi:application",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--log-level",
                log_level,
            ],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    return port, process


def worker_command(engine: str, name: str) -> list[str]:
    """A worker of the example's queued turns: django-tasks-db's ``db_worker``
    (``engine`` "tasks") or a Celery worker ("celery"), one turn at a time."""
    if engine == "celery":
        return [
            sys.executable, "-m", "celery", "-A", "example_project", "worker",
            "--pool=solo", "--concurrency=1", "--loglevel=INFO", "-n", f"{name}@%h",
            "--prefetch-multiplier=1", "--without-gossip", "--without-mingle",
        ]  # fmt: skip
    return [
        sys.executable, "manage.py", "db_worker", "--interval", "0.05",
        "--no-startup-delay", "--worker-id", name,
    ]  # fmt: skip


@contextlib.contextmanager
def run_example_server(
    name: str, llm_env: dict[str, str] | None = None, *, browser: bool = True
) -> Iterator[ExampleServer]:
    """Migrate a fresh database and serve the example project on it with uvicorn.

    ``llm_env`` replaces the default model selection (the offline stand-in), e.g.
    ``{"OPENAI_API_KEY": ..., "OPENAI_BASE_URL": ...}``. ``browser=False`` for clients
    other than chromium (the AG-UI Node client).
    """
    if browser:
        require_chromium()  # no point starting a server the tests cannot drive
    with fresh_database() as database_url:
        env = example_env(database_url)
        if llm_env is not None:
            env.pop("AGENT_RUNTIME_LLM", None)
            env.update(llm_env)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        log_path = ARTIFACTS / f"{name}.log"
        migrate_example(env)
        port, process = start_uvicorn(env, log_path, log_level="info")
        server = ExampleServer(f"http://127.0.0.1:{port}", env, log_path, process)
        try:
            wait_until_up(server.base_url, process, log_path)
            yield server
        finally:
            stop_process(process)


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """Terminate a process this harness started (kill it if it does not stop)."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def wait_until_up(base_url: str, process: subprocess.Popen[bytes], log_path: Path) -> None:
    """Wait until the example project at ``base_url`` answers ``GET /api/agents``."""

    def log() -> str:
        return log_path.read_text(errors="replace") if log_path.exists() else ""

    deadline = time.monotonic() + SERVER_START_TIMEOUT
    last_error = ""
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"uvicorn exited with {process.returncode}:\n{log()}", pytrace=False)
        try:
            with urllib.request.urlopen(base_url + "/api/agents", timeout=5) as response:
                if response.status == 200:
                    return
        except urllib.error.HTTPError as exc:
            last_error = f"HTTP {exc.code}"
        except OSError as exc:
            last_error = str(exc)
        time.sleep(0.2)
    pytest.fail(
        f"the example server did not answer GET /api/agents within {SERVER_START_TIMEOUT}s "
        f"({last_error}):\n{log()}",
        pytrace=False,
    )


# -- queued turns: web processes and workers -------------------------------------------

QUEUED_LEASE = "3"  # seconds: a killed worker's run is played again soon after
QUEUED_LATENCY = "0.15"  # seconds per model call of the stand-in


@dataclass
class QueuedSite:
    """The example in queued mode: web processes, workers of one engine, their logs."""

    webs: list[str]
    env: dict[str, str]
    engine: str
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    logs: list[Path] = field(default_factory=list)

    def start_worker(self, name: str, **extra_env: str) -> subprocess.Popen[bytes]:
        command = worker_command(self.engine, name)
        log = ARTIFACTS / f"queued-{self.engine}-{name}.log"
        self.logs.append(log)
        with log.open("ab") as out:
            process = subprocess.Popen(
                command,
                cwd=REPO,
                env={**self.env, **extra_env},
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.workers.append(process)
        return process

    def tail(self) -> str:
        return "\n".join(
            f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}" for p in self.logs
        )


@contextlib.contextmanager
def queued_site(engine: str) -> Iterator[QueuedSite]:
    """The example with ``TURNS = "queued"`` on a fresh database: two uvicorn web processes
    and two workers of ``engine`` ("tasks": django-tasks-db; "celery": on the local
    RabbitMQ, with live events over Redis), a short lease and a stand-in with latency."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with fresh_database() as database_url:
        env = example_env(database_url)
        env.update(
            AGENT_RUNTIME_TURNS="queued",
            AGENT_RUNTIME_QUEUE=engine,
            AGENT_RUNTIME_LEASE_SECONDS=QUEUED_LEASE,
            AGENT_RUNTIME_STANDIN_LATENCY=QUEUED_LATENCY,
        )
        if engine == "celery":
            # RabbitMQ re-delivers an unacknowledged task as soon as its worker's connection
            # drops (a SIGKILLed worker's turn); a queue name nobody else uses.
            env["CELERY_BROKER_URL"] = "amqp://guest:guest@127.0.0.1:5672//"
            env["CELERY_TASK_DEFAULT_QUEUE"] = f"arf-{secrets.token_hex(4)}"
            # Live events over Redis pub/sub (a database of its own), not LISTEN/NOTIFY.
            env["AGENT_RUNTIME_LIVE_EVENTS"] = f"redis://127.0.0.1:6379/{secrets.randbelow(8) + 8}"
        migrate_example(env)
        webs: list[subprocess.Popen[bytes]] = []
        site = QueuedSite([], env, engine)
        try:
            for name in ("web-a", "web-b"):
                log = ARTIFACTS / f"queued-{engine}-{name}.log"
                site.logs.append(log)
                port, process = start_uvicorn(env, log)
                webs.append(process)
                site.webs.append(f"http://127.0.0.1:{port}")
                wait_until_up(site.webs[-1], process, log)
            site.start_worker("w1")
            site.start_worker("w2")
            yield site
        finally:
            for process in [*site.workers, *webs]:
                stop_process(process)
