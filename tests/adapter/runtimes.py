"""A seed-shaped DjangoRuntimeAdapter (onboarding), shared by the adapter and HTTP tests."""

from __future__ import annotations

from typing import Any

from agent_runtime_framework import ToolSchema
from agent_runtime_framework.adapters import DjangoRuntimeAdapter
from tests.journeys import (
    PROMPTS,
    OnboardingAgent,
    OnboardingState,
    OnboardingStep,
    OnboardingTools,
)


class OnboardingAdapter(DjangoRuntimeAdapter[OnboardingState, OnboardingTools, OnboardingStep]):
    """The seed README's adapter example, verbatim in shape."""

    adapter_key = "onboarding-adapter"

    def __init__(self, llm_client: Any = None, **kwargs: Any) -> None:
        super().__init__(llm_client, **kwargs)
        self.state_changes: list[tuple[Any, str]] = []
        self.backend = object()

    @property
    def key(self) -> str:
        return self.adapter_key

    def get_initial_state(self) -> OnboardingState:
        return OnboardingState()

    def get_system_prompt(self, state: OnboardingState) -> str:
        return PROMPTS[state.step]

    def get_tool_schemas(self, state: OnboardingState) -> list[ToolSchema]:
        # The same per-step tool sets as the plain JourneyAgent of tests.journeys.
        return OnboardingAgent.get_tool_schemas(None, state)  # type: ignore[arg-type]

    def create_tools(
        self, state: OnboardingState, ctx: Any, backend_client: Any
    ) -> OnboardingTools:
        return OnboardingTools(state=state, backend_client=backend_client)

    async def execute_tool(self, tools: OnboardingTools, name: str, args: dict) -> str:
        method = getattr(tools, name)
        return await method(**args)

    def get_backend_client(self, ctx: Any) -> Any:
        return self.backend

    async def on_state_change(self, ctx: Any, state: OnboardingState) -> None:
        self.state_changes.append((ctx.run_id, state.step.value))


class OtherOnboardingAdapter(OnboardingAdapter):
    """A class registered from settings (instantiated without arguments)."""

    adapter_key = "onboarding-adapter-from-class"


def make_adapter() -> OnboardingAdapter:
    """A factory registered from settings."""
    adapter = OnboardingAdapter()
    adapter.adapter_key = "onboarding-adapter-from-factory"
    return adapter


#: An instance registered from settings.
adapter_instance = OnboardingAdapter()
adapter_instance.adapter_key = "onboarding-adapter-instance"
