"""Helpers that drive the example chat page like a user, through its stable ids."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tests.browser.harness import ExampleServer

__all__ = ["APP", "choose", "conversation_id", "open_chat", "progress", "say", "step", "wait_idle"]

APP = "#chat-app"


def open_chat(page: Any, server: ExampleServer) -> None:
    """Load the page and wait until it has the agents and an open conversation."""
    page.goto(server.url("/"))
    page.wait_for_selector(f'{APP}[data-ready="true"]')
    wait_idle(page)


def wait_idle(page: Any) -> None:
    """No turn in flight, a conversation exists and its event stream is open."""
    page.wait_for_function(
        """() => {
            const app = document.getElementById("chat-app");
            return app.dataset.busy === "false" && !!app.dataset.conversationId
                && app.dataset.events === "open";
        }"""
    )


def conversation_id(page: Any) -> str:
    return str(page.get_attribute(APP, "data-conversation-id"))


def choose(page: Any, agent_key: str) -> str:
    """Pick an agent in the selector: a new conversation starts. Returns its id."""
    before = conversation_id(page)
    page.select_option("#agent-select", agent_key)
    page.wait_for_function(
        "before => document.getElementById('chat-app').dataset.conversationId !== before",
        arg=before,
    )
    wait_idle(page)
    return conversation_id(page)


def say(page: Any, text: str) -> str:
    """Send a message like a user (type, press Enter) and return the final reply."""
    replies = page.locator('[data-testid="message"][data-role="assistant"][data-final="true"]')
    count = replies.count()
    page.fill("#message-input", text)
    page.press("#message-input", "Enter")
    page.wait_for_function(
        """count => {
            const done = document.querySelectorAll(
                '[data-testid="message"][data-role="assistant"][data-final="true"]');
            return done.length > count
                && document.getElementById("chat-app").dataset.busy === "false";
        }""",
        arg=count,
    )
    assert page.locator('[data-testid="error"]').is_hidden(), page.inner_text("#error")
    return str(replies.nth(count).inner_text())


def step(page: Any) -> str:
    return str(page.get_attribute('[data-testid="step-label"]', "data-step"))


def progress(page: Any) -> str:
    return str(page.inner_text('[data-testid="progress-text"]'))
