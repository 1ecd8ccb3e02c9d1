"""The example journeys: onboarding (linear), quote (branching, loops, validation), claim
(backend client), and the front desk that routes between them.

``build_agents()`` returns every runtime the example registers, keyed as the HTTP API sees
them; ``JourneysConfig.ready()`` registers them.
"""

from __future__ import annotations

from typing import Any

from agent_runtime_framework import JourneyAgent

from .backend import ClaimsBackendClient
from .claim import ClaimAgent
from .front_desk import FRONT_DESK_KEY, Service, build_front_desk
from .onboarding import OnboardingAgent
from .quote import QuoteAgent

__all__ = ["FRONT_DESK_KEY", "build_agents"]


def build_agents(
    llm_client: Any = None, *, backend_client: ClaimsBackendClient | None = None
) -> dict[str, Any]:
    """The front desk first (the chat page's default), then each journey on its own.

    The front desk routes to the very same journey instances, so a journey is one object
    whichever way a conversation reaches it. ``llm_client`` None lets the host (or the
    agent itself) resolve the model from settings or the environment.
    """
    journeys: dict[Service, JourneyAgent[Any, Any, Any]] = {
        Service.ONBOARDING: OnboardingAgent(llm_client),
        Service.QUOTE: QuoteAgent(llm_client),
        Service.CLAIM: ClaimAgent(llm_client, backend_client=backend_client),
    }
    front_desk = build_front_desk(llm_client, journeys=journeys)
    agents: list[Any] = [front_desk, *journeys.values()]
    return {agent.key: agent for agent in agents}
