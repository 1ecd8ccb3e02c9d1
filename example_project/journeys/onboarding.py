"""Onboarding: the seed's linear journey (welcome -> name -> email -> complete).

The smallest complete journey, written the way we recommend: a dataclass state (its
``to_dict``/``from_dict`` come for free), ``@tool`` methods whose schemas are derived from
type hints and docstrings, and prompts per step in a ``StepPromptMapping``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

from agent_runtime_framework import (
    BaseJourneyState,
    BaseJourneyTools,
    JourneyAgent,
    JourneyConfig,
    PromptManager,
    StepGroup,
    StepPromptMapping,
    ToolResult,
    tool,
)

__all__ = ["OnboardingAgent", "OnboardingState", "OnboardingStep", "OnboardingTools"]

# Letters (any script), spaces, hyphens, apostrophes and dots: "Ada Lovelace", "O'Neil".
_NAME = re.compile(r"[^\W\d_]+(?:[ .'\u2019-]+[^\W\d_]+)*\.?")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[A-Za-z]{2,}")
_MAX_NAME_WORDS = 4


class OnboardingStep(str, Enum):
    """The steps in order; the admin and the chat page show progress in this order."""

    WELCOME = "welcome"
    COLLECT_NAME = "collect_name"
    COLLECT_EMAIL = "collect_email"
    COMPLETE = "complete"


@dataclass
class OnboardingState(BaseJourneyState[OnboardingStep]):
    """What the journey knows about the new customer."""

    step: OnboardingStep = OnboardingStep.WELCOME
    name: str = ""
    email: str = ""

    def is_complete(self) -> bool:
        return self.step == OnboardingStep.COMPLETE


class OnboardingTools(BaseJourneyTools[OnboardingState]):
    """The actions the model may take; ``steps=`` says where each one is offered."""

    @tool(steps=[OnboardingStep.WELCOME])
    async def open_account(self) -> str:
        """Start opening an account when the user asks for one without giving their name."""
        self.state.step = OnboardingStep.COLLECT_NAME
        await self._notify_state_change()
        return "Happy to open an account for you. What is your name?"

    # Offered at WELCOME too, so "Hi, I'm Ada" as a first message moves on at once.
    # Revisable: "Actually, my name is Robert" at the email step corrects it and the
    # journey stays at the email step.
    @tool(steps=[OnboardingStep.WELCOME, OnboardingStep.COLLECT_NAME], revisable=True)
    async def save_name(self, name: str) -> str | ToolResult:
        """Save the user's name.

        Args:
            name: The user's name as they want to be addressed, e.g. "Ada Lovelace".
        """
        cleaned = " ".join(name.split())
        if _EMAIL.search(cleaned):
            return ToolResult.fail(
                "That looks like an email address; I'll ask for it next. First, what is your name?"
            )
        if not _NAME.fullmatch(cleaned) or len(cleaned.split()) > _MAX_NAME_WORDS:
            # Refuse rather than store a sentence as a name; the step stays put.
            return ToolResult.fail(
                'I just need your name, for example "Ada Lovelace". What is your name?'
            )
        self.state.name = cleaned
        self.state.step = OnboardingStep.COLLECT_EMAIL
        await self._notify_state_change()
        if self.revising is not None:
            return f"Thanks, I'll call you {cleaned}."
        return f"Great, {cleaned}! Now, what's your email address?"

    @tool(steps=[OnboardingStep.COLLECT_EMAIL])
    async def save_email(self, email: str) -> str | ToolResult:
        """Save the user's email address.

        Args:
            email: The user's email address, e.g. "ada@example.com".
        """
        email = email.strip()
        if not _EMAIL.fullmatch(email):
            return ToolResult.fail(
                f'"{email}" does not look like an email address. What is your email address?'
            )
        self.state.email = email.lower()
        self.state.step = OnboardingStep.COMPLETE
        await self._notify_state_change()
        return f"Perfect! You're all set, {self.state.name}. We'll write to {self.state.email}."


PROMPTS = StepPromptMapping[OnboardingStep](
    prompts={
        OnboardingStep.WELCOME: (
            "Welcome to Example Insurance! What is your name? "
            "You are opening an account for a new customer. When the user gives their "
            "name, save it with save_name; if they only ask for an account, start with "
            "the open_account tool."
        ),
        OnboardingStep.COLLECT_NAME: (
            "What is your name? Collect the user's name and save it with save_name."
        ),
        OnboardingStep.COLLECT_EMAIL: (
            "What is your email address, $name? "
            "Collect the user's email address and save it with save_email."
        ),
        OnboardingStep.COMPLETE: (
            "Thank the user for completing onboarding. The account for $name ($email) "
            "is open; offer help with a quote or a claim."
        ),
    }
)


class OnboardingAgent(JourneyAgent[OnboardingState, OnboardingTools, OnboardingStep]):
    """Opens an account: asks for a name, then an email address."""

    tools_class = OnboardingTools
    journey_config = JourneyConfig(
        name="Open an account",
        description="Sign up as a new customer: your name and email address.",
        stream=True,
    )
    prompts = PromptManager(
        PROMPTS, context_enricher=lambda s: {"name": s.name or "there", "email": s.email}
    )
    #: The welcome already asks for the name: welcome and collect_name are one position of
    #: progress ("name"), so "Hi, I'm Ada" moves from step 1 to step 2, not to step 3.
    step_groups = (StepGroup((OnboardingStep.WELCOME, OnboardingStep.COLLECT_NAME), name="name"),)
    step_transitions = {
        OnboardingStep.WELCOME: [OnboardingStep.COLLECT_NAME, OnboardingStep.COLLECT_EMAIL],
        OnboardingStep.COLLECT_NAME: [OnboardingStep.COLLECT_EMAIL],
        OnboardingStep.COLLECT_EMAIL: [OnboardingStep.COMPLETE],
    }

    @property
    def key(self) -> str:
        return "onboarding"

    def get_initial_state(self) -> OnboardingState:
        return OnboardingState()

    def get_system_prompt(self, state: OnboardingState) -> str:
        return self.prompts.get_prompt(state)
