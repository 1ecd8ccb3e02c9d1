"""People in the loop (issue 11), in chromium, with two browser contexts: the user on the
example's chat page and a member of staff in the Django admin's staff console.

- Handoff: the user asks for a person through the front desk; staff take over, reply (the
  user sees the reply live, with the staff member's name), hand back; the quote resumes
  at its step and completes, the user confirming the binding by saying "yes".
- Approvals: a claim above ``CLAIM_APPROVAL_ABOVE`` waits for staff (the chat page says so,
  with no buttons); staff approve it in the admin and the user sees the claim filed. A
  quote (through the front desk) waits for the user, who presses Approve on the chat page
  (and, in a second quote, Reject: nothing is bound and the quote is still at its review).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser.chatpage import choose, conversation_id, open_chat, say, step
from tests.browser.harness import ARTIFACTS, ExampleServer

PASSWORD = "people-in-the-loop-pw-1"
HANDOFF_REPLY = "I've passed this conversation to a person"
CONFIRM = "Before I go ahead, please confirm: accept this quote and bind the policy."
PANEL = '[data-testid="approval-panel"]'
APPROVAL = '[data-testid="approval"]'
STAFF_MESSAGE = '[data-testid="message"][data-role="assistant"][data-staff]'


@pytest.fixture
def staff(
    browser: Any, example_server: ExampleServer, request: pytest.FixtureRequest
) -> Iterator[Any]:
    """A second browser context: a superuser logged into the admin."""
    username = "staff-" + re.sub(r"[^a-z0-9]+", "-", request.node.name.lower())[-40:].strip("-")
    example_server.manage(
        "createsuperuser",
        "--noinput",
        "--username",
        username,
        "--email",
        f"{username}@example.com",
        extra_env={"DJANGO_SUPERUSER_PASSWORD": PASSWORD},
    )
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    context.set_default_timeout(15_000)
    page = context.new_page()
    page.goto(example_server.url("/admin/login/"))
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_selector("#user-tools")
    page.username = username
    try:
        yield page
    finally:
        context.close()


def _staff_shot(page: Any, label: str) -> Path:
    folder = ARTIFACTS / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"people-in-the-loop-staff-{re.sub(r'[^A-Za-z0-9_.-]+', '-', label)}.png"
    page.screenshot(path=str(path), full_page=True, animations="disabled")
    return path


def _open_console(staff: Any, server: ExampleServer, cid: str) -> None:
    """The staff console's queue lists the conversation; its page opens from there."""
    staff.goto(server.url("/admin/agent_runtime/conversation/"))
    staff.click(f'a[href*="{cid}"]')
    staff.wait_for_selector("#handoff-status")


def _start_date() -> str:
    return (dt.date.today() + dt.timedelta(days=7)).isoformat()


def _to_review(page: Any) -> None:
    """A car quote up to its review (the price), on the current conversation."""
    say(page, "Car insurance, please")
    say(page, "The driver is 30")
    say(page, "no")
    assert "Would you like to accept this quote?" in say(page, _start_date())
    assert step(page) == "review"


def test_handoff_to_staff_and_back_then_the_quote_completes(
    staff: Any,
    example_server: ExampleServer,
    shot: Callable[[str], Path],
    page: Any,
) -> None:
    user = page  # the fixture's context; staff is the second one
    open_chat(user, example_server)
    cid = conversation_id(user)
    assert "How old is the main driver?" in say(user, "I'd like a quote for my car")
    assert step(user) == "add_driver"

    # The user asks for a person: the front desk hands the conversation to staff.
    assert HANDOFF_REPLY in say(user, "Can I talk to a person, please?")
    assert HANDOFF_REPLY in say(user, "I'm not sure about the excess")  # no model now
    shot("waiting for a person")

    # Staff: the queue lists it; take over, reply.
    _open_console(staff, example_server, cid)
    assert staff.inner_text("#handoff-status") == "Waiting for a person"
    staff.click('input[type=submit][value="Take over"]')
    staff.wait_for_selector('input[type=submit][value="Hand back to the assistant"]')
    user.wait_for_selector('[data-testid="note"]:has-text("joined the conversation")')
    staff.fill('textarea[name="content"]', "Hello, I'm from staff. The excess is 250.")
    staff.click('input[type=submit][value="Send"]')
    # The user sees it live (the event stream), with the staff member's name.
    reply = user.locator(STAFF_MESSAGE).filter(has_text="The excess is 250.")
    reply.wait_for()
    assert reply.get_attribute("data-staff") == staff.username
    shot("staff reply seen live")
    # What the user says meanwhile reaches the console (it polls every 3 s).
    say(user, "Thanks, that helps")
    staff.wait_for_selector('#transcript .art-text:has-text("Thanks, that helps")')
    _staff_shot(staff, "console with the user's message")

    # Hand back: the journey resumes at its step and completes.
    staff.click('input[type=submit][value="Hand back to the assistant"]')
    user.wait_for_selector('[data-testid="note"]:has-text("The assistant is back")')
    assert "Driver 1 added (age 30)" in say(user, "The driver is 30")
    assert step(user) == "more_drivers"
    say(user, "no")
    say(user, _start_date())
    assert step(user) == "review"
    # Accepting waits for the user's confirmation; they say yes in words.
    assert CONFIRM in say(user, "yes")
    approval = user.locator(APPROVAL)
    approval.wait_for()
    assert approval.get_attribute("data-approver") == "user"
    assert user.locator('[data-testid="approval-approve"]').is_visible()
    shot("quote waits for the user's confirmation")
    reply = say(user, "yes")
    assert re.search(r"Your quote reference is Q-[0-9A-F]{6}", reply), reply
    assert step(user) == "complete"
    user.wait_for_selector(PANEL, state="hidden")
    assert user.locator('[data-testid="complete-banner"]').is_visible()
    shot("quote complete after the handoff")


