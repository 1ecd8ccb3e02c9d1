"""Browser test fixtures: the example project under uvicorn, and Debian's chromium.

- ``example_server``: the example project with the offline stand-in model on a fresh
  database, shared by the session (see ``harness.run_example_server``).
- ``browser``/``page``: ``/usr/bin/chromium`` driven by Playwright (never a downloaded
  browser). Missing chromium skips the tests, except under ``CI=true`` where it fails them.
- ``shot``: saves a screenshot into the artifacts folder printed at the end of the run
  (``$ARTIFACTS_DIR/screenshots``, default ``artifacts/screenshots`` in the repository);
  a failing test's page is saved too.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser.harness import (
    ARTIFACTS,
    CHROMIUM,
    CHROMIUM_ARGS,
    ExampleServer,
    require_chromium,
    run_example_server,
)

SCREENSHOTS = ARTIFACTS / "screenshots"
_saved_screenshots: list[Path] = []


@pytest.fixture(scope="session")
def example_server() -> Iterator[ExampleServer]:
    """The example project with the offline stand-in model, shared by the session."""
    with run_example_server("example-server") as server:
        yield server


# -- the browser ------------------------------------------------------------------------------


@pytest.fixture
def browser() -> Iterator[Any]:
    """Chromium for one test. Function scope on purpose: Playwright's sync API runs an
    event loop on this thread while it is started, which would break the async tests
    that run after the browser tests if it stayed up for the session."""
    require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A page in a fresh browser context (own cookies, session and localStorage)."""
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    context.set_default_timeout(15_000)
    page = context.new_page()
    console: list[str] = []
    page.on("console", lambda message: console.append(f"{message.type}: {message.text}"))
    page.on("pageerror", lambda error: console.append(f"pageerror: {error}"))
    try:
        yield page
    finally:
        report = getattr(request.node, "rep_call", None)
        if report is not None and report.failed:
            _save(page, f"{_slug(request.node.name)}-FAILED")
            if console:
                print("\nbrowser console:\n" + "\n".join(console))
        context.close()


@pytest.fixture
def shot(page: Any, request: pytest.FixtureRequest) -> Callable[[str], Path]:
    """``shot("label")`` saves a full-page screenshot named after the test."""
    counter = iter(range(1, 100))

    def take(label: str) -> Path:
        return _save(page, f"{_slug(request.node.name)}-{next(counter):02d}-{_slug(label)}")

    return take


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-")[:80]


def _save(page: Any, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    try:
        page.screenshot(path=str(path), full_page=True, animations="disabled")
    except Exception as exc:  # a crashed page must not hide the test's own failure
        print(f"could not save screenshot {path}: {exc}")
        return path
    _saved_screenshots.append(path)
    return path


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, Any, None]:
    """Keep each phase's report on the item, so ``page`` knows whether the test failed."""
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _saved_screenshots:
        terminalreporter.write_sep("-", "browser screenshots")
        terminalreporter.write_line(f"{len(_saved_screenshots)} screenshots saved in {SCREENSHOTS}")
