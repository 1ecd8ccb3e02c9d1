"""Testing kit: a scripted fake LLM and a journey driver (also a pytest plugin)."""

from .driver import JourneyDriver
from .scripted import RecordedCall, ScriptedLLM, ScriptExhausted, tool_call

__all__ = ["JourneyDriver", "RecordedCall", "ScriptExhausted", "ScriptedLLM", "tool_call"]
