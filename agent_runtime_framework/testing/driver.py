"""JourneyDriver: play a conversation turn by turn and assert on each turn."""

from __future__ import annotations

import uuid
from typing import Any

from ..agents.context import AgentContext, AgentResult

__all__ = ["JourneyDriver"]


class JourneyDriver:
    """Drives an agent (``JourneyAgent`` or ``RoutedJourneyAgent``) through one conversation."""

    def __init__(self, agent: Any, conversation_id: Any = None, **metadata: Any) -> None:
        self.agent = agent
        self.conversation_id = conversation_id or uuid.uuid4()
        self.metadata = metadata
        self.turns: list[AgentResult] = []

    async def say(self, text: str) -> AgentResult:
        """One user message, one turn; returns the turn's result."""
        ctx = AgentContext.for_message(self.conversation_id, text, **self.metadata)
        result = await self.agent.run(ctx)
        self.turns.append(result)
        return result

    @property
    def last(self) -> AgentResult:
        if not self.turns:
            raise AssertionError("no turn has been played yet: call say() first")
        return self.turns[-1]

    @property
    def state(self) -> Any:
        return self.last.state

    @property
    def step(self) -> Any:
        return self.last.step

    @property
    def reply(self) -> str:
        return self.last.response

    @property
    def tool_calls(self) -> list[str]:
        """Names of the tools that ran (status ok) in the last turn."""
        return [c.name for c in self.last.tool_calls if c.status == "ok"]

    @property
    def rejected_calls(self) -> list[str]:
        return [c.name for c in self.last.tool_calls if c.status != "ok"]

    def assert_step(self, step: Any) -> None:
        if self.step != step:
            raise AssertionError(f"expected step {step!r}, journey is at {self.step!r}")

    async def history(self) -> list[dict[str, Any]]:
        return await self.agent.memory.conversation_store.get_messages(self.conversation_id)
