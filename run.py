#!/usr/bin/env python3
"""The project's commands, with nothing but Python 3.11+ needed to start.

    python3 run.py demo     set up, migrate, create the demo admin, serve the example
    python3 run.py test     set up, then run the whole test suite (pytest)
    python3 run.py setup    only create/refresh .venv with the package and its dev extras
    python3 run.py bench    run the benchmarks in bench/

The database is SQLite unless DATABASE_URL says otherwise (postgres://...). This file
uses only the standard library, so it runs before anything is installed.

Which Python and which Django (how CI tests the oldest and the newest supported pair):

- The virtual environment is built with the interpreter that runs this file (a venv made
  by another Python version is rebuilt), so ``python3.13 run.py test`` tests on 3.13.
- ``RUN_PY_VENV`` names the venv directory (default ``.venv``), so two interpreters can
  keep a venv each: ``RUN_PY_VENV=.venv-3.13 python3.13 run.py test``.
- ``RUN_PY_DJANGO`` is a pip requirement installed with the package, e.g.
  ``RUN_PY_DJANGO="Django>=5.2,<5.3"``; unset, pip picks the newest Django in range.

``test`` prints the Python and Django versions before running pytest.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / (os.environ.get("RUN_PY_VENV") or ".venv")
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / "python"
MARKER = VENV / ".installed-from"
DJANGO_PIN = os.environ.get("RUN_PY_DJANGO", "").strip()
VERSIONS = (
    "import sys, django; print('[run.py] Python', sys.version.split()[0], '/ Django', "
    "django.get_version(), flush=True)"
)
CHROMIUM = Path("/usr/bin/chromium")
DEMO_ADMIN = (
    "from django.contrib.auth import get_user_model; U = get_user_model(); "
    "U.objects.filter(username='admin').exists() or "
    "U.objects.create_superuser('admin', 'admin@example.com', 'admin')"
)


def say(message: str) -> None:
    print(f"[run.py] {message}", flush=True)


def sh(*args: str | Path, env: dict[str, str] | None = None, check: bool = True) -> int:
    say(" ".join(str(a) for a in args))
    return subprocess.run([str(a) for a in args], cwd=ROOT, env=env, check=check).returncode


def setup() -> None:
    """Create .venv and install the package with its dev extras (again if pyproject changed)."""
    if sys.version_info < (3, 11):  # noqa: UP036 - run.py may be started by an older python3
        sys.exit("Python 3.11 or newer is needed (this is {}.{})".format(*sys.version_info[:2]))
    python = "{}.{}".format(*sys.version_info[:2])
    built_by = _venv_python(VENV)
    if not PY.exists() or built_by != python:
        if PY.exists():
            say(f"{VENV.name} was made by Python {built_by}, this is {python}: rebuilding it")
        say(f"creating virtual environment in {VENV} (Python {python})")
        venv.EnvBuilder(with_pip=True, clear=True).create(VENV)
    source = (ROOT / "pyproject.toml").read_bytes() + f"\0{python}\0{DJANGO_PIN}".encode()
    digest = hashlib.sha256(source).hexdigest()
    if MARKER.exists() and MARKER.read_text() == digest:
        return
    sh(PY, "-m", "pip", "install", "--quiet", "--upgrade", "pip")
    pins = [DJANGO_PIN] if DJANGO_PIN else []
    sh(PY, "-m", "pip", "install", "--quiet", "-e", f"{ROOT}[dev]", *pins)
    MARKER.write_text(digest)


def _venv_python(directory: Path) -> str | None:
    """'3.11' for a venv made by Python 3.11 (from its pyvenv.cfg), None if unknown."""
    try:
        lines = (directory / "pyvenv.cfg").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        key, _, value = line.partition("=")
        if key.strip() in ("version", "version_info"):
            return ".".join(value.strip().split(".")[:2])
    return None


def ensure_chromium() -> None:
    """Browser tests drive Debian's chromium; install it when we can (root with apt).

    Says what it is about to install first; ``RUN_PY_NO_APT=1`` leaves the system alone
    (the browser tests then fail with a message saying chromium is missing).
    """
    if CHROMIUM.exists():
        return
    can_apt = shutil.which("apt-get") and hasattr(os, "geteuid") and os.geteuid() == 0
    if can_apt and not os.environ.get("RUN_PY_NO_APT"):
        say("the browser tests need Debian's 'chromium' package, which is not installed: "
            "installing it now with apt-get as root (set RUN_PY_NO_APT=1 to skip this)")
        sh("apt-get", "update", "-qq")
        sh("apt-get", "install", "-y", "-qq", "chromium")
    else:
        say("chromium not found at /usr/bin/chromium: browser tests will fail saying so "
            "(install Debian's 'chromium' package)")


#: Run in the venv: make sure DATABASE_URL's PostgreSQL database exists (create it if the
#: server answers and only the database is missing); one line on stdout says what happened.
ENSURE_DATABASE = r"""
import sys
from agent_runtime_framework.django.dburl import database_from_url
import psycopg
db = database_from_url(sys.argv[1])
if db["ENGINE"] != "django.db.backends.postgresql":
    raise SystemExit(0)
