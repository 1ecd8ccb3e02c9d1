"""Step-based prompts with ``string.Template`` placeholders (``$name``, ``${step}``)."""

from __future__ import annotations

import string
from collections.abc import Callable, Mapping
from enum import Enum
from typing import Any, Generic, TypeVar

__all__ = ["PromptManager", "PromptTemplate", "StepPromptMapping"]

StepT = TypeVar("StepT")


class PromptTemplate:
    """A prompt with placeholders; missing values raise ``KeyError`` naming them."""

    def __init__(self, template: str, defaults: Mapping[str, Any] | None = None) -> None:
        self.template = string.Template(template)
        self.defaults = dict(defaults or {})

    @property
    def placeholders(self) -> set[str]:
        return {
            m.group("named") or m.group("braced")
            for m in self.template.pattern.finditer(self.template.template)
            if m.group("named") or m.group("braced")
        }

    def render(self, /, **values: Any) -> str:
        merged = {**self.defaults, **values}
        missing = self.placeholders - merged.keys()
        if missing:
            raise KeyError(f"Prompt template needs values for {sorted(missing)}")
        return self.template.substitute(
            {k: (v.value if isinstance(v, Enum) else v) for k, v in merged.items()}
        )

    def __str__(self) -> str:
        return self.template.template


class StepPromptMapping(Generic[StepT]):
    """The prompt of each step, with a default for steps that have none."""

    def __init__(
        self,
        prompts: Mapping[StepT, str | PromptTemplate] | None = None,
        default: str | PromptTemplate | None = None,
    ) -> None:
        self.prompts: dict[StepT, PromptTemplate] = {}
        for step, prompt in (prompts or {}).items():
            self.add(step, prompt)
        self.default = _template(default) if default is not None else None

    def add(self, step: StepT, prompt: str | PromptTemplate, /) -> StepPromptMapping[StepT]:
        self.prompts[step] = _template(prompt)
        return self

    def has(self, step: StepT) -> bool:
        return step in self.prompts

    def get(self, step: StepT, /, **values: Any) -> str:
        template = self.prompts.get(step, self.default)
        if template is None:
            raise KeyError(f"No prompt for step {step!r} and no default")
        return template.render(**values)


class PromptManager(Generic[StepT]):
    """Renders the prompt of a state's step, with values from ``context_enricher``."""

    def __init__(
        self,
        mapping: StepPromptMapping[StepT],
        context_enricher: Callable[[Any], Mapping[str, Any]] | None = None,
    ) -> None:
        self.mapping = mapping
        self.context_enricher = context_enricher

    def get_prompt(self, state: Any, /, **extra: Any) -> str:
        step = state.step
        values: dict[str, Any] = {"step": step}
        if self.context_enricher is not None:
            values.update(self.context_enricher(state))
        values.update(extra)
        return self.mapping.get(step, **values)


def _template(prompt: str | PromptTemplate) -> PromptTemplate:
    return prompt if isinstance(prompt, PromptTemplate) else PromptTemplate(prompt)
