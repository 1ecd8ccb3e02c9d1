"""Fixtures of the AG-UI tests: the Node client (tests/agui_client/) and the servers it drives.

- ``agui_client``: runs ``tests/agui_client/agui_client.mjs`` with Node and returns its JSON
  output. Node and npm are required: when either is missing, or the client's packages
  cannot be installed (``npm ci``), the tests FAIL with a message saying what to install;
  they are never skipped (CI installs them in ``.ci/run``).
- ``example_agui_server``: the example project (offline stand-in model) under uvicorn on a
  free port and a fresh database, as the browser tests start it.
- ``asgi_server`` and friends: the test project under uvicorn in a thread (from
  ``tests/http_api``), for journeys with a scripted, slow model.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser.harness import ExampleServer, run_example_server
from tests.http_api.conftest import (  # noqa: F401 - fixtures used by the tests here
    _db_threads_closed,
    asgi_server,
)

CLIENT_DIR = Path(__file__).resolve().parents[1] / "agui_client"
CLIENT_SCRIPT = CLIENT_DIR / "agui_client.mjs"
CLIENT_TIMEOUT = 120


def _require(tool: str) -> str:
    found = shutil.which(tool)
    if found is None:
        pytest.fail(
            f"`{tool}` is not on PATH: the AG-UI tests drive the endpoint with the official "
            "Node client (@ag-ui/client). Install Node.js 20+ with npm (e.g. apt-get install "
            "nodejs npm), then run `npm ci --prefix tests/agui_client`.",
            pytrace=False,
        )
    return found


@pytest.fixture(scope="session")
def agui_client() -> Callable[..., Any]:
    """``agui_client(mode, base_url, agent, *args)``: run the Node client, return its JSON."""
    node = _require("node")
    if not (CLIENT_DIR / "node_modules" / "@ag-ui" / "client").is_dir():
        npm = _require("npm")
        done = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"],
            cwd=CLIENT_DIR,
            capture_output=True,
            text=True,
            timeout=300,
        )
        if done.returncode != 0:
            pytest.fail(
                "`npm ci` in tests/agui_client failed, so the AG-UI client is not installed "
                f"(it needs the npm registry):\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}",
                pytrace=False,
            )

    def run(mode: str, base_url: str, agent: str, *args: str) -> Any:
        done = subprocess.run(
            [node, str(CLIENT_SCRIPT), mode, base_url, agent, *args],
            cwd=CLIENT_DIR,
            capture_output=True,
            text=True,
            timeout=CLIENT_TIMEOUT,
        )
        if done.returncode != 0:
            raise AssertionError(
                f"the AG-UI Node client failed ({done.returncode}):\n"
                f"{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
            )
        return json.loads(done.stdout)

    return run


@pytest.fixture(scope="module")
def example_agui_server() -> Iterator[ExampleServer]:
    with run_example_server("example-server-agui", browser=False) as server:
        yield server
