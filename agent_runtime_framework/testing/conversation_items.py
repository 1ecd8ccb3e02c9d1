"""pytest collection of conversation files: one test item per conversation.

Kept apart from ``conversations`` so that playing a conversation from code needs no pytest
node machinery. Failures print the conversation so far and what differed
(``repr_failure``), not a traceback through the framework.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .conversations import Conversation, ConversationError, ConversationMismatch, load_conversations

__all__ = ["ConversationFile", "ConversationItem", "is_conversation_file"]

_SUFFIXES = (".yaml", ".yml", ".json")


def is_conversation_file(path: Path) -> bool:
    """``conversation_*.yaml|yml|json`` or ``*.conversation.yaml|yml|json``."""
    name = path.name
    if not name.endswith(_SUFFIXES):
        return False
    stem = name.rsplit(".", 1)[0]
    return stem.startswith("conversation_") or stem.endswith(".conversation")


class ConversationFile(pytest.File):
    """A conversation file; its conversations are its items."""

    def collect(self) -> Iterator[pytest.Item]:
        try:
            conversations = load_conversations(self.path)
        except ConversationError as exc:
            raise self.CollectError(str(exc)) from None
        for conversation in conversations:
            yield ConversationItem.from_parent(
                self, name=conversation.name, conversation=conversation
            )


class ConversationItem(pytest.Item):
    """Plays one conversation with the model chosen by ``--journey-model``."""

    def __init__(self, *, conversation: Conversation, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.conversation = conversation

    def runtest(self) -> None:
        mode = str(self.config.getoption("journey_model", "scripted") or "scripted")
        if not self.conversation.runs_with(mode):
            pytest.skip(
                f"conversation {self.conversation.name!r} is for models "
                f"{', '.join(self.conversation.models or ())}, not {mode!r}"
            )
        asyncio.run(self.conversation.play(mode))

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        if isinstance(excinfo.value, ConversationMismatch):
            return excinfo.value.report()
        if isinstance(excinfo.value, ConversationError):
            return f"conversation file error: {excinfo.value}"
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, None, f"conversation: {self.name}"
