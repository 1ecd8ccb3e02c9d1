"""People in the loop, the core half: the built-in escalation tool ``talk_to_a_person``.

A journey that offers it (``JourneyConfig(offer_escalation=True)``, the class attribute
``JourneyAgent.offer_escalation``, or a host default passed in the run's metadata) gets
the tool at every step. Its call only records the request and ends the run, like
``switch_journey``: the journey's state and step stay as they are, so it resumes there
when the conversation is handed back. What "handed to a person" means (who answers, where
it is stored) is the host's: the Django app reads ``AgentResult.metadata["escalation"]``.
"""

from __future__ import annotations

from typing import Any

from ..tools.base import ToolResult
from ..tools.schema import ToolSchema, ToolSchemaBuilder

__all__ = [
    "DEFAULT_HANDOFF_REPLY",
    "ESCALATED_PREFIX",
    "ESCALATION_DEFAULT_KEY",
    "ESCALATION_KEY",
    "ESCALATION_TOOL",
    "Escalation",
    "escalation_enabled",
]

#: The built-in tool's name (models and the offline stand-in know it by this name).
ESCALATION_TOOL = "talk_to_a_person"
#: ``AgentContext.metadata`` key under which a host lends a run its ``Escalation``.
ESCALATION_KEY = "_arf_escalation"
#: ``AgentContext.metadata`` key: the host's default for journeys that do not say.
ESCALATION_DEFAULT_KEY = "_arf_escalation_default"
#: How the tool's result begins.
ESCALATED_PREFIX = "Handed to a person"
#: What the user is told while a person has not answered yet (hosts may configure it).
DEFAULT_HANDOFF_REPLY = "I've passed this conversation to a person. They will answer you here."


def escalation_enabled(agent: Any, metadata: dict[str, Any]) -> bool:
    """Whether ``agent`` offers the tool: its config, else its class, else the host default."""
    config = getattr(agent, "config", None)
    chosen = getattr(config, "offer_escalation", None)
    if chosen is None:
        chosen = getattr(agent, "offer_escalation", None)
    if chosen is None:
        chosen = metadata.get(ESCALATION_DEFAULT_KEY, False)
    return bool(chosen)


_SCHEMA: list[ToolSchema] = []


def _schema() -> ToolSchema:
    """The tool's schema, built once (hosts lend an ``Escalation`` to every turn)."""
    if not _SCHEMA:
        _SCHEMA.append(
            ToolSchemaBuilder(ESCALATION_TOOL)
            .description(
                "Hand the conversation to a person (a member of staff) when the user asks "
                "for a person, a human or an agent, or when you cannot help. The journey "
                "waits where it is and resumes when the person hands it back."
            )
            .param("reason", "string", "Why a person is needed, in a few words.")
            .build()
        )
    return _SCHEMA[0]


class Escalation:
    """One run's escalation tool and its outcome (the reason, once called).

    Calling it again in the same run changes nothing: the first reason stays.
    """

    __slots__ = ("reply", "requested", "schema")

    def __init__(self, reply: str = DEFAULT_HANDOFF_REPLY) -> None:
        self.reply = reply
        self.requested: str | None = None
        self.schema: ToolSchema = _schema()

    def tools(self) -> list[ToolSchema]:
        return [self.schema] if self.requested is None else []

    def request(self, reason: str) -> ToolResult:
        if self.requested is None:
            self.requested = (reason or "").strip()[:500] or "The user asked for a person."
        return ToolResult(content=f"{ESCALATED_PREFIX}. {self.reply}", data={"escalated": True})

    def outcome(self) -> dict[str, Any] | None:
        """``{"reason"}`` when the tool was called this run (for ``AgentResult.metadata``)."""
        return None if self.requested is None else {"reason": self.requested}
