"""One conversation open in two tabs of the chat page (issue 13): each tab shows its own
turns once, and the other tab's turn live (its message and reply), attributed by run id."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.browser.chatpage import APP, choose, conversation_id, open_chat, say, wait_idle
from tests.browser.harness import ExampleServer, queued_site

MESSAGES = '[data-testid="message"]'


def _texts(page: Any, role: str) -> list[str]:
    locator = page.locator(f'{MESSAGES}[data-role="{role}"]')
    return [str(text).strip() for text in locator.all_inner_texts()]


def _other_tab_turn(page: Any, text: str) -> None:
    """Wait until ``page`` shows another tab's message ``text`` and its final reply."""
    page.wait_for_function(
        """text => {
            const users = [...document.querySelectorAll(
                '[data-testid="message"][data-role="user"][data-other-tab="true"]')];
            const mine = users.find(u => u.innerText.includes(text));
            if (!mine) return false;
            let next = mine.nextElementSibling;
            while (next && next.dataset.role !== "assistant") next = next.nextElementSibling;
            return !!next && next.dataset.final === "true" && next.innerText.trim() !== "";
        }""",
        arg=text,
    )


def test_a_second_tab_shows_the_first_tab_s_turn_live_and_each_tab_its_own_once(
    page: Any, example_server: ExampleServer, shot: Callable[[str], Path]
) -> None:
    open_chat(page, example_server)
    conversation = choose(page, "claim")
    second = page.context.new_page()  # same session and storage: the same conversation
    open_chat(second, example_server)
    assert conversation_id(second) == conversation
    second.wait_for_timeout(700)  # past the replay of stored events

    reply = say(page, "My policy number is POL-123456")
    assert "On what date did it happen?" in reply
    _other_tab_turn(second, "POL-123456")
    assert reply in _texts(second, "assistant")
    # The first tab shows its own turn once (its run.started is recognised as its own).
    assert _texts(page, "user") == ["My policy number is POL-123456"]
    assert _texts(page, "assistant") == [reply]
    shot("first tab")

    # And the other way round.
    answer = say(second, "It happened on 2026-11-03")
    _other_tab_turn(page, "2026-11-03")
    assert answer in _texts(page, "assistant")
    assert _texts(second, "user").count("It happened on 2026-11-03") == 1
    assert page.locator(f"{APP} [data-testid='error']").is_hidden()
    wait_idle(page)
    second.close()


def test_the_chat_page_in_queued_mode_gets_its_reply_from_a_worker(
    page: Any, shot: Callable[[str], Path]
) -> None:
    """``TURNS = "queued"``: the page's POST is answered 202 and a worker (django-tasks-db)
    plays the turn; the page follows the run and shows the reply, streamed live."""
    with queued_site("tasks") as site:
        page.goto(site.webs[0] + "/")
        page.wait_for_selector(f'{APP}[data-ready="true"]')
        wait_idle(page)
        choose(page, "claim")
        reply = say(page, "My policy number is POL-123456")
        assert "On what date did it happen?" in reply
        assert _texts(page, "user") == ["My policy number is POL-123456"]
        assert _texts(page, "assistant") == [reply]
        shot("queued reply")
        # The next message: the run's status says done, never a stale reply.
        second = say(page, "It happened on 2026-11-03")
        # The stream's own events of these turns may arrive after the replies (SQLite
        # polls every 2 s): they must not show this tab's turns again as another tab's.
        page.wait_for_timeout(2500)
        assert second != reply and _texts(page, "assistant") == [reply, second]
        assert len(_texts(page, "user")) == 2
