"""0.3.0's module path for ``PromptManager`` (it lives in ``templates``), plus
``preference_enricher``, an enricher factory 0.3.0 shipped here."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .templates import PromptManager, PromptTemplate, StepPromptMapping

__all__ = ["PromptManager", "PromptTemplate", "StepPromptMapping", "preference_enricher"]


def preference_enricher(
    preference_key: str, format_string: str = "\n\nNote: User prefers {value}."
) -> Callable[[str, dict[str, Any]], str]:
    """An enricher (for ``PromptManager.add_enricher``) that appends a user preference
    from the context when it is set."""

    def enrich(prompt: str, context: dict[str, Any]) -> str:
        value = context.get(preference_key)
        return prompt + format_string.format(value=value) if value else prompt

    return enrich
