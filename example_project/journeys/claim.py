"""Claim: collect the details of an incident, file it with a backend, end complete.

Shows the backend client pattern: the agent is built with a ``ClaimsBackendClient``,
hands it to its tools as ``backend_client``, and the last tool calls
``backend_client.file_claim(...)``; the reference it returns is kept in the state.

The date and the kind of incident are revisable: "sorry, it happened on 2026-11-28" at a
later step corrects the date and the journey stays where it was.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from enum import Enum
from typing import Any, Literal

from agent_runtime_framework import (
    AgentContext,
    BaseJourneyState,
    BaseJourneyTools,
    JourneyAgent,
    JourneyConfig,
    PromptManager,
    StepPromptMapping,
    ToolResult,
    tool,
)

from .backend import POLICY_NUMBER_PATTERN, ClaimRejected, ClaimsBackendClient
from .faq import PolicyFaqTools

__all__ = ["ClaimAgent", "ClaimState", "ClaimStep", "ClaimTools", "IncidentKind"]

IncidentKind = Literal["collision", "theft", "fire", "flood", "storm", "other"]

#: Incidents older than this are handled by phone, not online.
MAX_INCIDENT_AGE_DAYS = 365
MIN_DESCRIPTION_CHARS = 10
MIN_AMOUNT, MAX_AMOUNT = Decimal(50), Decimal(1_000_000)


class ClaimStep(str, Enum):
    """The steps in order."""

    POLICY_NUMBER = "policy_number"
    INCIDENT_DATE = "incident_date"
    INCIDENT_KIND = "incident_kind"
    DESCRIPTION = "description"
    AMOUNT = "amount"
    CONFIRM = "confirm"
    COMPLETE = "complete"


@dataclass
class ClaimState(BaseJourneyState[ClaimStep]):
    """The claim as collected so far, and its reference once filed."""

    step: ClaimStep = ClaimStep.POLICY_NUMBER
    policy_number: str = ""
    incident_date: dt.date | None = None
    kind: IncidentKind | None = None
    description: str = ""
    amount: Decimal | None = None
    claim_reference: str = ""

    def is_complete(self) -> bool:
        return self.step == ClaimStep.COMPLETE

    def summary(self) -> str:
        """The claim in one line, for the confirmation question."""
        when = self.incident_date.isoformat() if self.incident_date else "?"
        amount = f"{self.amount:,.2f}" if self.amount is not None else "?"
        return (
            f"policy {self.policy_number}, {self.kind or '?'} on {when}, "
            f'"{self.description}", estimated at {amount}'
        )


def needs_staff_approval(tools: Any, arguments: dict[str, Any]) -> bool:
    """Filing a claim above ``settings.CLAIM_APPROVAL_ABOVE`` waits for staff (issue 11)."""
    from django.conf import settings

    limit = getattr(settings, "CLAIM_APPROVAL_ABOVE", None)
    amount = tools.state.amount
    return bool(arguments.get("confirm")) and limit is not None and (amount or 0) > limit


class ClaimTools(PolicyFaqTools, BaseJourneyTools[ClaimState]):
    """Collecting tools, then ``confirm_claim`` which files through the backend client."""

    backend_client: ClaimsBackendClient

    @tool(steps=[ClaimStep.POLICY_NUMBER])
    async def save_policy_number(self, policy_number: str) -> str | ToolResult:
        """Save the policy number the claim is made under.

        Args:
            policy_number: The policy number, which looks like POL-123456.
        """
        # Lenient: accept "my policy is pol 123456." as well as "POL-123456".
        found = POLICY_NUMBER_PATTERN.search(policy_number.replace(" ", "-"))
        if found is None:
            return ToolResult.fail(
                "To start a claim I need your policy number; it looks like POL-123456 "
                "and is on your policy documents. What is your policy number?"
            )
        self.state.policy_number = f"POL-{found.group(1)}"
        self.state.step = ClaimStep.INCIDENT_DATE
        await self._notify_state_change()
        return f"Thanks, policy {self.state.policy_number}. On what date did it happen?"

    @tool(steps=[ClaimStep.INCIDENT_DATE], revisable=True)
    async def save_incident_date(self, incident_date: dt.date) -> str | ToolResult:
        """Save the date of the incident.

        Args:
            incident_date: The day the incident happened (not in the future).
        """
        today = dt.date.today()
        earliest = today - dt.timedelta(days=MAX_INCIDENT_AGE_DAYS)
        if incident_date > today:
            return ToolResult.fail(
                f"{incident_date.isoformat()} is in the future. On what date did it happen?"
            )
        if incident_date < earliest:
            return ToolResult.fail(
                f"Incidents before {earliest.isoformat()} can't be claimed online; please "
                "phone us. If the date was a typo, on what date did it happen?"
            )
        self.state.incident_date = incident_date
        self.state.step = ClaimStep.INCIDENT_KIND
        await self._notify_state_change()
        return "What happened: collision, theft, fire, flood, storm or other?"

    @tool(steps=[ClaimStep.INCIDENT_KIND], revisable=True)
    async def choose_incident_kind(self, kind: IncidentKind) -> str:
        """Record what kind of incident it was.

        Args:
            kind: collision, theft, fire, flood, storm or other.
        """
        self.state.kind = kind
        self.state.step = ClaimStep.DESCRIPTION
        await self._notify_state_change()
        return f"Sorry to hear about the {kind}. Please describe briefly what happened."

    @tool(steps=[ClaimStep.DESCRIPTION])
    async def describe_incident(self, description: str) -> str | ToolResult:
        """Save the user's short description of what happened.

        Args:
            description: What happened, in the user's words.
        """
        text = " ".join(description.split())
        if len(text) < MIN_DESCRIPTION_CHARS:
            return ToolResult.fail(
                "Could you say a little more about what happened (a sentence is enough)?"
            )
        self.state.description = text
        self.state.step = ClaimStep.AMOUNT
        await self._notify_state_change()
        return "Thank you. Roughly how much will the damage or loss cost, in full?"

    @tool(steps=[ClaimStep.AMOUNT])
    async def estimate_amount(self, amount: float) -> str | ToolResult:
        """Save the estimated cost of the damage or loss.

        Args:
            amount: The estimated cost as a number, e.g. 1200.
        """
        value = Decimal(str(amount)).quantize(Decimal("0.01"))
        if not MIN_AMOUNT <= value <= MAX_AMOUNT:
            return ToolResult.fail(
                f"The estimate must be between {MIN_AMOUNT:,} and {MAX_AMOUNT:,}; "
                f"{value:,} is out of range. Roughly how much will it cost, in full "
                "(e.g. 1,200)?"
            )
        self.state.amount = value
        self.state.step = ClaimStep.CONFIRM
        await self._notify_state_change()
        return (
            f"Here is your claim: {self.state.summary()}. Shall I file it now? "
            "Please answer yes or no."
        )

    @tool(
        steps=[ClaimStep.CONFIRM],
        needs_approval="staff",
        approval_if=needs_staff_approval,
        approval_summary=lambda args: "file this claim (its amount needs a person's approval)",
    )
    async def confirm_claim(self, confirm: bool) -> str | ToolResult:
        """File the claim with the claims system (True), or go back to fix details (False).

        Args:
            confirm: True to file the claim as summarised, False to change details.
        """
        if not confirm:
            self.state.step = ClaimStep.INCIDENT_DATE
            await self._notify_state_change()
            return "No problem, let's go through the details again. On what date did it happen?"
        state = self.state
        if state.incident_date is None or state.kind is None or state.amount is None:
            # Only reachable if the state was edited (e.g. reset in the admin).
            state.step = ClaimStep.INCIDENT_DATE
            await self._notify_state_change()
            return "Some details are missing, so let's go through them. When did it happen?"
        try:
            receipt = await self.backend_client.file_claim(
                policy_number=state.policy_number,
                incident_date=state.incident_date,
                kind=state.kind,
                description=state.description,
                amount=state.amount,
            )
        except ClaimRejected as exc:
            # The backend's refusal is for the user; the step stays at CONFIRM.
            return ToolResult.fail(f"I couldn't file the claim: {exc}")
        state.claim_reference = receipt.reference
        state.step = ClaimStep.COMPLETE
        await self._notify_state_change()
        return (
            f"Your claim is filed. Your claim reference is {receipt.reference}; "
            "an adjuster will contact you within two working days."
        )


PROMPTS = StepPromptMapping[ClaimStep](
    prompts={
        ClaimStep.POLICY_NUMBER: (
            "What is your policy number? You are filing an insurance claim for the user. "
            "Pass the policy number (like POL-123456) to save_policy_number."
        ),
        ClaimStep.INCIDENT_DATE: (
            "On what date did it happen? Today is $today. Pass the date to "
            "save_incident_date; if it is refused, explain why and ask again."
        ),
        ClaimStep.INCIDENT_KIND: (
            "What happened: collision, theft, fire, flood, storm or other? "
            "Call choose_incident_kind with the matching kind."
        ),
        ClaimStep.DESCRIPTION: (
            "Could you describe briefly what happened? Pass the user's description "
            "to describe_incident."
        ),
        ClaimStep.AMOUNT: (
            "Roughly how much will the damage or loss cost? Pass the amount to estimate_amount."
        ),
        ClaimStep.CONFIRM: (
            "Shall I file the claim now? The claim: $summary. Call confirm_claim with the "
            "user's yes or no."
        ),
        ClaimStep.COMPLETE: (
            "Thank the user for reporting the claim. Its reference is $reference; an "
            "adjuster will call within two working days."
        ),
    }
)


def _prompt_values(state: ClaimState) -> dict[str, Any]:
    return {
        "today": dt.date.today().isoformat(),
        "summary": state.summary(),
        "reference": state.claim_reference,
    }


class ClaimAgent(JourneyAgent[ClaimState, ClaimTools, ClaimStep]):
    """Files an insurance claim through ``backend_client``."""

    tools_class = ClaimTools
    journey_config = JourneyConfig(
        name="File a claim",
        description="Report an incident under your policy and get a claim reference.",
        stream=True,
    )
    prompts = PromptManager(PROMPTS, context_enricher=_prompt_values)

    def __init__(
        self,
        llm_client: Any = None,
        *,
        backend_client: ClaimsBackendClient | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(llm_client, **kwargs)
        self.backend_client = backend_client or ClaimsBackendClient()

    @property
    def key(self) -> str:
        return "claim"

    def get_initial_state(self) -> ClaimState:
        return ClaimState()

    def get_system_prompt(self, state: ClaimState) -> str:
        return self.prompts.get_prompt(state)

    def create_tools(self, state: ClaimState, ctx: AgentContext) -> ClaimTools:
        # The one override the claim needs: give the tools the backend client.
        return ClaimTools(state=state, backend_client=self.backend_client)
