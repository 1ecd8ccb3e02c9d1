"""Redaction: the default redactor, event payloads, and (opt-in) stored messages."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from agent_runtime_framework.django.host.registry import register_runtime, unregister_runtime
from agent_runtime_framework.django.models import JourneyEvent, JourneyMessage
from agent_runtime_framework.django.store.db import run_db
from agent_runtime_framework.django.store.events import json_safe, record_event
from agent_runtime_framework.django.store.redaction import (
    default_redactor,
    luhn_valid,
    redact_message,
)
from agent_runtime_framework.testing import ScriptedLLM
from tests.journeys import OnboardingAgent

REDACT = "agent_runtime_framework.django.store.redaction.default_redactor"
EMAIL = "ada.lovelace@example.co.uk"
PHONE = "+44 20 7946 0958"
CARD = "4111 1111 1111 1111"
SECRETS = (EMAIL, PHONE, CARD, "4111", "7946", "lovelace")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"mail me at {EMAIL}.", "mail me at [email]."),
        (f"call {PHONE} now", "call [phone] now"),
        ("or (555) 010-9999 / 555.010.9999", "or [phone] / [phone]"),
        ("bare 5550109999", "bare [phone]"),
        (f"card {CARD}, exp 12/29", "card [card], exp 12/29"),
        ("amex 3782-822463-10005", "amex [card]"),
        ("5555555555554444", "[card]"),
        # left alone: dates, short ids and amounts, Luhn-invalid 16 digits, versions
        ("born 1990-04-12, order 1234567, 1200 EUR", "born 1990-04-12, order 1234567, 1200 EUR"),
        ("4111 1111 1111 1112", "4111 1111 1111 1112"),
        ("v1.2.3 and id abc123456789", "v1.2.3 and id abc123456789"),
    ],
)
def test_default_redactor(text: str, expected: str) -> None:
    assert default_redactor(text) == expected


def test_luhn() -> None:
    assert luhn_valid("4111111111111111") and luhn_valid("378282246310005")
    assert not luhn_valid("4111111111111112")


def test_payloads_are_redacted_and_cut_in_one_pass() -> None:
    text = "x" * 9 + f" {EMAIL} and more text after it"
    cut = json_safe({"t": text, "n": [f"{PHONE}"]}, 15, redact=default_redactor)
    assert cut["t"] == "xxxxxxxxx [emai…[truncated 25 chars]"
    assert cut["n"] == ["[phone]"]
    assert "lovelace" not in json.dumps(cut)
    # without a redactor json_safe is unchanged
    assert json_safe({"t": EMAIL}, 100) == {"t": EMAIL}


def test_messages_keep_valid_tool_call_json() -> None:
    message = {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "c1",
                "type": "function",
                "function": {"name": "save", "arguments": json.dumps({"card": CARD, "n": 3})},
            }
        ],
    }
    out = redact_message(message, default_redactor)
    assert json.loads(out["tool_calls"][0]["function"]["arguments"]) == {"card": "[card]", "n": 3}
    assert (
        message["tool_calls"][0]["function"]["arguments"]
        != out["tool_calls"][0]["function"]["arguments"]
    )  # the original is not changed


# -- through the host, on the database ------------------------------------------------------


def _script() -> ScriptedLLM:
    return (
        ScriptedLLM()
        .call("start")
        .reply("Hi! What's your name?")
        .call("save_name", name=f"Ada, phone {PHONE}, card {CARD}")
        .reply(f"Thanks! I noted {PHONE}. Your email?")
        .call("save_email", email=EMAIL)
        .reply(f"All set, we will write to {EMAIL}.")
    )


@pytest.fixture
def agent() -> Iterator[OnboardingAgent]:
    agent = OnboardingAgent(llm_client=_script())
    register_runtime(agent)
    yield agent
    unregister_runtime(agent.key)


async def _play(agent: OnboardingAgent) -> str:
    from agent_runtime_framework.django.host.turns import run_turn

    first = await run_turn(agent.key, None, "hello")
    cid = first.conversation_id
    await run_turn(None, cid, f"I am Ada, {PHONE}, card {CARD}")
    last = await run_turn(None, cid, f"it is {EMAIL}")
    assert last.complete
    return cid


def _payloads(cid: str) -> str:
    rows = JourneyEvent.objects.filter(conversation_id=cid).order_by("id")
    return json.dumps([(r.type, r.payload) for r in rows])


def _messages(cid: str) -> list[dict[str, Any]]:
    rows = JourneyMessage.objects.filter(conversation_id=cid).order_by("seq")
    return [r.to_message() for r in rows]


@pytest.mark.django_db
async def test_events_are_redacted_messages_are_not_by_default(
    settings: Any, agent: OnboardingAgent
) -> None:
    settings.AGENT_RUNTIME_FRAMEWORK = {"REDACT": REDACT}
    cid = await _play(agent)
    stored = await run_db(_payloads, cid)
    for secret in SECRETS:
        assert secret not in stored
    events = json.loads(stored)
    calls = [p for t, p in events if t == "tool.call"]
    assert calls[1]["arguments"] == {"name": "Ada, phone [phone], card [card]"}
    assert calls[2]["arguments"] == {"email": "[email]"}
    results = [p["result"] for t, p in events if t == "tool.result"]
    assert "Great, Ada, phone [phone], card [card]!" in results[1]
    replies = [p["content"] for t, p in events if t == "assistant.message"]
    assert replies[-2:] == [
        "Thanks! I noted [phone]. Your email?",
        "All set, we will write to [email].",
    ]
    # The journey's state and the messages are the real data (the model needs them).
    messages = json.dumps(await run_db(_messages, cid))
    assert EMAIL in messages and CARD in messages
    # The sync writer redacts too.
    row = await run_db(
        record_event, uuid.uuid4(), "progress.update", {"note": EMAIL}, conversation_id=cid
    )
    assert row.payload == {"note": "[email]"}


@pytest.mark.django_db
async def test_messages_are_redacted_when_opted_in(settings: Any, agent: OnboardingAgent) -> None:
    settings.AGENT_RUNTIME_FRAMEWORK = {"REDACT": REDACT, "REDACT_MESSAGES": True}
    cid = await _play(agent)
    messages = await run_db(_messages, cid)
    dumped = json.dumps(messages)
    for secret in SECRETS:
        assert secret not in dumped
    users = [m["content"] for m in messages if m["role"] == "user"]
    assert users == ["hello", "I am Ada, [phone], card [card]", "it is [email]"]
    calls = [c for m in messages for c in m.get("tool_calls") or ()]
    assert [json.loads(c["function"]["arguments"]) for c in calls] == [
        {},
        {"name": "Ada, phone [phone], card [card]"},
        {"email": "[email]"},
    ]
    # Documented consequence: later turns read the redacted history.
    last_call = agent.llm_client.calls[-1]
    assert "I am Ada, [phone], card [card]" in json.dumps(last_call.messages)
    stored = await run_db(_payloads, cid)
    assert EMAIL not in stored


@pytest.mark.django_db
def test_messages_with_staff_are_redacted_like_the_model_s(settings: Any) -> None:
    """While a person has the conversation, the user's messages and the staff's replies are
    stored through the same write path as every other message, so REDACT_MESSAGES masks
    them too (the staff member's name stays in the row's metadata)."""
    from django.contrib.auth import get_user_model

    from agent_runtime_framework.django.host import handoff
    from agent_runtime_framework.django.store.orm import ensure_conversation_sync

    settings.AGENT_RUNTIME_FRAMEWORK = {"REDACT": REDACT, "REDACT_MESSAGES": True}
    staff = get_user_model().objects.create_superuser("carol", "carol@example.com", "pw")
    cid = uuid.uuid4()
    ensure_conversation_sync(cid, "onboarding-agent")
    assert handoff.request_handoff(cid, "asked for a person")
    assert handoff.intercept_turn_sync(cid, "onboarding-agent", f"call me on {PHONE}")
    handoff.take_over(cid, staff)
    handoff.staff_reply(cid, staff, f"We will write to {EMAIL}")
    rows = list(JourneyMessage.objects.filter(conversation_id=cid).order_by("seq"))
    assert [(r.role, r.content) for r in rows] == [
        ("user", "call me on [phone]"),
        ("assistant", "We will write to [email]"),
    ]
    assert rows[0].metadata == {"handoff": True}
    assert rows[1].metadata["staff"]["id"] == staff.pk
    stored = json.dumps([r.content for r in rows])
    assert not any(secret in stored for secret in SECRETS)
