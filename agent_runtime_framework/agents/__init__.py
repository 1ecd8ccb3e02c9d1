"""Agents: journeys on top of the executor loop, and the router in front of them."""

from .base import BaseAgent, LLMClient
from .context import AgentContext, AgentMessage, AgentResult, JourneyConfig
from .introspect import journey_progress, journey_steps, step_progress, step_value
from .journey import JourneyAgent, JourneyToolExecutor, new_input_messages
from .routed import RoutedJourneyAgent

__all__ = [
    "AgentContext",
    "AgentMessage",
    "AgentResult",
    "BaseAgent",
    "JourneyAgent",
    "JourneyConfig",
    "JourneyToolExecutor",
    "LLMClient",
    "RoutedJourneyAgent",
    "journey_progress",
    "journey_steps",
    "new_input_messages",
    "step_progress",
    "step_value",
]
