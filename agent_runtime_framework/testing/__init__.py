"""Testing kit: a scripted fake LLM, a journey driver, a RunContext double (also a pytest
plugin). Local fake provider servers live in ``agent_runtime_framework.testing.fake_providers``.
"""

from .driver import JourneyDriver
from .run_context import CheckpointStore, EmittedEvent, FakeRunContext, FakeRunner
from .scripted import RecordedCall, ScriptedLLM, ScriptExhausted, tool_call

__all__ = [
    "CheckpointStore",
    "EmittedEvent",
    "FakeRunContext",
    "FakeRunner",
    "JourneyDriver",
    "RecordedCall",
    "ScriptExhausted",
    "ScriptedLLM",
    "tool_call",
]
