"""The example chat page in a real browser (chromium), against uvicorn, with the stand-in.

What a newcomer does in the first minute: open the page, pick a journey (or tell the
front desk what they want), answer in plain words, see the step and progress move, and
find the finished journey in the admin.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.browser.chatpage import (
    APP,
    choose,
    conversation_id,
    open_chat,
    progress,
    say,
    step,
    wait_idle,
)

if TYPE_CHECKING:
    from tests.browser.harness import ExampleServer


def test_onboarding_in_the_chat_page_then_in_the_admin(
    page: Any, example_server: ExampleServer, shot: Callable[[str], Path]
) -> None:
    open_chat(page, example_server)
    # No API key in the server's environment: the page says plainly who is answering.
    banner = page.locator('[data-testid="standin-banner"]')
    assert banner.is_visible()
    assert "not" in banner.inner_text() and "AI" in banner.inner_text()
    assert page.get_attribute('[data-testid="model-name"]', "data-offline-standin") == "true"
    # The front desk is the default; every journey can be picked directly.
    options = page.eval_on_selector_all("#agent-select option", "os => os.map(o => o.value)")
    assert options[0] == "front-desk"
    assert {"onboarding", "quote", "claim"} <= set(options)
    shot("page loaded")

    conversation = choose(page, "onboarding")
    assert progress(page) == "Not started"
    # welcome and collect_name are one position ("name": the welcome asks for it too)
    assert page.locator(".step-list .step").count() == 3

    reply = say(page, "Hi")
    assert "What is your name?" in reply
    assert step(page) == "welcome"
    assert progress(page) == "Step 1 of 3"

    reply = say(page, "My name is Ada Lovelace")
    assert "Great, Ada Lovelace!" in reply
    assert step(page) == "collect_email"
    assert progress(page) == "Step 2 of 3"  # no jump from 1 to 3
    # The reply streamed over SSE (assistant.delta events) while the turn ran.
    page.wait_for_function("() => Number(document.getElementById('chat-app').dataset.deltas) > 0")
    shot("name saved")

    reply = say(page, "ada@example.com")
    assert "You're all set, Ada Lovelace" in reply
    assert step(page) == "complete"
    assert progress(page) == "Step 3 of 3"
    assert page.locator('[data-testid="complete-banner"]').is_visible()
    states = page.eval_on_selector_all(".step-list .step", "ss => ss.map(s => s.dataset.state)")
    assert states == ["done"] * 3
    shot("onboarding complete")

    # The admin: log in as a superuser created for this test, find the journey.
    example_server.manage(
        "createsuperuser",
        "--noinput",
        "--username",
        "browser-admin",
        "--email",
        "admin@example.com",
        extra_env={"DJANGO_SUPERUSER_PASSWORD": "a-long-browser-test-password"},
    )
    page.goto(example_server.url("/admin/login/"))
    page.fill("#id_username", "browser-admin")
    page.fill("#id_password", "a-long-browser-test-password")
    page.click("input[type=submit]")
    page.wait_for_selector("#user-tools")

    page.goto(example_server.url(f"/admin/agent_runtime/journey/?q={conversation}"))
    rows = page.locator("#result_list tbody tr")
    assert rows.count() == 1, page.inner_text("#content")
    row_text = rows.first.inner_text()
    assert "onboarding" in row_text.lower()
    assert re.search(r"complete", row_text, re.IGNORECASE), row_text
    shot("admin journey list")

    rows.first.locator("th a, td a").first.click()
    page.wait_for_load_state()
    detail = page.inner_text("#content")
    assert re.search(r"complete", detail, re.IGNORECASE)
    # The transcript: what the user said and what the journey answered.
    for text in ("My name is Ada Lovelace", "ada@example.com", "You're all set, Ada Lovelace"):
        assert text in detail, f"{text!r} missing from the admin's journey page"
    shot("admin journey detail")


def test_quote_through_the_front_desk_with_a_refused_age(
    page: Any, example_server: ExampleServer, shot: Callable[[str], Path]
) -> None:
    open_chat(page, example_server)
    assert page.input_value("#agent-select") == "front-desk"

    reply = say(page, "Hello")
    assert "open an account, get a quote, or file a claim?" in reply

    reply = say(page, "I'd like a quote for my car")
    assert "How old is the main driver?" in reply
    assert page.get_attribute('[data-testid="journey-name"]', "data-journey") == "quote"
    assert step(page) == "add_driver"

    # Out of range: refused by the tool, the step stays, and the user is asked again.
    reply = say(page, "I'm 15")
    assert "15 is out of range" in reply
    assert step(page) == "add_driver"
    shot("age refused")

    reply = say(page, "OK, the driver is 19")
    assert "Driver 1 added (age 19)" in reply
    assert step(page) == "more_drivers"

    reply = say(page, "yes")
    reply = say(page, "47")
    assert "Driver 2 added (age 47)" in reply
    reply = say(page, "no")
    assert step(page) == "start_date"

    start = (dt.date.today() + dt.timedelta(days=7)).isoformat()
    reply = say(page, start)
    assert "Would you like to accept this quote?" in reply
    assert step(page) == "review"
    shot("quote priced")

    # Binding the policy waits for the user's confirmation (people in the loop).
    reply = say(page, "yes")
    assert "please confirm: accept this quote and bind the policy" in reply, reply
    assert step(page) == "review"
    reply = say(page, "yes")
    assert re.search(r"Your quote reference is Q-[0-9A-F]{6}", reply), reply
    assert step(page) == "complete"
    assert page.locator('[data-testid="complete-banner"]').is_visible()
    shot("quote complete")


def test_reload_resumes_and_start_over_begins_afresh(
    page: Any, example_server: ExampleServer, shot: Callable[[str], Path]
) -> None:
    open_chat(page, example_server)
    conversation = choose(page, "claim")
    reply = say(page, "My policy number is POL-123456")
    assert "On what date did it happen?" in reply
    assert step(page) == "incident_date"

    # A reload brings the same conversation back, transcript and progress included.
    page.reload()
    page.wait_for_selector(f'{APP}[data-ready="true"]')
    wait_idle(page)
    assert conversation_id(page) == conversation
    assert page.input_value("#agent-select") == "claim"
    assert step(page) == "incident_date"
    transcript = page.inner_text('[data-testid="transcript"]')
    assert "My policy number is POL-123456" in transcript
    assert "On what date did it happen?" in transcript
    shot("resumed")

    page.click('[data-testid="start-over"]')
    page.wait_for_function(
        "before => document.getElementById('chat-app').dataset.conversationId !== before",
        arg=conversation,
    )
    wait_idle(page)
    assert step(page) == ""
    assert page.locator('[data-testid="message"]').count() == 0
    reply = say(page, "POL-654321")
    assert "policy POL-654321" in reply

    # A remembered conversation that is not ours (or gone) is not shown: a new one starts.
    bogus = "00000000-0000-4000-8000-000000000000"
    page.evaluate(
        "id => localStorage.setItem('agent-runtime-example:conversation',"
        " JSON.stringify({id: id, agent: 'claim'}))",
        bogus,
    )
    page.reload()
    page.wait_for_selector(f'{APP}[data-ready="true"]')
    wait_idle(page)
    assert conversation_id(page) not in (bogus, "")
    assert page.locator('[data-testid="error"]').is_hidden()


def test_the_server_runs_on_a_fresh_database_of_the_suite_s_kind(
    example_server: ExampleServer,
) -> None:
    out = example_server.manage(
        "shell",
        "-c",
        "from django.db import connection as c; print(c.vendor, c.settings_dict['NAME'])",
    )
    vendor, name = out.strip().splitlines()[-1].split()
    if os.environ.get("DATABASE_URL", "").startswith("postgres"):
        assert vendor == "postgresql" and name.startswith("art_browser_")
    else:
        assert vendor == "sqlite" and "art_browser_" in name


@pytest.mark.parametrize("path", ["/", "/api/agents", "/admin/login/", "/static/chat/chat.js"])
def test_pages_answer(example_server: ExampleServer, path: str) -> None:
    import urllib.request

    with urllib.request.urlopen(example_server.url(path), timeout=10) as response:
        assert response.status == 200


def test_claim_journey_files_the_claim_with_the_backend(
    page: Any, example_server: ExampleServer, shot: Callable[[str], Path]
) -> None:
    open_chat(page, example_server)
    choose(page, "claim")
    incident = (dt.date.today() - dt.timedelta(days=3)).isoformat()
    turns = [
        ("I want to file a claim", "policy_number", "What is your policy number?"),
        ("It's POL-123456", "incident_date", "On what date did it happen?"),
        (incident, "incident_kind", "collision, theft, fire"),
        ("theft", "description", "Sorry to hear about the theft"),
        ("My bike was stolen from the garden shed", "amount", "how much"),
        ("about 1200", "confirm", "Shall I file it now?"),
    ]
    for text, expected_step, expected_reply in turns:
        reply = say(page, text)
        assert expected_reply.lower() in reply.lower(), (text, reply)
        assert step(page) == expected_step
    shot("claim ready to file")

    reply = say(page, "yes")
    assert re.search(r"Your claim reference is CLM-", reply), reply
    assert step(page) == "complete"
    assert page.locator('[data-testid="complete-banner"]').is_visible()
    shot("claim filed")