params = {k: v for k, v in dict(host=db.get("HOST") or None, port=db.get("PORT") or None,
          user=db.get("USER") or None, password=db.get("PASSWORD") or None).items() if v}
try:
    psycopg.connect(dbname=db["NAME"], connect_timeout=5, **params).close()
except psycopg.OperationalError as exc:
    if "does not exist" not in str(exc):
        first = str(exc).strip().splitlines()[0]
        print(f"cannot reach PostgreSQL for {db['NAME']!r}: {first}")
        raise SystemExit(2)
    with psycopg.connect(dbname="postgres", autocommit=True, connect_timeout=5, **params) as c:
        c.execute(f'CREATE DATABASE "{db["NAME"]}"')
    print(f"created the PostgreSQL database {db['NAME']!r}")
"""


def ensure_database(env: dict[str, str]) -> None:
    """A DATABASE_URL naming a PostgreSQL database that does not exist yet: create it."""
    url = env.get("DATABASE_URL", "")
    if not url.startswith(("postgres://", "postgresql://", "pgsql://")):
        return
    done = subprocess.run(
        [str(PY), "-c", ENSURE_DATABASE, url], cwd=ROOT, env=env, capture_output=True, text=True
    )
    line = (done.stdout or done.stderr).strip().splitlines()
    if done.returncode:
        sys.exit(f"[run.py] {line[-1] if line else 'PostgreSQL check failed'} "
                 "(is the server running, and DATABASE_URL right?)")
    if line:
        say(line[-1])


def demo(host: str, port: int) -> None:
    setup()
    env = os.environ.copy()
    ensure_database(env)
    sh(PY, "manage.py", "migrate", "--noinput", env=env)
    sh(PY, "manage.py", "shell", "-c", DEMO_ADMIN, env=env)
    base = f"http://{host}:{port}"
    print(
        f"\n  Chat page:  {base}/\n  Admin:      {base}/admin/   (user admin, password admin)\n"
        f"  API docs:   {base}/api/openapi.json\n",
        flush=True,
    )
    if not any(env.get(k) for k in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "AGENT_RUNTIME_LLM")):
        say("no LLM provider key set: the offline stand-in model (rule-based, not an AI) answers")
    os.execve(
        str(PY),
        [str(PY), "-m", "uvicorn", "example_project.asgi:application", "--host", host,
         "--port", str(port)],
        env,
    )


def test(pytest_args: list[str]) -> None:
    setup()
    ensure_chromium()
    env = os.environ.copy()
    env.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    database = env.get("DATABASE_URL") or "SQLite"
    ensure_database(env)
    subprocess.run([str(PY), "-c", VERSIONS], cwd=ROOT, env=env, check=True)
    say(f"running the test suite on {database.split('@')[-1]}")
    code = sh(PY, "-m", "pytest", *pytest_args, env=env, check=False)
    sys.exit(code)


def bench() -> None:
    setup()
    for script in sorted((ROOT / "bench").glob("bench_*.py")):
        sh(PY, script, check=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    d = sub.add_parser("demo", help="serve the example project")
    d.add_argument("--host", default="127.0.0.1")
    d.add_argument("--port", type=int, default=8000)
    sub.add_parser("test", help="run the test suite (extra arguments go to pytest)")
    sub.add_parser("setup", help="create .venv with the package and dev extras")
    sub.add_parser("bench", help="run the benchmarks")
    args, extra = parser.parse_known_args()
    if extra and args.command != "test":
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if args.command == "demo":
        demo(args.host, args.port)
    elif args.command == "test":
        test(extra)
    elif args.command == "setup":
        setup()
    else:
        bench()


if __name__ == "__main__":
    try:
        main()
    except subprocess.CalledProcessError as exc:  # an expected failure: one line, no traceback
        command = " ".join(str(a) for a in exc.cmd) if isinstance(exc.cmd, list) else exc.cmd
        sys.exit(f"[run.py] failed (exit code {exc.returncode}): {command}")
    except KeyboardInterrupt:
        sys.exit(130)
