"""A rule-based fake model and the journeys the HTTP tests register.

``RuleLLM`` answers like a cooperative model would, for any number of conversations at
once: it calls the tool the current step offers with the user's last message as the
argument, and answers in text after a tool result. It can sleep, stream and fail on demand.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

from agent_runtime_framework import (
    AgentContext,
    BaseJourneyState,
    BaseJourneyTools,
    IntentRouter,
    JourneyAgent,
    JourneyConfig,
    RouteDefinition,
    ToolSchema,
    ToolSchemaBuilder,
)
from agent_runtime_framework.agents.routed import RoutedJourneyAgent
from agent_runtime_framework.llm.base import LLMResponse, LLMStreamEvent
from tests.journeys import OnboardingAgent

ROUTE_WORDS = {"start_signup": "sign", "leave_feedback": "feedback"}
ARGUMENT_OF = {"save_name": "name", "save_email": "email", "save_feedback": "text"}


class RuleLLM:
    """A deterministic stand-in model (see the module docstring)."""

    model = "rule-llm"

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.calls = 0
        self.failures: deque[tuple[int, BaseException]] = deque()

    def fail_next(self, error: BaseException, *, after: int = 0) -> None:
        """Raise ``error`` on a coming call: after ``after`` more successful calls."""
        self.failures.append((self.calls + after + 1, error))

    async def generate(
        self,
        messages: Sequence[Mapping[str, Any]],
        tools: Sequence[Mapping[str, Any]] | None = None,
        **kwargs: Any,
    ) -> LLMResponse:
        self.calls += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.failures and self.failures[0][0] <= self.calls:
            raise self.failures.popleft()[1]
        return LLMResponse(
            message=self.decide(messages, tools or ()),
            usage={"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10},
        )

    async def stream(
        self,
        messages: Sequence[Mapping[str, Any]],
        tools: Sequence[Mapping[str, Any]] | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[LLMStreamEvent]:
        response = await self.generate(messages, tools, **kwargs)
        text = response.message.get("content") or ""
        for index, word in enumerate(text.split(" ")):
            yield LLMStreamEvent(delta=word if index == 0 else " " + word)
        yield LLMStreamEvent(response=response)

    def decide(
        self, messages: Sequence[Mapping[str, Any]], tools: Sequence[Mapping[str, Any]]
    ) -> dict[str, Any]:
        names = [t["function"]["name"] for t in tools]
        last = messages[-1] if messages else {"role": "user", "content": ""}
        if last.get("role") == "tool":
            return {"role": "assistant", "content": f"Noted. {last.get('content')}"}
        text = str(last.get("content") or "")
        for name in names:
            word = ROUTE_WORDS.get(name)
            if word is not None and word in text.lower():
                return self._call(name, {})
        if "start" in names:
            return self._call("start", {})
        for name in names:
            if name in ARGUMENT_OF:
                return self._call(name, {ARGUMENT_OF[name]: text})
        if any(name in ROUTE_WORDS for name in names):
            return {"role": "assistant", "content": "Do you want to sign up or leave feedback?"}
        return {"role": "assistant", "content": "All done here."}

    def _call(self, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
        return {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": f"call_{self.calls}",
                    "type": "function",
                    "function": {"name": name, "arguments": json.dumps(arguments)},
                }
            ],
        }


class FeedbackStep(str, Enum):
    ASK = "ask"
    DONE = "done"


@dataclass
class FeedbackState(BaseJourneyState[FeedbackStep]):
    step: FeedbackStep = FeedbackStep.ASK
    text: str = ""

    def is_complete(self) -> bool:
        return self.step == FeedbackStep.DONE


class FeedbackTools(BaseJourneyTools[FeedbackState]):
    async def save_feedback(self, text: str) -> str:
        self.state.text = text
        self.state.step = FeedbackStep.DONE
        await self._notify_state_change()
        return "Feedback saved."


class FeedbackAgent(JourneyAgent[FeedbackState, FeedbackTools, FeedbackStep]):
    journey_config = JourneyConfig(name="Feedback", description="Leave feedback")

    @property
    def key(self) -> str:
        return "feedback"

    def get_initial_state(self) -> FeedbackState:
        return FeedbackState()

    def get_system_prompt(self, state: FeedbackState) -> str:
        return "Ask for feedback and save it." if state.step == FeedbackStep.ASK else "Thank them."

    def get_tool_schemas(self, state: FeedbackState) -> list[ToolSchema]:
        if state.step != FeedbackStep.ASK:
            return []
        return [
            ToolSchemaBuilder("save_feedback")
            .description("Save the feedback")
            .param("text", "string", "The feedback", required=True)
            .build()
        ]

    def create_tools(self, state: FeedbackState, ctx: AgentContext) -> FeedbackTools:
        return FeedbackTools(state=state)


class SignupAgent(OnboardingAgent):
    """The onboarding journey under another key, behind the front desk."""

    journey_config = JourneyConfig(name="Sign up", description="Create an account")

    @property
    def key(self) -> str:
        return "signup"


def front_desk(llm: Any) -> RoutedJourneyAgent[str]:
    router: IntentRouter[str] = IntentRouter()
    router.add_route(RouteDefinition("signup", "start_signup", "The user wants to sign up"))
    router.add_route(RouteDefinition("feedback", "leave_feedback", "The user has feedback"))
    return RoutedJourneyAgent(
        router, {"signup": SignupAgent(), "feedback": FeedbackAgent()}, llm, key="front-desk"
    )
