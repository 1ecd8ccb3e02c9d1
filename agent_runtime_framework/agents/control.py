"""Conversation control: correcting an earlier answer, and switching journeys mid-flow.

Both are enforced in code and go through the one executor loop: the journey's step view
gains tools, and what those tools do is decided here, not by a prompt.

- **Corrections.** A tool declared ``@tool(steps=[...], revisable=True)`` (or any tool of
  a step listed in ``JourneyAgent.revisable_steps``) stays on offer, under its own name,
  once the journey has *passed* its step (``get_step_path``), as "Correct an earlier
  answer". Called there, it runs as if the journey were at its step; a refusal
  (``ToolResult.fail``) or an exception restores the state as it was. On success the
  journey returns to the step it was at, unless the answer changed and the tool's
  ``invalidates`` fields held answers (they are reset), or the step left the new path:
  then it goes on from where the tool put it. The state never disagrees with the step.
- **Switching.** A ``RoutedJourneyAgent`` lends each journey turn a
  ``ConversationControl``: one ``switch_journey(journey)`` tool whose options are the
  other routes. Its call ends the journey's run; the router then parks the journey (state
  and step kept, status ``parked``) and starts or resumes the other in the same turn.
"""

from __future__ import annotations

import contextlib
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

from ..executor.loop import StepView
from ..tools.base import BaseJourneyTools, ToolResult, ToolSpec
from ..tools.executors import ToolExecutor
from ..tools.schema import ToolSchema, ToolSchemaBuilder
from .approvals import APPROVAL_TOOL, ApprovalSession, run_approved
from .people import ESCALATION_TOOL, Escalation

__all__ = [
    "CONTROL_KEY",
    "CORRECTED_PREFIX",
    "CORRECTION_PREFIX",
    "JOURNEY_ABANDONED",
    "JOURNEY_PARKED",
    "JOURNEY_RESUMED",
    "JOURNEY_REVISED",
    "JOURNEY_STARTED",
    "SWITCHED_PREFIX",
    "SWITCH_TOOL",
    "ControlledToolExecutor",
    "ConversationControl",
    "JourneyNotParked",
    "RevisionOffer",
    "Revisions",
    "SwitchOption",
]

#: The routing tool a journey is offered behind a ``RoutedJourneyAgent``.
SWITCH_TOOL = "switch_journey"
#: ``AgentContext.metadata`` key under which a router lends a journey its control.
CONTROL_KEY = "_arf_conversation_control"
#: How a correction tool's description begins (models and the offline stand-in read it).
CORRECTION_PREFIX = "Correct an earlier answer"
#: How the results of the control tools begin (the stand-in follows them with the
#: step's question).
SWITCHED_PREFIX = "Switched to"
CORRECTED_PREFIX = "Corrected the answer"

# Event types (the Django app stores them like ``journey.routed``).
JOURNEY_PARKED = "journey.parked"
JOURNEY_RESUMED = "journey.resumed"
JOURNEY_STARTED = "journey.started"
JOURNEY_ABANDONED = "journey.abandoned"
JOURNEY_REVISED = "journey.revised"


class JourneyNotParked(ValueError):
    """Resuming a journey that is not parked (never started, running, complete, abandoned)."""


def plain(value: Any) -> Any:
    """An enum member's value (steps and journeys are stored and shown by value)."""
    return value.value if isinstance(value, Enum) else value


# -- corrections ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RevisionOffer:
    """A tool offered as a correction of the answer of ``step``."""

    name: str
    step: Any
    schema: ToolSchema
    invalidates: frozenset[str]


