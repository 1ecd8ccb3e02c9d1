"""Agents: journeys on top of the executor loop, and the router in front of them."""

from .base import BaseAgent, LLMClient
from .context import AgentContext, AgentMessage, AgentResult, JourneyConfig
from .control import SWITCH_TOOL, ConversationControl, JourneyNotParked, Revisions
from .introspect import journey_progress, journey_steps, step_progress, step_value
from .journey import JourneyAgent, JourneyToolExecutor, new_input_messages
from .people import ESCALATION_TOOL, Escalation
from .progress import StepGroup, journey_position
from .routed import RoutedJourneyAgent

__all__ = [
    "ESCALATION_TOOL",
    "SWITCH_TOOL",
    "AgentContext",
    "AgentMessage",
    "AgentResult",
    "BaseAgent",
    "ConversationControl",
    "Escalation",
    "JourneyAgent",
    "JourneyConfig",
    "JourneyNotParked",
    "JourneyToolExecutor",
    "LLMClient",
    "Revisions",
    "RoutedJourneyAgent",
    "StepGroup",
    "journey_position",
    "journey_progress",
    "journey_steps",
    "new_input_messages",
    "step_progress",
    "step_value",
]
