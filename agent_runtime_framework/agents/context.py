"""What goes into a run (``AgentContext``) and what comes out (``AgentResult``)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import InitVar, dataclass, field
from typing import Any

from ..executor.loop import ToolCallRecord

__all__ = ["INPUT_STORED_KEY", "AgentContext", "AgentMessage", "AgentResult", "JourneyConfig"]

#: ``ctx.metadata[INPUT_STORED_KEY] = True``: the host already stored the run's input in
#: the history (a queued turn stores it with the claim, so a retried turn never stores it
#: twice). The agent reads it for routing but does not append it again.
INPUT_STORED_KEY = "_arf_input_stored"


@dataclass(slots=True)
class AgentContext:
    """One run: which conversation, what the user said, and host metadata.

    ``input_messages`` may hold dicts, ``AgentMessage`` or ``StoredMessage`` objects
    (0.3.0 callers pass ``AgentMessage``); the agent normalizes them once when the run
    starts (``agent_runtime_framework.messages.as_message``).
    """

    #: Hosts give one; when left None a UUID is made on first use (``ensure_run_id``).
    run_id: Any = None
    conversation_id: Any = None
    input_messages: list[Any] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    #: Polled between LLM calls; True ends the run cleanly.
    cancelled: Callable[[], bool] | None = None

    def ensure_run_id(self) -> Any:
        """The run id, made now if the host gave none."""
        if self.run_id is None:
            self.run_id = uuid.uuid4()
        return self.run_id

    def get_user_message(self) -> str | None:
        """The text of the last user message of this run, if any (0.3.0)."""
        for message in reversed(self.input_messages):
            get = message.get if isinstance(message, dict) else message.__getattribute__
            try:
                role, content = get("role"), get("content")
            except AttributeError:
                continue
            if role == "user" and isinstance(content, str):
                return content
        return None

    @classmethod
    def for_message(cls, conversation_id: Any, text: str, **metadata: Any) -> AgentContext:
        """A context for one user message."""
        # Positional (run_id, conversation_id, input_messages, metadata): one per turn.
        return cls(None, conversation_id, [{"role": "user", "content": text}], metadata)


@dataclass(slots=True)
class AgentMessage:
    """A chat message in OpenAI form."""

    role: str
    content: Any = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None
    name: str | None = None
    #: Kept with the message by hosts that store it; never sent to the model.
    metadata: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"role": self.role, "content": self.content}
        if self.tool_calls:
            data["tool_calls"] = self.tool_calls
        if self.tool_call_id:
            data["tool_call_id"] = self.tool_call_id
        if self.name:
            data["name"] = self.name
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AgentMessage:
        return cls(
            role=data["role"],
            content=data.get("content"),
            tool_calls=data.get("tool_calls"),
            tool_call_id=data.get("tool_call_id"),
            name=data.get("name"),
            metadata=dict(data.get("metadata") or {}),
        )


@dataclass(slots=True)
class AgentResult:
    """The outcome of a turn."""

    response: str
    state: Any = None
    #: The messages this turn added to the conversation (user input included).
    messages: list[dict[str, Any]] = field(default_factory=list)
    usage: dict[str, int] = field(default_factory=dict)
    tool_calls: list[ToolCallRecord] = field(default_factory=list)
    iterations: int = 0
    stopped_reason: str = "text_response"
    step: Any = None
    complete: bool = False
    #: Set when a tool asked to hand the user back to the intent router.
    handoff: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def final_response(self) -> str:
        return self.response

    @property
    def step_value(self) -> Any:
        return getattr(self.step, "value", self.step)


@dataclass(slots=True)
class JourneyConfig:
    """Per-agent settings."""

    #: Executor limits (max iterations, failure bound, streaming, LLM kwargs).
    max_iterations: int = 10
    max_consecutive_tool_failures: int = 3
    stream: bool = False
    llm_kwargs: dict[str, Any] = field(default_factory=dict)
    #: Read at most this many history messages per turn, so a turn's cost does not grow
    #: with the conversation (None: the memory's default, 200; the Django app's setting
    #: ``MAX_HISTORY_MESSAGES``). The stored history always stays complete.
    max_history_messages: int | None = None
    #: Of those, send the newest that fit this many (estimated) tokens (None: all of them).
    history_token_budget: int | None = 8000
    #: Human-readable name (admin, graphs); defaults to the key.
    name: str | None = None
    description: str = ""
    #: Tools whose call ends the run at once; the tool's result is the reply (0.3.0).
    terminal_tools: set[str] = field(default_factory=set)
    #: At a terminal step, a user message containing one of these gets no model call and
    #: an empty reply (0.3.0's ``is_closing_message``).
    closing_phrases: list[str] = field(
        default_factory=lambda: ["thank you", "thanks", "bye", "goodbye"]
    )
    #: Offer the built-in ``talk_to_a_person`` tool at every step (None: the agent class's
    #: ``offer_escalation``, else the host's default; see agents/people.py).
    offer_escalation: bool | None = None

    #: 0.3.0's name of ``max_iterations`` (also readable and settable as an attribute).
    max_tool_iterations: InitVar[int | None] = None

    def __post_init__(self, max_tool_iterations: int | None) -> None:
        if max_tool_iterations is not None:
            self.max_iterations = max_tool_iterations


def _get_max_tool_iterations(self: JourneyConfig) -> int:
    return self.max_iterations


def _set_max_tool_iterations(self: JourneyConfig, value: int) -> None:
    self.max_iterations = value


# After the dataclass is made, so that the InitVar above stays a constructor argument.
JourneyConfig.max_tool_iterations = property(  # type: ignore[attr-defined]
    _get_max_tool_iterations, _set_max_tool_iterations
)
