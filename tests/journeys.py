"""The seed README's onboarding journey, verbatim in shape, shared by the tests."""

from dataclasses import dataclass
from enum import Enum

from agent_runtime_framework import (
    AgentContext,
    BaseJourneyState,
    BaseJourneyTools,
    JourneyAgent,
    ToolSchema,
    ToolSchemaBuilder,
)


class OnboardingStep(str, Enum):
    WELCOME = "welcome"
    COLLECT_NAME = "collect_name"
    COLLECT_EMAIL = "collect_email"
    COMPLETE = "complete"


@dataclass
class OnboardingState(BaseJourneyState[OnboardingStep]):
    step: OnboardingStep = OnboardingStep.WELCOME
    name: str = ""
    email: str = ""

    def is_complete(self) -> bool:
        return self.step == OnboardingStep.COMPLETE

    def to_dict(self) -> dict:
        return {"step": self.step.value, "name": self.name, "email": self.email}

    @classmethod
    def from_dict(cls, data: dict) -> "OnboardingState":
        return cls(
            step=OnboardingStep(data.get("step", "welcome")),
            name=data.get("name", ""),
            email=data.get("email", ""),
        )


class OnboardingTools(BaseJourneyTools[OnboardingState]):
    async def start(self) -> str:
        self.state.step = OnboardingStep.COLLECT_NAME
        await self._notify_state_change()
        return "Ask for the user's name."

    async def save_name(self, name: str) -> str:
        self.state.name = name
        self.state.step = OnboardingStep.COLLECT_EMAIL
        await self._notify_state_change()
        return f"Great, {name}! Now, what's your email?"

    async def save_email(self, email: str) -> str:
        self.state.email = email
        self.state.step = OnboardingStep.COMPLETE
        await self._notify_state_change()
        return f"Perfect! You're all set, {self.state.name}!"


PROMPTS = {
    OnboardingStep.WELCOME: "Welcome! Greet the user and call start.",
    OnboardingStep.COLLECT_NAME: "Collect the user's name using save_name tool.",
    OnboardingStep.COLLECT_EMAIL: "Collect the user's email using save_email tool.",
    OnboardingStep.COMPLETE: "Thank the user for completing onboarding.",
}


class OnboardingAgent(JourneyAgent[OnboardingState, OnboardingTools, OnboardingStep]):
    @property
    def key(self) -> str:
        return "onboarding-agent"

    def get_initial_state(self) -> OnboardingState:
        return OnboardingState()

    def get_system_prompt(self, state: OnboardingState) -> str:
        return PROMPTS[state.step]

    def get_tool_schemas(self, state: OnboardingState) -> list[ToolSchema]:
        if state.step == OnboardingStep.WELCOME:
            return [ToolSchemaBuilder("start").description("Begin onboarding").build()]
        if state.step == OnboardingStep.COLLECT_NAME:
            return [
                ToolSchemaBuilder("save_name")
                .description("Save the user's name")
                .param("name", "string", "The user's name", required=True)
                .build()
            ]
        if state.step == OnboardingStep.COLLECT_EMAIL:
            return [
                ToolSchemaBuilder("save_email")
                .description("Save the user's email")
                .param("email", "string", "The user's email", required=True)
                .build()
            ]
        return []

    def create_tools(self, state: OnboardingState, ctx: AgentContext) -> OnboardingTools:
        return OnboardingTools(state=state)

    async def execute_tool(self, tools: OnboardingTools, name: str, arguments: dict) -> str:
        method = getattr(tools, name)
        return await method(**arguments)