def test_a_large_claim_waits_for_staff_who_approve_it_in_the_admin(
    staff: Any, example_server: ExampleServer, shot: Callable[[str], Path], page: Any
) -> None:
    user = page
    open_chat(user, example_server)
    cid = choose(user, "claim")
    incident = (dt.date.today() - dt.timedelta(days=3)).isoformat()
    for text in ("It's POL-123456", incident, "theft", "My car was stolen from the drive"):
        say(user, text)
    assert "Shall I file it now?" in say(user, "about 25,000")
    reply = say(user, "yes")
    assert "This needs approval by our staff: file this claim" in reply
    assert step(user) == "confirm"
    # The chat page shows it waiting for staff, without buttons.
    approval = user.locator(APPROVAL)
    approval.wait_for()
    assert approval.get_attribute("data-approver") == "staff"
    assert user.locator('[data-testid="approval-waiting"]').inner_text() == "Waiting for staff"
    assert user.locator('[data-testid="approval-approve"]').count() == 0
    shot("claim waits for staff")

    # Staff approve it on the conversation's console page.
    _open_console(staff, example_server, cid)
    row = staff.locator("#approvals tr", has_text="confirm_claim")
    assert "pending" in row.inner_text()
    _staff_shot(staff, "claim approval pending")
    row.locator('input[type=submit][value="Approve"]').click()
    staff.wait_for_selector(".messagelist")
    assert "executed" in staff.locator("#approvals tr", has_text="confirm_claim").inner_text()

    # The user sees the decision and the claim filed, live, without sending anything.
    outcome = user.locator('[data-testid="approval-outcome"]')
    outcome.wait_for()
    assert outcome.get_attribute("data-outcome") == "executed"
    assert outcome.inner_text().startswith(f"Approved by {staff.username}")
    filed = user.locator('[data-testid="message"][data-approval-id]')
    assert "Your claim reference is CLM-" in filed.inner_text()
    user.wait_for_function(
        "() => document.querySelector('[data-testid=\"step-label\"]').dataset.step === 'complete'"
    )
    user.wait_for_selector(PANEL, state="hidden")
    shot("claim approved by staff")

    # After a reload the outcome is still in the transcript.
    user.reload()
    user.wait_for_selector('#chat-app[data-ready="true"]')
    assert "Your claim reference is CLM-" in user.inner_text('[data-testid="transcript"]')


def test_the_user_approves_a_quote_with_the_button_and_rejects_another(
    example_server: ExampleServer, shot: Callable[[str], Path], page: Any
) -> None:
    user = page
    open_chat(user, example_server)  # the front desk routes to the quote
    _to_review(user)
    assert CONFIRM in say(user, "yes")
    user.locator('[data-testid="approval-approve"]').wait_for()
    summary = user.inner_text('[data-testid="approval-summary"]')
    assert summary == "accept this quote and bind the policy"
    shot("quote waits for the button")
    user.click('[data-testid="approval-approve"]')
    outcome = user.locator('[data-testid="approval-outcome"]')
    outcome.wait_for()
    assert outcome.get_attribute("data-outcome") == "executed"
    assert outcome.inner_text().startswith("Approved by the user")
    bound = user.locator('[data-testid="message"][data-approval-id]')
    assert re.search(r"Your quote reference is Q-[0-9A-F]{6}", bound.inner_text())
    user.wait_for_selector(PANEL, state="hidden")
    user.wait_for_function(
        "() => document.querySelector('[data-testid=\"step-label\"]').dataset.step === 'complete'"
    )
    shot("quote approved with the button")

    # A second quote: Reject binds nothing; the quote stays at its review.
    choose(user, "quote")
    _to_review(user)
    assert CONFIRM in say(user, "yes")
    user.click('[data-testid="approval-reject"]')
    outcome = user.locator('[data-testid="approval-outcome"]')
    outcome.wait_for()
    assert outcome.get_attribute("data-outcome") == "rejected"
    assert user.locator('[data-testid="message"][data-approval-id]').count() == 0
    user.wait_for_selector(PANEL, state="hidden")
    assert step(user) == "review"
    shot("quote rejected with the button")
    # The journey goes on: the model reads the rejection; accepting asks again.
    assert CONFIRM in say(user, "yes")


def test_the_talk_to_a_person_button_hands_over_without_the_model(
    staff: Any, example_server: ExampleServer, shot: Callable[[str], Path], page: Any
) -> None:
    """The chat page's button asks for a person over HTTP, whatever the model would do;
    the conversation is then in the staff console's queue and the model stays silent."""
    open_chat(page, example_server)
    cid = conversation_id(page)
    page.click('[data-testid="talk-to-person"]')
    page.wait_for_selector('[data-testid="note"]:has-text("You asked for a person")')
    assert HANDOFF_REPLY in say(page, "Hello?")
    shot("asked for a person with the button")
    page.click('[data-testid="talk-to-person"]')
    page.wait_for_selector('[data-testid="note"]:has-text("A person already has")')
    _open_console(staff, example_server, cid)
    assert staff.inner_text("#handoff-status") == "Waiting for a person"
