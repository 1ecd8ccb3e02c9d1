"""Prompts: templates and per-step mappings."""

from .templates import PromptManager, PromptTemplate, StepPromptMapping

__all__ = ["PromptManager", "PromptTemplate", "StepPromptMapping"]
