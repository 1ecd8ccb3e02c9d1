"""The front desk: an ``IntentRouter`` that sends the user to the right journey.

The first message is routed: the model may call one of the routing tools; if it does not,
the routes' keywords decide. Later messages go straight to the chosen journey, and when
that journey completes the next message is routed afresh.

At any step the journey is also offered ``switch_journey``: "Actually no, I want to file a
claim instead" parks the quote (its answers and step kept) and starts the claim in the
same turn; "let's get back to my quote" resumes the quote where it was.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum
from typing import Any

from agent_runtime_framework import (
    IntentRouter,
    JourneyAgent,
    RouteDefinition,
    RoutedJourneyAgent,
)

from .backend import ClaimsBackendClient
from .claim import ClaimAgent
from .onboarding import OnboardingAgent
from .quote import QuoteAgent

__all__ = [
    "FRONT_DESK_KEY",
    "FRONT_DESK_PROMPT",
    "FrontDesk",
    "Service",
    "build_front_desk",
    "build_router",
]

FRONT_DESK_KEY = "front-desk"

FRONT_DESK_PROMPT = (
    "Welcome to Example Insurance! How can I help: open an account, get a quote, or "
    "file a claim? You are the front desk: call the tool of the service the user wants. "
    "If it is unclear, ask one short question."
)


class Service(str, Enum):
    """The journeys behind the front desk."""

    ONBOARDING = "onboarding"
    QUOTE = "quote"
    CLAIM = "claim"


def build_router() -> IntentRouter[Service]:
    """The routes; each becomes a parameterless tool the model can call."""
    return IntentRouter[Service](
        [
            RouteDefinition(
                journey=Service.ONBOARDING,
                name="open_account",
                description="The user wants to become a customer: sign up, register, "
                "or open an account.",
                keywords=[
                    *("account", "sign", "register", "join", "onboard", "customer"),
                    "email",
                ],
            ),
            RouteDefinition(
                journey=Service.QUOTE,
                name="request_quote",
                description="The user wants a price for new car or home insurance.",
                keywords=["quote", "price", "cost", "insure", "cover", "car", "home", "house"],
            ),
            RouteDefinition(
                journey=Service.CLAIM,
                name="file_claim",
                description="The user wants to report an accident, theft or damage, "
                "or claim under a policy.",
                keywords=["claim", "accident", "damage", "stolen", "theft", "crash", "incident"],
            ),
        ]
    )


class FrontDesk(RoutedJourneyAgent[Service]):
    """The router with a display name and description (shown by ``GET api/agents``)."""

    name = "Front desk"
    description = "Say what you need (an account, a quote or a claim) and you are routed."


def build_front_desk(
    llm_client: Any = None,
    *,
    journeys: Mapping[Service, JourneyAgent[Any, Any, Any]] | None = None,
    backend_client: ClaimsBackendClient | None = None,
) -> FrontDesk:
    """The front desk in front of ``journeys`` (new instances of the three when None).

    Passing the instances that are also registered on their own is fine: an agent holds
    no per-conversation data, and its journey rows are keyed by (agent key, conversation).
    """
    if journeys is None:
        journeys = {
            Service.ONBOARDING: OnboardingAgent(llm_client),
            Service.QUOTE: QuoteAgent(llm_client),
            Service.CLAIM: ClaimAgent(llm_client, backend_client=backend_client),
        }
    return FrontDesk(
        build_router(),
        journeys,
        llm_client,
        key=FRONT_DESK_KEY,
        routing_prompt=FRONT_DESK_PROMPT,
        # "talk to a person" at the front desk and at every step of its journeys: the
        # conversation goes to the admin's staff console (README: People in the loop).
        offer_escalation=True,
    )
