"""RoutedJourneyAgent: an intent router in front of several journey agents.

The first turn routes: the model is offered the router's routing tools (through the same
``LLMExecutor`` loop); if it picks none, the keyword ``IntentDetector`` decides. Later turns
go straight to the chosen journey. The choice is persisted under the router's own key, and
a journey hands the user back with ``tools.request_handoff()``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from enum import Enum
from typing import Any, Generic, TypeVar

from ..executor.hooks import ExecutorHooks
from ..executor.loop import LLMExecutor, LLMExecutorConfig
from ..memory.manager import CommitInfo, MemoryManager
from ..router.intent import IntentDetector, IntentRouter
from ..tools.executors import CallableToolExecutor
from .context import AgentContext, AgentResult
from .journey import JourneyAgent, new_input_messages

__all__ = ["RoutedJourneyAgent"]

JourneyT = TypeVar("JourneyT")

DEFAULT_ROUTING_PROMPT = (
    "You are the front desk. Find out what the user wants and call the tool of the "
    "matching service. If it is unclear, ask one short question."
)


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
        self._by_value = {_plain(j): j for j in self.agents}
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

    async def _choose(self, conversation_id: Any, journey: JourneyT | None, how: str) -> None:
        await self.memory.commit(
            conversation_id,
            self.key,
            state={"journey": _plain(journey) if journey is not None else None, "routed_by": how},
            info=CommitInfo(step=_plain(journey) if journey is not None else None),
        )

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

        executor = LLMExecutor(
            self._llm(),
            tool_executor=CallableToolExecutor(
                {r.name: choose(r.journey) for r in self.router.routes}
            ),
            config=LLMExecutorConfig(max_iterations=2),
        )
        new_input = new_input_messages(ctx.input_messages)
        conversation_id = (
            ctx.conversation_id if ctx.conversation_id is not None else ctx.ensure_run_id()
        )
        history = await self.memory.conversation_store.get_messages(conversation_id)
        outcome = await executor.run(
            history if stored else [*history, *new_input],
            tools=self.router.get_tool_schemas(),
            system_prompt=self.routing_prompt,
            cancelled=lambda: bool(chosen),
            hooks=hooks,
        )
        if chosen:
            return chosen[0], "model", None
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
        async with self.memory.claim(conversation_id, self.key, owner=owner):
            return await self._run_claimed(ctx, conversation_id, hooks)

    async def _run_claimed(
        self, ctx: AgentContext, conversation_id: Any, hooks: ExecutorHooks | None
    ) -> AgentResult:
        journey = await self.current_journey(conversation_id)
        routed_by = None
        stored: list[dict[str, Any]] = []
        if journey is None:
            if not self.memory.commits_in_process:
                # The user's message is durable before the routing model is called; the
                # journey then finds it in the history rather than in the input.
                stored = new_input_messages(ctx.input_messages)
                if stored:
                    await self.memory.append_messages(conversation_id, stored)
            journey, routed_by, reply = await self.route(ctx, hooks, stored=bool(stored))
            if journey is None:
                assert reply is not None
                return reply
            await self._choose(conversation_id, journey, routed_by)
            if stored:
                ctx = dataclasses.replace(ctx, input_messages=[])
        agent = self.agents[journey]
        result = await agent.run(ctx, hooks=hooks)
        if stored:
            result.messages[:0] = stored
        result.metadata["journey"] = _plain(journey)
        result.metadata["agent_key"] = agent.key
        if routed_by:
            result.metadata["routed_by"] = routed_by
        if result.handoff or (self.return_to_router_on_complete and result.complete):
            await self._choose(conversation_id, None, "handoff" if result.handoff else "complete")
        return result

    def _llm(self) -> Any:
        if self.llm_client is None:
            from ..llm.resolve import get_llm_client

            self.llm_client = get_llm_client()
        return self.llm_client