class Revisions:
    """The revisable tools of one journey class, and which of them a state may use.

    Built once per agent; ``offers`` runs before each model call of a turn, so it only
    looks at the step path and the few revisable tools.
    """

    __slots__ = ("_entries", "_schemas")

    def __init__(
        self, declared: Iterable[tuple[ToolSpec, ToolSchema]], revisable_steps: Collection[Any]
    ) -> None:
        journey_level = frozenset(revisable_steps)
        self._entries: list[tuple[ToolSpec, ToolSchema, frozenset[Any]]] = []
        for spec, schema in declared:
            if not spec.steps:
                continue  # offered everywhere: nothing to go back to
            steps = spec.steps if spec.revisable else spec.steps & journey_level
            if steps:
                self._entries.append((spec, schema, steps))
        self._schemas: dict[tuple[str, Any], ToolSchema] = {}

    @classmethod
    def of(cls, agent: Any) -> Revisions:
        """The revisions an agent declares (``tools_class`` + ``revisable_steps``)."""
        tools_class = getattr(agent, "tools_class", None)
        declared: list[tuple[ToolSpec, ToolSchema]] = []
        if isinstance(tools_class, type) and issubclass(tools_class, BaseJourneyTools):
            declared = tools_class.declared_tools()
        return cls(declared, getattr(agent, "revisable_steps", None) or ())

    def __bool__(self) -> bool:
        return bool(self._entries)

    def offers(
        self, agent: Any, state: Any, offered: Sequence[ToolSchema]
    ) -> dict[str, RevisionOffer]:
        """Corrections open at the state's step: revisable steps the journey has passed."""
        if not self._entries or agent.is_terminal_state(state):
            return {}
        step = getattr(state, "step", None)
        path = list(agent.get_step_path(state))
        if step not in path:
            return {}
        passed = path[: path.index(step)]
        if not passed:
            return {}
        names = {tool.name for tool in offered}
        found: dict[str, RevisionOffer] = {}
        for spec, schema, steps in self._entries:
            if spec.name in names or spec.name in found:
                continue
            owner = next((s for s in reversed(passed) if s in steps), None)
            if owner is None:
                continue
            found[spec.name] = RevisionOffer(
                spec.name, owner, self._schema(schema, owner), spec.invalidates
            )
        return found

    def _schema(self, schema: ToolSchema, step: Any) -> ToolSchema:
        key = (schema.name, plain(step))
        cached = self._schemas.get(key)
        if cached is None:
            cached = self._schemas[key] = ToolSchema(
                name=schema.name,
                description=(
                    f"{CORRECTION_PREFIX} (step '{plain(step)}'), only when the user "
                    f"changes it. {schema.description}"
                ).strip(),
                parameters=schema.parameters,
                json_schema=schema.json_schema,
                arguments_model=schema.arguments_model,
            )
        return cached


# -- switching --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SwitchOption:
    """A journey the user may switch to: its value, what it is for, its keywords."""

    value: str
    description: str = ""
    keywords: tuple[str, ...] = ()


class ConversationControl:
    """What a router lends one journey run: the ``switch_journey`` tool and its outcome.

    The tool only records the choice (``requested``) and ends the run; parking and
    starting are the router's, after the run returns, so a journey never sees another's
    state.
    """

    __slots__ = ("options", "requested", "schema")

    def __init__(self, options: Sequence[SwitchOption]) -> None:
        self.options = {option.value: option for option in options}
        self.requested: str | None = None
        described = " | ".join(
            f"{o.value}: {o.description}"
            + (f" (keywords: {', '.join(o.keywords)})" if o.keywords else "")
            for o in options
        )
        self.schema = (
            ToolSchemaBuilder(SWITCH_TOOL)
            .description(
                "Switch to another service when the user asks for something else. The "
                "current one is parked with its answers and resumes where it was when the "
                "user switches back to it."
            )
            .param(
                "journey",
                "string",
                f"The service to switch to. {described}",
                enum=list(self.options),
            )
            .build()
        )

    def tools(self) -> list[ToolSchema]:
        return [self.schema] if self.options and self.requested is None else []

    def switch(self, journey: str) -> ToolResult:
        self.requested = journey
        return ToolResult(
            content=f"{SWITCHED_PREFIX} {journey}.",
            data={"switch_to": journey},
        )


# -- the turn's tool executor -------------------------------------------------------------------


