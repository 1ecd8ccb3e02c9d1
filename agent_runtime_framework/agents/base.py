"""``BaseAgent``: the smallest agent contract (a key and an async ``run``), 0.3.0's base.

``JourneyAgent`` and ``RoutedJourneyAgent`` are ``BaseAgent``s; hosts need nothing more
than this to run an agent. ``LLMClient`` is re-exported here from ``llm.base`` because
0.3.0 defined it in this module.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from ..llm.base import LLMClient
from .context import AgentContext, AgentMessage, AgentResult

__all__ = ["AgentContext", "AgentMessage", "AgentResult", "BaseAgent", "LLMClient"]


class BaseAgent(ABC):
    """An agent: a unique ``key`` and ``await agent.run(ctx) -> AgentResult``."""

    @property
    @abstractmethod
    def key(self) -> str:
        """Unique agent identifier (routing, persistence, logs)."""

    @abstractmethod
    async def run(self, ctx: AgentContext) -> AgentResult:
        """Play one turn."""
