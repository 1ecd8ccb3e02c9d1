"""Step-based prompts with ``string.Template`` placeholders (``$name``, ``${step}``)."""

from __future__ import annotations

import re
import string
import warnings
from collections.abc import Callable, Mapping, Set
from enum import Enum
from typing import Any, Generic, TypeVar

__all__ = ["PromptManager", "PromptPlaceholderWarning", "PromptTemplate", "StepPromptMapping"]

StepT = TypeVar("StepT")

#: ``{name}`` not preceded by ``$``: str.format / f-string syntax, which this module does
#: not substitute (``${name}`` is a placeholder, so it does not count).
_BRACED_NAME = re.compile(r"(?<!\$)\{([_A-Za-z][_A-Za-z0-9]*)\}")


class PromptPlaceholderWarning(UserWarning):
    """A prompt says ``{name}`` where ``$name`` was meant: the model would read the braces."""


class PromptTemplate:
    """A prompt with ``$name``/``${name}`` placeholders and default values.

    ``render`` raises ``KeyError`` naming the placeholders that have no value (a prompt
    with a hole is a bug, not something to send to a model). 0.3.0's ``render`` left them
    as written instead; ``safe_render`` does that. In both, a ``$`` that starts no
    placeholder (``"costs $5"``) stays as written. ``template`` is the text, as in 0.3.0.
    """

    def __init__(self, template: str, defaults: Mapping[str, Any] | None = None) -> None:
        self._compiled = string.Template(template)
        self.defaults = dict(defaults or {})
        # Found once here so that render() pays one truth test when there are none.
        self._braced = frozenset(_BRACED_NAME.findall(template))
        self._warned = False

    @property
    def template(self) -> str:
        """The template text."""
        return self._compiled.template

    @property
    def placeholders(self) -> set[str]:
        return {
            m.group("named") or m.group("braced")
            for m in self._compiled.pattern.finditer(self._compiled.template)
            if m.group("named") or m.group("braced")
        }

    @property
    def braced_names(self) -> frozenset[str]:
        """Names written ``{name}`` (format syntax): not placeholders here, sent as written."""
        return self._braced

    def misplaced_placeholders(self, names: Set[str] | Mapping[str, Any]) -> list[str]:
        """The ``{name}`` of the template whose name is one of ``names`` (a value it is
        rendered with, or its defaults): almost certainly meant as ``$name``."""
        if not self._braced:
            return []
        return sorted(self._braced & (set(names) | self.defaults.keys()))

    def _warn_misplaced(self, merged: Mapping[str, Any]) -> None:
        """Warn once per template: a ``{name}`` the model would read as written."""
        if self._warned:
            return
        misplaced = self.misplaced_placeholders(merged)
        if not misplaced:
            return
        self._warned = True
        written = ", ".join("{" + name + "}" for name in misplaced)
        meant = ", ".join("$" + name for name in misplaced)
        warnings.warn(
            PromptPlaceholderWarning(
                f"Prompt template contains {written}, which is sent to the model as written: "
                f"placeholders are written {meant} (or ${{name}}). Template: "
                f"{_excerpt(self.template)!r}"
            ),
            stacklevel=3,
        )

    def _values(self, values: Mapping[str, Any]) -> dict[str, Any]:
        merged = {**self.defaults, **values}
        return {k: (v.value if isinstance(v, Enum) else v) for k, v in merged.items()}

    def render(self, /, **values: Any) -> str:
        """The text with every placeholder filled; ``KeyError`` names the missing ones."""
        merged = self._values(values)
        missing = self.placeholders - merged.keys()
        if missing:
            raise KeyError(f"Prompt template needs values for {sorted(missing)}")
        if self._braced:
            self._warn_misplaced(merged)
        return self._compiled.safe_substitute(merged)

    def safe_render(self, /, **values: Any) -> str:
        """0.3.0's rendering: placeholders without a value are left as written."""
        merged = self._values(values)
        if self._braced:
            self._warn_misplaced(merged)
        return self._compiled.safe_substitute(merged)

    def __repr__(self) -> str:
        return f"PromptTemplate(template={self.template!r}, defaults={self.defaults!r})"

    def __str__(self) -> str:
        return self.template


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
    """Renders the prompt of a step, with values from ``context_enricher``.

    Two call shapes, both supported: the seed's ``PromptManager(mapping=...,
    context_enricher=lambda state: {...}).get_prompt(state)``, and 0.3.0's
    ``PromptManager(step_prompts=...)`` with ``add_enricher(fn(prompt, context))`` and
    ``get_prompt(step, context={...}, **values)``.
    """

    def __init__(
        self,
        mapping: StepPromptMapping[StepT] | None = None,
        context_enricher: Callable[[Any], Mapping[str, Any]] | None = None,
        *,
        step_prompts: StepPromptMapping[StepT] | None = None,
    ) -> None:
        self.mapping: StepPromptMapping[StepT] = (
            mapping if mapping is not None else step_prompts or StepPromptMapping()
        )
        self.context_enricher = context_enricher
        self._enrichers: list[Callable[[str, dict[str, Any]], str]] = []

    @property
    def step_prompts(self) -> StepPromptMapping[StepT]:
        """0.3.0's name of ``mapping``."""
        return self.mapping

    def add_enricher(self, enricher: Callable[[str, dict[str, Any]], str]) -> PromptManager[StepT]:
        """Add a ``(prompt, context) -> prompt`` function, applied in order after rendering."""
        self._enrichers.append(enricher)
        return self

    def set_prompt(self, step: StepT, prompt: str | PromptTemplate) -> PromptManager[StepT]:
        self.mapping.add(step, prompt)
        return self

    def set_default(self, prompt: str | PromptTemplate) -> PromptManager[StepT]:
        self.mapping.default = _template(prompt)
        return self

    def get_prompt(
        self, state: Any, /, context: Mapping[str, Any] | None = None, **extra: Any
    ) -> str:
        """The prompt for ``state`` (its ``step``), or for a step given directly."""
        step = getattr(state, "step", state)
        values: dict[str, Any] = {"step": step}
        if self.context_enricher is not None and step is not state:
            values.update(self.context_enricher(state))
        values.update(extra)
        prompt = self.mapping.get(step, **values)
        for enricher in self._enrichers:
            prompt = enricher(prompt, dict(context or {}))
        return prompt


def _excerpt(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _template(prompt: str | PromptTemplate) -> PromptTemplate:
    return prompt if isinstance(prompt, PromptTemplate) else PromptTemplate(prompt)
