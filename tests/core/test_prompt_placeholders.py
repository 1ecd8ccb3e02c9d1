"""A ``{name}`` written where ``$name`` was meant: warned at render time, and W003."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from enum import Enum

import pytest

from agent_runtime_framework import (
    BaseJourneyState,
    BaseJourneyTools,
    JourneyAgent,
    PromptManager,
    PromptTemplate,
    StepPromptMapping,
    tool,
)
from agent_runtime_framework.django.checks import check_agent, check_agents
from agent_runtime_framework.prompts.templates import PromptPlaceholderWarning


class Step(str, Enum):
    ASK = "ask"
    DONE = "done"


@dataclass
class State(BaseJourneyState[Step]):
    step: Step = Step.ASK
    product: str = "car"
    owner: str = ""


class Tools(BaseJourneyTools[State]):
    @tool(steps=[Step.ASK])
    async def finish(self) -> str:
        """Finish."""
        self.state.step = Step.DONE
        return "done"


def make_agent(prompts: dict[Step, str]) -> JourneyAgent[State, Tools, Step]:
    class Agent(JourneyAgent[State, Tools, Step]):
        tools_class = Tools
        manager = PromptManager(
            StepPromptMapping[Step](prompts), context_enricher=lambda s: {"product": s.product}
        )

        @property
        def key(self) -> str:
            return "placeholders"

        def get_initial_state(self) -> State:
            return State()

        def get_system_prompt(self, state: State) -> str:
            return self.manager.get_prompt(state)

    return Agent()


def test_render_warns_once_for_a_braced_value_name():
    template = PromptTemplate("Tell me about your {product}, please ($product).")
    with pytest.warns(PromptPlaceholderWarning, match=r"\{product\}.*\$product"):
        text = template.render(product="car")
    assert text == "Tell me about your {product}, please (car)."
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        template.render(product="boat")  # once per template
        template.safe_render(product="boat")


def test_safe_render_warns_too():
    with pytest.warns(PromptPlaceholderWarning):
        PromptTemplate("Your {name}").safe_render(name="Ada")


@pytest.mark.parametrize(
    "text",
    [
        "Your ${product} and $product",  # the braced placeholder syntax
        "Answer as JSON: {answer}",  # braces, but no value of that name
        'Answer as {"product": ...}',  # not an identifier in braces
    ],
)
def test_no_warning_when_nothing_was_meant_as_a_placeholder(text):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        PromptTemplate(text).render(product="car")


def test_defaults_count_as_values():
    with pytest.warns(PromptPlaceholderWarning):
        PromptTemplate("Hello {who}", defaults={"who": "you"}).render()


def test_system_check_w003_names_the_step_and_the_placeholder():
    agent = make_agent({Step.ASK: "Which {product}? Ask the user.", Step.DONE: "Thanks."})
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the check reports; it does not warn as well
        messages = check_agent("placeholders", agent)
    assert [m.id for m in messages] == ["agent_runtime.W003"]
    assert "step 'ask'" in messages[0].msg and "{product}" in messages[0].msg
    assert "$product" in messages[0].hint


def test_w003_also_catches_a_state_field_in_a_prompt_built_by_hand():
    agent = make_agent({Step.ASK: "Ask.", Step.DONE: "Thanks {owner}."})
    ids = [(m.id, "step 'done'" in m.msg) for m in check_agents({"placeholders": agent})]
    assert ids == [("agent_runtime.W003", True)]


def test_correct_prompts_pass_the_check():
    agent = make_agent({Step.ASK: "Which ${product}? JSON: {answer}", Step.DONE: "Thanks."})
    assert check_agent("placeholders", agent) == []
