"""RoutedJourneyAgent: an intent router in front of several journey agents.

The first turn routes: the model is offered the router's routing tools (through the same
``LLMExecutor`` loop); if it picks none, the keyword ``IntentDetector`` decides. Later turns
go straight to the chosen journey. The choice is persisted under the router's own key, and
a journey hands the user back with ``tools.request_handoff()``.

Conversation control (``agents/control.py``): at every step the journey is also offered
``switch_journey(journey)``. Its call ends the journey's run; the router then *parks* that
journey (its state and step stay; its row's status is ``parked``) and starts or resumes
the other one in the same turn. Several journeys may be parked, one is active; switching
back to a parked journey resumes it at its step. The router's state holds the active
journey and the parked ones, so nothing depends on the model remembering them.
"""

from __future__ import annotations

import contextvars
import dataclasses
from collections.abc import Mapping
from enum import Enum
from typing import Any, Generic, TypeVar

from ..executor.hooks import ExecutorHooks
from ..executor.loop import LLMExecutor, LLMExecutorConfig
from ..memory.manager import CommitInfo, MemoryManager
from ..router.intent import IntentDetector, IntentRouter
from ..tools.executors import CallableToolExecutor
from .context import INPUT_STORED_KEY, AgentContext, AgentResult
from .control import (
    CONTROL_KEY,
    JOURNEY_ABANDONED,
    JOURNEY_PARKED,
    JOURNEY_RESUMED,
    JOURNEY_STARTED,
    ConversationControl,
    JourneyNotParked,
    SwitchOption,
)
from .journey import JourneyAgent, new_input_messages
from .people import (
    ESCALATION_DEFAULT_KEY,
    ESCALATION_KEY,
    ESCALATION_TOOL,
    Escalation,
    escalation_enabled,
)

__all__ = ["RoutedJourneyAgent", "routed_journey_key"]

#: The key of the journey a router is running right now (in this task): the events of
#: that journey's steps (``journey.step_changed``, ``journey.completed``) are attributed
#: to it rather than to the router, so its step history and funnel see them.
_ROUTED_JOURNEY: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "agent_runtime_routed_journey", default=None
)


def routed_journey_key() -> str | None:
    """The agent key of the journey a router is running in this task (None: none)."""
    return _ROUTED_JOURNEY.get()


JourneyT = TypeVar("JourneyT")

DEFAULT_ROUTING_PROMPT = (
    "You are the front desk. Find out what the user wants and call the tool of the "
    "matching service. If it is unclear, ask one short question."
)


#: Journey row statuses conversation control sets (the Django app's ``JourneyStatus``).
STATUS_ACTIVE, STATUS_PARKED, STATUS_ABANDONED = "active", "parked", "abandoned"


def _plain(value: Any) -> Any:
    return value.value if isinstance(value, Enum) else value


