#!/usr/bin/env python3
"""The project's commands, with nothing but Python 3.11+ needed to start.

    python3 run.py demo     set up, migrate, create the demo admin, serve the example
    python3 run.py test     set up, then run the whole test suite (pytest)
    python3 run.py setup    only create/refresh .venv with the package and its dev extras
    python3 run.py bench    run the benchmarks in bench/

The database is SQLite unless DATABASE_URL says otherwise (postgres://...). This file
uses only the standard library, so it runs before anything is installed.
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
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / "python"
MARKER = VENV / ".installed-from"
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
    if not PY.exists():
        say(f"creating virtual environment in {VENV}")
        venv.EnvBuilder(with_pip=True, clear=True).create(VENV)
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if MARKER.exists() and MARKER.read_text() == digest:
        return
    sh(PY, "-m", "pip", "install", "--quiet", "--upgrade", "pip")
    sh(PY, "-m", "pip", "install", "--quiet", "-e", f"{ROOT}[dev]")
    MARKER.write_text(digest)


def ensure_chromium() -> None:
    """Browser tests drive Debian's chromium; install it when we can (root with apt)."""
    if CHROMIUM.exists():
        return
    if shutil.which("apt-get") and hasattr(os, "geteuid") and os.geteuid() == 0:
        sh("apt-get", "update", "-qq")
        sh("apt-get", "install", "-y", "-qq", "chromium")
    else:
        say("chromium not found at /usr/bin/chromium: browser tests will say so "
            "(install Debian's 'chromium' package)")


def demo(host: str, port: int) -> None:
    setup()
    env = os.environ.copy()
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
    main()
