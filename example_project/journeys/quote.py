"""Insurance quote: a journey that branches, loops and validates.

- Branching: the kind of cover (car or home) decides which steps come next.
- Loops: a car quote adds drivers until the user says there are no more; a home quote
  adds valuables the same way.
- Validation with retry: an out-of-range age, value or start date is refused by the tool
  (``ToolResult.fail``); the step does not change and the model asks again.
- Corrections: the kind of cover and the driver's age are revisable. A different cover
  clears the branch's answers (``invalidates``) and goes on from the new branch; a new
  age replaces the driver's and clears the price, so the dates and price are asked again.
- A global tool: ``policy_faq`` (``faq.py``) answers side questions at any step.
- A person in the loop: accepting the quote binds the policy only once the user confirms
  it (``needs_approval="user"``); they say yes (the built-in ``answer_approval`` tool) or
  press Approve on the chat page.
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from enum import Enum
from typing import Any, Literal

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

from .faq import PolicyFaqTools

__all__ = [
    "MAX_DRIVERS",
    "MAX_ITEMS",
    "CoverKind",
    "QuoteAgent",
    "QuoteState",
    "QuoteStep",
    "QuoteTools",
    "Valuable",
    "price_quote",
]

CoverKind = Literal["car", "home"]

MIN_DRIVER_AGE, MAX_DRIVER_AGE = 17, 99
MAX_DRIVERS = 4
MIN_HOME_VALUE, MAX_HOME_VALUE = 50_000, 5_000_000
MIN_ITEM_VALUE, MAX_ITEM_VALUE = 1_000, 100_000
MAX_ITEMS = 10
#: How far ahead the cover may start.
MAX_START_DAYS = 90


class QuoteStep(str, Enum):
    """All steps of both branches, in the order the admin and progress bar show them."""

    CHOOSE_COVER = "choose_cover"
    # car branch
    ADD_DRIVER = "add_driver"
    MORE_DRIVERS = "more_drivers"
    # home branch
    HOME_VALUE = "home_value"
    MORE_ITEMS = "more_items"
    ADD_ITEM = "add_item"
    # both
    START_DATE = "start_date"
    REVIEW = "review"
    COMPLETE = "complete"


@dataclass
class Valuable:
    """An item insured on its own under home cover."""

    description: str
    value: Decimal


@dataclass
class QuoteState(BaseJourneyState[QuoteStep]):
    """Everything the quote needs; nested dataclasses, dates and Decimals serialize as-is."""

    step: QuoteStep = QuoteStep.CHOOSE_COVER
    cover: CoverKind | None = None
    driver_ages: list[int] = field(default_factory=list)
    home_value: int | None = None
    valuables: list[Valuable] = field(default_factory=list)
    start_date: dt.date | None = None
    annual_premium: Decimal | None = None
    reference: str = ""

    def is_complete(self) -> bool:
        return self.step == QuoteStep.COMPLETE


def price_quote(state: QuoteState) -> Decimal:
    """A toy tariff: young and old drivers cost more; homes pay per value and valuable."""
    if state.cover == "car":
        premium = Decimal(320)
        for age in state.driver_ages:
            if age < 25:
                premium += Decimal(450)
            elif age >= 75:
                premium += Decimal(220)
            else:
                premium += Decimal(90)
    elif state.cover == "home":
        premium = Decimal(150) + Decimal(state.home_value or 0) * Decimal("0.0011")
        premium += sum((v.value * Decimal("0.015") for v in state.valuables), Decimal(0))
    else:
        raise ValueError("cannot price a quote before the kind of cover is chosen")
    return premium.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def _money(amount: Decimal | int) -> str:
    return f"{Decimal(amount):,.2f}" if Decimal(amount) % 1 else f"{int(amount):,}"


# "A bicycle worth 1200" -> "A bicycle": models (and the offline stand-in) sometimes pass
# the user's whole phrase as the description.
_VALUE_TAIL = re.compile(
    r"[\s,;:(-]*(?:(?:worth|valued\s+at|value|at|for|of|costs?|about|around)\s+)*"
    r"[£$€]?\s*\d[\d,.]*\s*(?:[£$€]|eur|euros?|usd|dollars?|pounds?|gbp)?\)?\s*$",
    re.IGNORECASE,
)


class QuoteTools(PolicyFaqTools, BaseJourneyTools[QuoteState]):
    """One tool per decision; each returns text written for the user."""

    @tool(
        steps=[QuoteStep.CHOOSE_COVER],
        revisable=True,
        # Another kind of cover makes the other branch's answers and the price stale.
        invalidates=["driver_ages", "home_value", "valuables", "start_date", "annual_premium"],
    )
    async def choose_cover(self, cover: CoverKind) -> str:
        """Choose the kind of cover to quote for.

        Args:
            cover: "car" for motor insurance, "home" for buildings and contents.
        """
        self.state.cover = cover
        if cover == "car":
            self.state.step = QuoteStep.ADD_DRIVER
            reply = "Car cover it is. How old is the main driver?"
        else:
            self.state.step = QuoteStep.HOME_VALUE
            reply = "Home cover it is. What would it cost to rebuild your home, in full?"
        await self._notify_state_change()
        return reply

    @tool(
        steps=[QuoteStep.ADD_DRIVER],
        revisable=True,
        # The price depends on the ages: once quoted, a new age asks for the date again.
        invalidates=["start_date", "annual_premium"],
    )
    async def add_driver(self, age: int) -> str | ToolResult:
        """Add a driver to the car policy.

        Args:
            age: The driver's age in years.
        """
        if not MIN_DRIVER_AGE <= age <= MAX_DRIVER_AGE:
            return ToolResult.fail(
                f"Sorry, we can only insure drivers aged {MIN_DRIVER_AGE} to {MAX_DRIVER_AGE}, "
                f"so {age} is out of range. How old is the driver?",
                data={"age": age},
            )
        if self.revising is not None and self.state.driver_ages:
            # A correction ("actually the driver is 30") replaces the last driver given.
            self.state.driver_ages[-1] = age
        else:
            self.state.driver_ages.append(age)
        self.state.step = QuoteStep.MORE_DRIVERS
        await self._notify_state_change()
        count = len(self.state.driver_ages)
        return (
            f"Driver {count} added (age {age}). "
            "Would you like to add another driver? Please answer yes or no."
        )

    @tool(steps=[QuoteStep.MORE_DRIVERS])
    async def more_drivers(self, add_another: bool) -> str | ToolResult:
        """Record whether the user wants to add another driver.

        Args:
            add_another: True to add another driver, False when all drivers are listed.
        """
        if add_another:
            if len(self.state.driver_ages) >= MAX_DRIVERS:
                return ToolResult.fail(
                    f"A policy can have at most {MAX_DRIVERS} drivers, and it has that "
                    "many already. Shall we carry on without more drivers?"
                )
            self.state.step = QuoteStep.ADD_DRIVER
            reply = "How old is the next driver?"
        else:
            self.state.step = QuoteStep.START_DATE
            reply = _ask_start_date()
        await self._notify_state_change()
        return reply

    @tool(steps=[QuoteStep.HOME_VALUE])
    async def set_home_value(self, rebuild_value: int) -> str | ToolResult:
        """Set what it would cost to rebuild the home.

        Args:
            rebuild_value: The rebuild cost as a whole number, e.g. 250000.
        """
        if not MIN_HOME_VALUE <= rebuild_value <= MAX_HOME_VALUE:
            return ToolResult.fail(
                f"The rebuild value must be between {MIN_HOME_VALUE:,} and "
                f"{MAX_HOME_VALUE:,}, so {rebuild_value:,} is out of range. What would it "
                "cost to rebuild your home, in full (e.g. 250,000)?"
            )
        self.state.home_value = rebuild_value
        self.state.step = QuoteStep.MORE_ITEMS
        await self._notify_state_change()
        return (
            f"Rebuild value set to {rebuild_value:,}. Do you have valuables worth over "
            f"{MIN_ITEM_VALUE:,} to insure separately? Please answer yes or no."
        )

    @tool(steps=[QuoteStep.MORE_ITEMS])
    async def more_items(self, add_another: bool) -> str | ToolResult:
        """Record whether the user wants to list a (further) valuable item.

        Args:
            add_another: True to list a valuable, False when there are no more.
        """
        if add_another:
            if len(self.state.valuables) >= MAX_ITEMS:
                return ToolResult.fail(
                    f"We can list at most {MAX_ITEMS} valuables online. Shall we carry on?"
                )
            self.state.step = QuoteStep.ADD_ITEM
            reply = 'What is the item and what is it worth? For example: "bicycle 1500".'
        else:
            self.state.step = QuoteStep.START_DATE
            reply = _ask_start_date()
        await self._notify_state_change()
        return reply

    @tool(steps=[QuoteStep.ADD_ITEM])
    async def add_item(self, description: str, value: float) -> str | ToolResult:
        """Add a valuable item to insure separately.

        Args:
            description: What the item is, e.g. "bicycle".
            value: What the item is worth, as a number.
        """
        described = _VALUE_TAIL.sub("", description).strip(" ,;:-") or description.strip()
        if not described:
            return ToolResult.fail("What is the item? For example: bicycle 1500.")
        amount = Decimal(str(value)).quantize(Decimal("0.01"))
        if not MIN_ITEM_VALUE <= amount <= MAX_ITEM_VALUE:
            return ToolResult.fail(
                f"Items are listed separately when worth {MIN_ITEM_VALUE:,} to "
                f"{MAX_ITEM_VALUE:,}; {_money(amount)} is out of range. What is the item "
                "and what is it worth?"
            )
        self.state.valuables.append(Valuable(description=described, value=amount))
        self.state.step = QuoteStep.MORE_ITEMS
        await self._notify_state_change()
        return (
            f"Added {described} ({_money(amount)}). Do you have another valuable to list? "
            "Please answer yes or no."
        )

    @tool(steps=[QuoteStep.START_DATE])
    async def set_start_date(self, start_date: dt.date) -> str | ToolResult:
        """Set the date the cover starts.

        Args:
            start_date: The first day of cover (today or up to 90 days ahead).
        """
        today = dt.date.today()
        latest = today + dt.timedelta(days=MAX_START_DAYS)
        if not today <= start_date <= latest:
            return ToolResult.fail(
                f"Cover can start between today ({today.isoformat()}) and "
                f"{latest.isoformat()}, so {start_date.isoformat()} is out of range. "
                "When should the cover start?"
            )
        self.state.start_date = start_date
        self.state.annual_premium = price_quote(self.state)
        self.state.step = QuoteStep.REVIEW
        await self._notify_state_change()
        return (
            f"Your {self.state.cover} cover from {start_date.isoformat()} costs "
            f"{_money(self.state.annual_premium)} a year. Would you like to accept this "
            "quote? Please answer yes or no."
        )

    @tool(
        steps=[QuoteStep.REVIEW],
        # Binding the policy waits for the user's explicit confirmation (issue 11);
        # declining (the quote starts over) does not.
        needs_approval="user",
        approval_if=lambda tools, args: bool(args.get("accept")),
        approval_summary=lambda args: "accept this quote and bind the policy",
    )
    async def accept_quote(self, accept: bool) -> str:
        """Accept the quote (it is issued) or decline it (the quote starts over).

        Args:
            accept: True if the user accepts the price, False to start over.
        """
        if accept:
            self.state.reference = f"Q-{secrets.token_hex(3).upper()}"
            self.state.step = QuoteStep.COMPLETE
            reply = (
                f"Done! Your quote reference is {self.state.reference}. "
                "We've emailed you the documents."
            )
        else:
            self.state = QuoteState()
            reply = "No problem, let's start again. Would you like car or home cover?"
        await self._notify_state_change()
        return reply


def _ask_start_date() -> str:
    example = dt.date.today() + dt.timedelta(days=14)
    return f"When should the cover start? Please give a date, e.g. {example.isoformat()}."


PROMPTS = StepPromptMapping[QuoteStep](
    prompts={
        QuoteStep.CHOOSE_COVER: (
            "Welcome to Example Insurance quotes! Would you like car or home cover? "
            "When the user says which, call choose_cover."
        ),
        QuoteStep.ADD_DRIVER: (
            "How old is the driver? This is a car quote with $drivers so far. Pass the "
            "driver's age to add_driver; if it is refused, explain why and ask again."
        ),
        QuoteStep.MORE_DRIVERS: (
            "Would you like to add another driver? Drivers so far: $drivers. Call "
            "more_drivers with the user's yes or no."
        ),
        QuoteStep.HOME_VALUE: (
            "What would it cost to rebuild your home? Pass the full amount to "
            "set_home_value; if it is refused, explain why and ask again."
        ),
        QuoteStep.MORE_ITEMS: (
            "Do you have a valuable worth over 1,000 to list? Listed so far: $valuables. "
            "Call more_items with the user's yes or no."
        ),
        QuoteStep.ADD_ITEM: (
            "What is the item and what is it worth? Call add_item with a short "
            "description and its value."
        ),
        QuoteStep.START_DATE: (
            "When should the cover start? Today is $today. Pass the date to "
            "set_start_date; if it is refused, explain why and ask again."
        ),
        QuoteStep.REVIEW: (
            "Would you like to accept this quote? The $cover cover costs $premium a year "
            "from $start_date. Call accept_quote with the user's answer."
        ),
        QuoteStep.COMPLETE: (
            "Thank the user for their business. Their quote reference is $reference; "
            "answer any last questions briefly."
        ),
    }
)


def _prompt_values(state: QuoteState) -> dict[str, Any]:
    """The placeholders the step prompts use, rendered from the state."""
    drivers = ", ".join(f"age {age}" for age in state.driver_ages)
    valuables = ", ".join(f"{v.description} ({_money(v.value)})" for v in state.valuables)
    return {
        "drivers": f"{len(state.driver_ages)} driver(s): {drivers}" if drivers else "none",
        "valuables": valuables or "none",
        "today": dt.date.today().isoformat(),
        "cover": state.cover or "",
        "premium": _money(state.annual_premium) if state.annual_premium is not None else "",
        "start_date": state.start_date.isoformat() if state.start_date else "",
        "reference": state.reference,
    }


class QuoteAgent(JourneyAgent[QuoteState, QuoteTools, QuoteStep]):
    """Quotes car or home insurance."""

    tools_class = QuoteTools
    journey_config = JourneyConfig(
        name="Insurance quote",
        description="A price for car or home cover: drivers or valuables, and a start date.",
        stream=True,
    )
    prompts = PromptManager(PROMPTS, context_enricher=_prompt_values)

    @property
    def key(self) -> str:
        return "quote"

    def get_initial_state(self) -> QuoteState:
        return QuoteState()

    def get_system_prompt(self, state: QuoteState) -> str:
        return self.prompts.get_prompt(state)

    #: Progress (``agents/progress.py``): each loop is one position on the path, with its
    #: round ("driver 2"), so adding a second driver does not step back.
    step_groups = (
        StepGroup(
            (QuoteStep.ADD_DRIVER, QuoteStep.MORE_DRIVERS),
            name="drivers",
            item="driver",
            number=lambda s: len(s.driver_ages) + (s.step == QuoteStep.ADD_DRIVER),
        ),
        StepGroup(
            (QuoteStep.MORE_ITEMS, QuoteStep.ADD_ITEM),
            name="valuables",
            item="valuable",
            number=lambda s: len(s.valuables) + (s.step == QuoteStep.ADD_ITEM),
        ),
    )
    #: The moves the tools make: the graph draws the two branches and the loops.
    step_transitions = {
        QuoteStep.CHOOSE_COVER: [QuoteStep.ADD_DRIVER, QuoteStep.HOME_VALUE],
        QuoteStep.ADD_DRIVER: [QuoteStep.MORE_DRIVERS],
        QuoteStep.MORE_DRIVERS: [QuoteStep.ADD_DRIVER, QuoteStep.START_DATE],
        QuoteStep.HOME_VALUE: [QuoteStep.MORE_ITEMS],
        QuoteStep.MORE_ITEMS: [QuoteStep.ADD_ITEM, QuoteStep.START_DATE],
        QuoteStep.ADD_ITEM: [QuoteStep.MORE_ITEMS],
        QuoteStep.START_DATE: [QuoteStep.REVIEW],
        QuoteStep.REVIEW: [QuoteStep.COMPLETE, QuoteStep.CHOOSE_COVER],
    }

    def get_step_path(self, state: QuoteState) -> list[QuoteStep]:
        """The branch's steps only, so progress reads "step 2 of 5" on a car quote.

        Before the branch is chosen, the steps every quote has: the total changes once,
        when the cover is chosen, and never in a loop (``step_groups``).
        """
        if state.cover is None:
            tail = [QuoteStep.START_DATE, QuoteStep.REVIEW, QuoteStep.COMPLETE]
            return [QuoteStep.CHOOSE_COVER, *tail]
        branch = {
            "car": [QuoteStep.ADD_DRIVER, QuoteStep.MORE_DRIVERS],
            "home": [QuoteStep.HOME_VALUE, QuoteStep.MORE_ITEMS, QuoteStep.ADD_ITEM],
        }.get(state.cover or "", [])
        return [
            QuoteStep.CHOOSE_COVER,
            *branch,
            QuoteStep.START_DATE,
            QuoteStep.REVIEW,
            QuoteStep.COMPLETE,
        ]
