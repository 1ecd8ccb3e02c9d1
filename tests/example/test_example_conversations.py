"""The example's conversation files (``tests/example/conversations/``): with the stand-in
too, and their journey coverage: every step and tool, and the transitions still untested.

pytest collects and plays the files itself (scripted model by default); these tests pin
what the files cover, so a journey change that needs a new conversation is noticed.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from agent_runtime_framework.testing.conversations import Conversation, load_conversations
from agent_runtime_framework.testing.coverage import JourneyCoverage, install

FILES = sorted(
    path
    for path in (Path(__file__).parent / "conversations").iterdir()
    if path.name.startswith("conversation_") or ".conversation." in path.name
)
CONVERSATIONS = [conversation for path in FILES for conversation in load_conversations(path)]


@pytest.mark.parametrize(
    "conversation",
    [c for c in CONVERSATIONS if c.runs_with("standin")],
    ids=lambda c: c.name,
)
async def test_the_conversations_hold_with_the_standin(conversation: Conversation) -> None:
    await conversation.play("standin")


async def test_the_conversations_reach_every_step_and_name_the_untested_transitions() -> None:
    coverage = JourneyCoverage()
    undo = install(coverage)
    try:
        for conversation in CONVERSATIONS:
            await conversation.play("scripted")
    finally:
        undo()
    usage = {u.label.split()[0]: u for u in coverage.journeys.values()}
    assert sorted(usage) == ["claim", "onboarding", "quote"]
    for journey in usage.values():
        assert journey.missing_steps() == [], journey.label
        assert journey.missing_tools() == [], journey.label
        assert journey.unforeseen_transitions() == [], journey.label
    # Declining (the quote at review, the claim at confirm) is the next thing to write.
    assert usage["onboarding"].missing_transitions() == []
    assert usage["quote"].missing_transitions() == [("review", "choose_cover")]
    assert usage["claim"].missing_transitions() == [("confirm", "incident_date")]
    report = coverage.report_lines()
    assert "  transitions never taken: review -> choose_cover" in report
    assert "  transitions never taken: confirm -> incident_date" in report