class ControlledToolExecutor(ToolExecutor):
    """A journey turn's tool executor when corrections or switching are possible.

    Plays the part of the plain state holder (live state, step view) and adds the
    correction offers and the switch tool to the view; ``events`` collects what the turn
    revised, for hosts to record.
    """

    __slots__ = (
        "agent",
        "approvals",
        "control",
        "escalation",
        "events",
        "offers",
        "revisions",
        "state",
        "tools",
    )

    def __init__(
        self,
        agent: Any,
        state: Any,
        tools: Any,
        revisions: Revisions,
        control: ConversationControl | None,
        escalation: Escalation | None = None,
        approvals: ApprovalSession | None = None,
    ) -> None:
        self.agent = agent
        self.state = state
        self.tools = tools
        self.revisions = revisions
        self.control = control
        #: The built-in ``talk_to_a_person`` tool (agents/people.py), when offered.
        self.escalation = escalation
        #: Tools that need approval and the built-in ``answer_approval`` (approvals.py).
        self.approvals = approvals
        self.offers: dict[str, RevisionOffer] = {}
        self.events: list[dict[str, Any]] = []

    def current(self) -> Any:
        return getattr(self.tools, "state", self.state)

    def step_view(self) -> StepView:
        state = self.current()
        view: StepView = self.agent.step_view(state)
        control = self.control
        escalation = self.escalation
        approvals = self.approvals
        if (
            (control is not None and control.requested is not None)
            or (escalation is not None and escalation.requested is not None)
            or (approvals is not None and approvals.requested is not None)
        ):
            # The turn moves to another journey or to a person, or waits for an
            # approval: nothing more runs here.
            self.offers = {}
            return StepView(view.system_prompt, [], view.step)
        self.offers = self.revisions.offers(self.agent, state, view.tools)
        extra = [offer.schema for offer in self.offers.values()]
        if control is not None:
            extra += control.tools()
        if escalation is not None:
            extra += escalation.tools()
        if approvals is not None:
            extra += approvals.tools()
        if not extra:
            return view
        return StepView(view.system_prompt, [*view.tools, *extra], view.step)

    async def run_tool(self, name: str, arguments: dict[str, Any]) -> Any:
        control = self.control
        if control is not None and name == SWITCH_TOOL:
            return control.switch(str(arguments["journey"]))
        if self.escalation is not None and name == ESCALATION_TOOL:
            return self.escalation.request(str(arguments.get("reason") or ""))
        approvals = self.approvals
        if approvals is not None:
            if name == APPROVAL_TOOL:
                return await approvals.answer(
                    str(arguments.get("decision") or ""),
                    lambda call: run_approved(self.agent, self.tools, call, approvals.gate),
                )
            approver = approvals.needs(name, self.tools, arguments)
            if approver is not None:
                return await approvals.hold(name, arguments, approver)
        offer = self.offers.get(name)
        if offer is not None:
            return await self._revise(offer, arguments)
        return await self.agent.execute_tool(self.tools, name, arguments)

    async def _revise(self, offer: RevisionOffer, arguments: dict[str, Any]) -> Any:
        """Run ``offer``'s tool at its own step, then settle where the journey goes on."""
        agent = self.agent
        state = self.current()
        before = agent.state_to_dict(state)
        was_at = state.step
        state.step = offer.step
        _set_revising(self.tools, offer.step)
        try:
            raw = await agent.execute_tool(self.tools, offer.name, arguments)
        except BaseException:
            self._restore(before)
            raise
        finally:
            _set_revising(self.tools, None)
        if isinstance(raw, ToolResult) and not raw.success:
            self._restore(before)  # the old answer stays
            return raw
        new = self.current()
        after = agent.state_to_dict(new)
        changed = _without_step(after) != _without_step(before)
        cleared: list[str] = []
        continue_at = was_at
        if changed and offer.invalidates:
            initial = agent.get_initial_state()
            for name in sorted(offer.invalidates):
                fresh = getattr(initial, name)
                if getattr(new, name) != fresh:
                    cleared.append(name)
                setattr(new, name, fresh)
        if cleared or was_at not in list(agent.get_step_path(new)):
            continue_at = new.step  # the path changed: go on from the corrected step
        new.step = continue_at
        self.events.append(
            {
                "type": JOURNEY_REVISED,
                "journey": agent.key,
                "step": plain(offer.step),
                "tool": offer.name,
                "changed": changed,
                "cleared": cleared,
                "continue_at": plain(continue_at),
            }
        )
        said = str(raw.content if isinstance(raw, ToolResult) else raw or "").strip()
        where = (
            f"Answers that depended on it were cleared ({', '.join(cleared)}); " if cleared else ""
        )
        return ToolResult(
            content=(
                f"{CORRECTED_PREFIX} of step '{plain(offer.step)}'"
                + (f" (the tool said: {said})" if said else "")
                + f". {where}The journey continues at step '{plain(continue_at)}'."
            ),
            data={"revised": plain(offer.step), "continue_at": plain(continue_at)},
        )

    def _restore(self, data: Mapping[str, Any]) -> None:
        restored = self.agent.state_from_dict(dict(data))
        self.state = restored
        if hasattr(self.tools, "state"):
            self.tools.state = restored


def _set_revising(tools: Any, step: Any) -> None:
    with contextlib.suppress(AttributeError):  # a tools object with __slots__
        tools.revising = step


def _without_step(data: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if k != "step"}
