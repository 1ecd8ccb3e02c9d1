"""Conversation control on the example's chat page, in chromium, with the stand-in.

A user starts a car quote at the front desk, changes their mind and files a claim, finishes
the claim, then goes back to the quote from the "Paused journeys" panel and finishes it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tests.browser.chatpage import choose, open_chat, say, step

if TYPE_CHECKING:
    from tests.browser.harness import ExampleServer


def test_quote_switch_to_claim_finish_it_then_resume_the_quote(
    page: Any, example_server: ExampleServer, shot: Callable[[str], Path]
) -> None:
    open_chat(page, example_server)
    choose(page, "front-desk")
    panel = page.locator('[data-testid="parked-panel"]')

    assert "How old is the" in say(page, "I'd like a quote for my car")
    assert step(page) == "add_driver"
    assert panel.is_hidden()

    reply = say(page, "Actually no, I want to file a claim instead")
    assert "What is your policy number?" in reply
    assert step(page) == "policy_number"
    page.wait_for_selector('[data-testid="resume-quote"]')
    assert panel.is_visible()
    shot("quote parked, claim running")

    incident = (dt.date.today() - dt.timedelta(days=3)).isoformat()
    for text in (
        "It's POL-123456",
        incident,
        "theft",
        "My bike was stolen from the shed",
        "about 1200",
    ):
        say(page, text)
    assert "Your claim reference is CLM-" in say(page, "yes")
    assert step(page) == "complete"

    # Back to the parked quote through the panel: it resumes at the step it was parked at.
    replies = page.locator('[data-testid="message"][data-role="assistant"][data-final="true"]')
    before = replies.count()
    page.click('[data-testid="resume-quote"]')
    page.wait_for_function(
        """count => document.querySelectorAll(
            '[data-testid="message"][data-role="assistant"][data-final="true"]').length > count
            && document.getElementById("chat-app").dataset.busy === "false" """,
        arg=before,
    )
    assert "driver" in replies.nth(before).inner_text()
    assert step(page) == "add_driver"
    shot("quote resumed")

    start = (dt.date.today() + dt.timedelta(days=7)).isoformat()
    for text in ("19", "no", start):
        say(page, text)
    assert "please confirm: accept this quote" in say(page, "yes")  # binding waits for it
    assert "Your quote reference is Q-" in say(page, "yes")
    assert step(page) == "complete"
    page.wait_for_function("() => document.getElementById('parked-panel').hidden === true")
    shot("both journeys finished")