class RoutedJourneyAgent(Generic[JourneyT]):
    """Routes a conversation to one of ``agents`` and then delegates every turn to it."""

    def __init__(
        self,
        router: IntentRouter[JourneyT],
        agents: Mapping[JourneyT, JourneyAgent[Any, Any, Any]],
        llm_client: Any = None,
        *,
        key: str = "router",
        memory: MemoryManager | None = None,
        routing_prompt: str = DEFAULT_ROUTING_PROMPT,
        detector: IntentDetector[JourneyT] | None = None,
        return_to_router_on_complete: bool = True,
        allow_switching: bool = True,
        max_switches_per_turn: int = 2,
        offer_escalation: bool | None = None,
    ) -> None:
        missing = [r.journey for r in router.routes if r.journey not in agents]
        if missing:
            raise ValueError(f"No agent for routed journeys {missing}")
        self.router = router
        self.agents = dict(agents)
        self.llm_client = llm_client
        self._key = key
        self.memory = memory if memory is not None else MemoryManager()
        self.routing_prompt = routing_prompt
        self.detector = detector or router.detector()
        self.return_to_router_on_complete = return_to_router_on_complete
        #: Offer ``switch_journey`` at every step of the active journey.
        self.allow_switching = allow_switching
        #: Switches one turn may make (a model bouncing between journeys stops there).
        self.max_switches_per_turn = max_switches_per_turn
        #: Offer ``talk_to_a_person`` while routing, and to journeys that do not say
        #: (None: the host's default). See agents/people.py.
        self.offer_escalation = offer_escalation
        self._by_value = {_plain(j): j for j in self.agents}
        self._by_text = {str(_plain(j)): j for j in self.agents}
        self._options = self._switch_options()
        for agent in self.agents.values():
            # One conversation, one history: the journeys share the router's memory.
            if agent._memory_is_default:
                agent.memory = self.memory
            if agent.llm_client is None and llm_client is not None:
                agent.llm_client = llm_client

    @property
    def key(self) -> str:
        return self._key

    async def current_journey(self, conversation_id: Any) -> JourneyT | None:
        data = await self.memory.load_state(conversation_id, self.key)
        if not data or data.get("journey") is None:
            return None
        return self._by_value.get(data["journey"])

    def journey_key(self, value: Any) -> str | None:
        """The agent key of the journey stored as ``value`` (None: not one of ours)."""
        journey = self._by_value.get(value)
        return self.agents[journey].key if journey is not None else None

    async def parked_journeys(self, conversation_id: Any) -> list[JourneyT]:
        """The journeys parked in this conversation, oldest first."""
        data = await self.memory.load_state(conversation_id, self.key) or {}
        return [self._by_value[v] for v in data.get("parked") or () if v in self._by_value]

    async def _choose(
        self,
        conversation_id: Any,
        journey: JourneyT | None,
        how: str,
        data: dict[str, Any] | None = None,
        *,
        status: str | None = None,
        complete: bool = False,
        turn: AgentResult | None = None,
    ) -> None:
        """Persist the active journey (and the parked ones, kept in ``data``).

        ``status``/``complete``: the router's own row follows the journey it routed to
        (complete when that journey completed, abandoned when it was given up); ``turn``:
        the turn's result, counted on the router's row (one turn, its tokens).
        """
        state = dict(data or {})
        state["journey"] = _plain(journey) if journey is not None else None
        state["routed_by"] = how
        if data is not None:
            data.update(state)
        await self.memory.commit(
            conversation_id,
            self.key,
            state=state,
            info=CommitInfo(
                step=_plain(journey) if journey is not None else None,
                complete=complete,
                status=status,
                **_turn_counts(turn),
            ),
        )

    async def _count_turn(self, conversation_id: Any, result: AgentResult) -> None:
        """The router's row counts the turn and follows the journey's status."""
        await self.memory.commit(
            conversation_id,
            self.key,
            info=CommitInfo(
                complete=bool(result.complete),
                status=None if result.complete else STATUS_ACTIVE,
                **_turn_counts(result),
            ),
        )

    # -- conversation control ----------------------------------------------------------------
    def _switch_options(self) -> dict[Any, SwitchOption]:
        """One option per routed journey: the routes' descriptions and keywords merged."""
        merged: dict[Any, tuple[list[str], list[str]]] = {}
        for route in self.router.routes:
            descriptions, keywords = merged.setdefault(route.journey, ([], []))
            if route.description:
                descriptions.append(route.description)
            keywords.extend(k for k in route.keywords if k not in keywords)
        return {
            journey: SwitchOption(str(_plain(journey)), " ".join(d), tuple(k))
            for journey, (d, k) in merged.items()
        }

    def _control(self, journey: JourneyT) -> ConversationControl | None:
        options = [o for j, o in self._options.items() if j != journey]
        return ConversationControl(options) if options else None

    async def _park(
        self, conversation_id: Any, data: dict[str, Any], journey: JourneyT, step: Any
    ) -> list[dict[str, Any]]:
        """Set the journey aside: its state stays, its row says ``parked``."""
        value = _plain(journey)
        data["parked"] = [v for v in data.get("parked") or () if v != value] + [value]
        agent = self.agents[journey]
        await self.memory.commit(
            conversation_id, agent.key, info=CommitInfo(step=step, status=STATUS_PARKED)
        )
        return [{"type": JOURNEY_PARKED, "journey": agent.key, "step": _plain(step)}]

    async def _enter(
        self, conversation_id: Any, data: dict[str, Any], journey: JourneyT, how: str
    ) -> list[dict[str, Any]]:
        """Make ``journey`` the active one: resume it if parked, else start it (afresh when
        its earlier run completed or was abandoned)."""
        value = _plain(journey)
        agent = self.agents[journey]
        parked = [v for v in data.get("parked") or () if v != value]
        abandoned = [v for v in data.get("abandoned") or () if v != value]
        stored = await self.memory.load_state(conversation_id, agent.key)
        events: list[dict[str, Any]] = []
        if value in (data.get("parked") or ()):
            step = (stored or {}).get("step")
            await self.memory.commit(
                conversation_id, agent.key, info=CommitInfo(step=step, status=STATUS_ACTIVE)
            )
            events.append({"type": JOURNEY_RESUMED, "journey": agent.key, "step": step})
        else:
            again = stored is not None and (
                value in (data.get("abandoned") or ()) or self._finished(agent, stored)
            )
            if again:
                initial = agent.get_initial_state()
                await self.memory.commit(
                    conversation_id,
                    agent.key,
                    state=agent.state_to_dict(initial),
                    info=CommitInfo(step=getattr(initial, "step", None), status=STATUS_ACTIVE),
                )
            if again or how == "switch":
                events.append(
                    {"type": JOURNEY_STARTED, "journey": agent.key, "how": how, "again": again}
                )
        data["parked"], data["abandoned"] = parked, abandoned
        return events

    @staticmethod
    def _finished(agent: JourneyAgent[Any, Any, Any], stored: dict[str, Any]) -> bool:
        try:
            return bool(agent.is_terminal_state(agent.state_from_dict(stored)))
        except Exception:  # a state that no longer loads: the journey runs and says so
            return False

    async def resume(
        self, conversation_id: Any, journey: JourneyT, *, owner: Any = None
    ) -> list[dict[str, Any]]:
        """Make a parked journey the active one (the active one is parked in turn).

        For hosts (a "resume" button); the model does the same with ``switch_journey``.
        Raises ``JourneyNotParked`` for a journey that is not parked: never started,
        already active, completed or abandoned. Returns the events.
        """
        async with self.memory.claim(conversation_id, self.key, owner=owner):
            data = dict(await self.memory.load_state(conversation_id, self.key) or {})
            value = _plain(journey)
            if journey not in self.agents or value not in (data.get("parked") or ()):
                state = "active" if data.get("journey") == value else "not parked"
                if value in (data.get("abandoned") or ()):
                    state = "abandoned"
                raise JourneyNotParked(f"Journey {value!r} is {state}: there is nothing to resume")
            events: list[dict[str, Any]] = []
            current = self._by_value.get(data.get("journey"))
            if current is not None:
                stored = await self.memory.load_state(conversation_id, self.agents[current].key)
                if stored is not None and not self._finished(self.agents[current], stored):
                    events += await self._park(conversation_id, data, current, stored.get("step"))
            events += await self._enter(conversation_id, data, journey, "resume")
            await self._choose(conversation_id, journey, "resume", data)
            return events

    async def abandon(
        self, conversation_id: Any, journey: JourneyT | None = None, *, owner: Any = None
    ) -> list[dict[str, Any]]:
        """Give up the active journey (or a parked one): status ``abandoned``, not resumable;
        switching to it later starts it afresh. Raises ``JourneyNotParked`` when ``journey``
        is neither active nor parked."""
        async with self.memory.claim(conversation_id, self.key, owner=owner):
            data = dict(await self.memory.load_state(conversation_id, self.key) or {})
            target = journey if journey is not None else self._by_value.get(data.get("journey"))
            value = _plain(target)
            active = target is not None and data.get("journey") == value
            if target is None or not (active or value in (data.get("parked") or ())):
                raise JourneyNotParked(f"Journey {value!r} is neither active nor parked")
            agent = self.agents[target]
            stored = await self.memory.load_state(conversation_id, agent.key) or {}
            await self.memory.commit(
                conversation_id,
                agent.key,
                info=CommitInfo(step=stored.get("step"), status=STATUS_ABANDONED),
            )
            data["parked"] = [v for v in data.get("parked") or () if v != value]
            data["abandoned"] = [v for v in data.get("abandoned") or () if v != value] + [value]
            still = self._by_value.get(data.get("journey")) if not active else None
            await self._choose(
                conversation_id,
                still,
                "abandon",
                data,
                status=STATUS_ABANDONED if still is None else STATUS_ACTIVE,
            )
            return [{"type": JOURNEY_ABANDONED, "journey": agent.key, "step": stored.get("step")}]

    async def route(
        self, ctx: AgentContext, hooks: ExecutorHooks | None = None, *, stored: bool = False
    ) -> tuple[JourneyT | None, str, AgentResult | None]:
        """Pick a journey for this turn's message: (journey, how, clarifying reply).

        ``stored``: the turn's user messages are already in the history (the router stores
        them before calling the model, so a failed call loses nothing).
        """
        chosen: list[JourneyT] = []

        def choose(journey: JourneyT) -> Any:
            def pick() -> str:
                chosen.append(journey)
                return f"Routed to {_plain(journey)}."

            return pick

        functions: dict[str, Any] = {r.name: choose(r.journey) for r in self.router.routes}
        tools = self.router.get_tool_schemas()
        escalation: Escalation | None = None
        if escalation_enabled(self, ctx.metadata):
            lent = ctx.metadata.get(ESCALATION_KEY)
            escalation = lent if isinstance(lent, Escalation) else Escalation()
            functions[ESCALATION_TOOL] = escalation.request
            tools = [*tools, *escalation.tools()]
        executor = LLMExecutor(
            self._llm(),
            tool_executor=CallableToolExecutor(functions),
            config=LLMExecutorConfig(max_iterations=2),
        )
        new_input = new_input_messages(ctx.input_messages)
        conversation_id = (
            ctx.conversation_id if ctx.conversation_id is not None else ctx.ensure_run_id()
        )
        history = await self.memory.conversation_store.get_messages(conversation_id)
        outcome = await executor.run(
            history if stored else [*history, *new_input],
            tools=tools,
            system_prompt=self.routing_prompt,
            cancelled=lambda: bool(chosen) or bool(escalation and escalation.requested),
            hooks=hooks,
        )
        if chosen:
            return chosen[0], "model", None
        if escalation is not None and escalation.requested is not None:
            # Handed to a person before any journey started.
            final = {"role": "assistant", "content": escalation.reply}
            added = [*outcome.messages, final]
            reply = AgentResult(
                response=escalation.reply,
                messages=[*new_input, *added],
                usage=outcome.usage,
                iterations=outcome.iterations,
                stopped_reason="escalated",
                metadata={"escalation": escalation.outcome()},
            )
            await self.memory.append_messages(conversation_id, added if stored else reply.messages)
            return None, "escalation", reply
        text = " ".join(str(m.get("content") or "") for m in new_input)
        detected = self.detector.detect_journey(text) if text else None
        if detected is not None:
            return detected, "keywords", None
        reply = AgentResult(
            response=outcome.content,
            messages=[*new_input, {"role": "assistant", "content": outcome.content}],
            usage=outcome.usage,
            iterations=outcome.iterations,
            stopped_reason=outcome.stopped_reason,
        )
        await self.memory.append_messages(
            conversation_id, reply.messages[len(new_input) :] if stored else reply.messages
        )
        return None, "none", reply

    async def run(self, ctx: AgentContext, *, hooks: ExecutorHooks | None = None) -> AgentResult:
        """Route (first turn) and delegate, holding the conversation for the whole turn."""
        conversation_id = (
            ctx.conversation_id if ctx.conversation_id is not None else ctx.ensure_run_id()
        )
        owner = ctx.metadata.get("owner")
        if self.offer_escalation is not None:
            # The router's choice is the default of its journeys.
            metadata = {**ctx.metadata, ESCALATION_DEFAULT_KEY: self.offer_escalation}
            ctx = dataclasses.replace(ctx, metadata=metadata)
        async with self.memory.claim(conversation_id, self.key, owner=owner):
            return await self._run_claimed(ctx, conversation_id, hooks)

    async def _run_claimed(
        self, ctx: AgentContext, conversation_id: Any, hooks: ExecutorHooks | None
    ) -> AgentResult:
        data = dict(await self.memory.load_state(conversation_id, self.key) or {})
        value = data.get("journey")
        journey = self._by_value.get(value) if value is not None else None
        routed_by = None
        stored: list[dict[str, Any]] = []
        events: list[dict[str, Any]] = []
        if journey is None:
            if ctx.metadata.get(INPUT_STORED_KEY):
                stored = new_input_messages(ctx.input_messages)  # the host stored it
            elif not self.memory.commits_in_process:
                # The user's message is durable before the routing model is called; the
                # journey then finds it in the history rather than in the input.
                stored = new_input_messages(ctx.input_messages)
                if stored:
                    await self.memory.append_messages(conversation_id, stored)
            journey, routed_by, reply = await self.route(ctx, hooks, stored=bool(stored))
            if journey is None:
                assert reply is not None
                await self._count_turn(conversation_id, reply)
                return reply
            events += await self._enter(conversation_id, data, journey, routed_by)
            await self._choose(conversation_id, journey, routed_by, data)
            if stored:
                ctx = dataclasses.replace(ctx, input_messages=[])
        results: list[AgentResult] = []
        while True:
            agent = self.agents[journey]
            control = (
                self._control(journey)
                if self.allow_switching and len(results) < self.max_switches_per_turn
                else None
            )
            run_ctx = ctx
            if control is not None:
                run_ctx = dataclasses.replace(ctx, metadata={**ctx.metadata, CONTROL_KEY: control})
            token = _ROUTED_JOURNEY.set(agent.key)
            try:
                result = await agent.run(run_ctx, hooks=hooks)
            finally:
                _ROUTED_JOURNEY.reset(token)
            results.append(result)
            events.extend(result.metadata.get("control_events") or ())
            if control is None or control.requested is None:
                break
            # The model switched: park this journey, start or resume the other, same turn.
            target = self._by_text[control.requested]
            if not result.complete:
                events += await self._park(conversation_id, data, journey, result.step)
            events += await self._enter(conversation_id, data, target, "switch")
            journey, routed_by = target, "switch"
            await self._choose(conversation_id, journey, routed_by, data)
            ctx = dataclasses.replace(ctx, input_messages=[])
        result = _merge(results) if len(results) > 1 else results[0]
        if stored:
            result.messages[:0] = stored
        result.metadata["journey"] = _plain(journey)
        result.metadata["agent_key"] = agent.key
        if routed_by:
            result.metadata["routed_by"] = routed_by
        if result.handoff or (self.return_to_router_on_complete and result.complete):
            await self._choose(
                conversation_id,
                None,
                "handoff" if result.handoff else "complete",
                data,
                complete=bool(result.complete),
                status=None if result.complete else STATUS_ACTIVE,
                turn=result,
            )
        else:
            await self._count_turn(conversation_id, result)
        parked = [
            self.agents[self._by_value[v]].key
            for v in data.get("parked") or ()
            if v in self._by_value
        ]
        if parked:
            result.metadata["parked"] = parked
        if events:
            result.metadata["control_events"] = events
        return result

    def _llm(self) -> Any:
        if self.llm_client is None:
            from ..llm.resolve import get_llm_client

            self.llm_client = get_llm_client()
        return self.llm_client


def _turn_counts(result: AgentResult | None) -> dict[str, Any]:
    """``CommitInfo`` fields that count one turn (and its tokens) on the router's row."""
    if result is None:
        return {}
    return {"new_turn": True, "tokens": int(result.usage.get("total_tokens", 0) or 0)}


def _merge(results: list[AgentResult]) -> AgentResult:
    """One turn's result from the runs of the journeys it went through (the last answers)."""
    last = results[-1]
    usage: dict[str, int] = {}
    for r in results:
        for name, count in r.usage.items():
            usage[name] = usage.get(name, 0) + int(count)
    last.messages = [m for r in results for m in r.messages]
    last.usage = usage
    last.tool_calls = [c for r in results for c in r.tool_calls]
    last.iterations = sum(r.iterations for r in results)
    last.metadata.pop("control_events", None)  # the router lists every run's events
    return last
