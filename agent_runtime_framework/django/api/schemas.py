"""The API's request and response bodies: one pydantic declaration each.

They validate what comes in (with the API's error codes: ``missing_field``,
``invalid_field``, ``message_too_long``, ...), shape what goes out, and are the schemas of
the OpenAPI document. Limits that are settings (``MAX_MESSAGE_CHARS``) and the registered
agents are read when a request is validated or the document is generated, not at import.

Response models allow extra keys and operations dump them with ``exclude_unset``: what a
view returns is checked against the declaration and sent unchanged.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetJsonSchemaHandler,
    WithJsonSchema,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import PydanticCustomError

from ..conf import app_settings

__all__ = [
    "Agent",
    "AgentList",
    "Approval",
    "ApprovalAnswer",
    "ApprovalDecision",
    "ConversationDetail",
    "ConversationList",
    "ConversationSummary",
    "CreatedConversation",
    "HandoffAnswer",
    "HandoffRequest",
    "IdempotencyKey",
    "NewConversation",
    "NewMessage",
    "Progress",
    "Queued",
    "Run",
    "Turn",
    "message_text",
]


# -- field types ------------------------------------------------------------------------------


def _text(value: Any, name: str, *, required: bool) -> str | None:
    if value is None:
        if required:
            raise PydanticCustomError(
                "missing_field", f"The field {name!r} is required", {"field": name}
            )
        return None
    if not isinstance(value, str):
        raise PydanticCustomError(
            "invalid_field",
            f"The field {name!r} must be a string",
            {"field": name, "expected": "string", "got": type(value).__name__},
        )
    if "\x00" in value:
        raise PydanticCustomError(
            "invalid_field", f"The field {name!r} contains a NUL character", {"field": name}
        )
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise PydanticCustomError(
            "invalid_field", f"The field {name!r} is not valid Unicode text", {"field": name}
        ) from None
    return value


def message_text(value: Any, *, required: bool) -> str | None:
    """A user message as the API takes it (``PydanticCustomError`` with the API's code
    otherwise); also AG-UI's last user message (agui.py)."""
    message = _text(value, "message", required=required)
    if message is None:
        return None
    if not message.strip():
        if not required:
            return None
        raise PydanticCustomError("invalid_field", "The message is empty", {"field": "message"})
    limit = int(app_settings().MAX_MESSAGE_CHARS)
    if len(message) > limit:
        raise PydanticCustomError(
            "message_too_long",
            f"The message has {len(message)} characters; at most {limit} are allowed",
            {"field": "message", "max_chars": limit, "chars": len(message)},
        )
    return message


def _message_schema(schema: dict[str, Any]) -> None:
    schema["maxLength"] = int(app_settings().MAX_MESSAGE_CHARS)


def _agent_schema(schema: dict[str, Any]) -> None:
    from ..host.registry import registered_runtimes

    keys = sorted(registered_runtimes())
    if keys:
        schema["enum"] = keys


class _SchemaAtGeneration:
    """An annotation completing a field's JSON schema when the document is generated (the
    limits are settings, the agents are registered at run time)."""

    def __init__(self, complete: Callable[[dict[str, Any]], None]) -> None:
        self.complete = complete

    def __get_pydantic_json_schema__(
        self, core_schema: Any, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        schema = handler(core_schema)
        schema = handler.resolve_ref_schema(schema)
        self.complete(schema)
        return schema


def _first_message_schema(schema: dict[str, Any]) -> None:
    schema.pop("anyOf", None)
    schema.update(type="string", description="Optional first user message")
    _message_schema(schema)


def _message_id(value: Any) -> str | None:
    if value is None:
        return None
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        raise PydanticCustomError(
            "invalid_field", "message_id must be a UUID", {"field": "message_id"}
        ) from None


def _reason(value: Any) -> str:
    if not isinstance(value, str):
        raise PydanticCustomError("invalid_field", "reason must be a string", {"field": "reason"})
    return value


def _decision(value: Any) -> str:
    if value not in ("approve", "reject"):
        raise PydanticCustomError(
            "invalid_decision", 'decision must be "approve" or "reject"', {"field": "decision"}
        )
    return str(value)


#: A user message (required): not blank, at most ``MAX_MESSAGE_CHARS`` characters.
MessageText = Annotated[
    str,
    BeforeValidator(lambda v: message_text(v, required=True)),
    Field(min_length=1),
    _SchemaAtGeneration(_message_schema),
]
#: An optional first message (a blank one counts as none).
FirstMessage = Annotated[
    str | None,
    BeforeValidator(lambda v: message_text(v, required=False)),
    _SchemaAtGeneration(_first_message_schema),
]
#: The key of a registered agent (the document lists the ones registered now).
AgentKey = Annotated[
    str,
    BeforeValidator(lambda v: _text(v, "agent", required=True)),
    Field(description="Key of a registered agent"),
    _SchemaAtGeneration(_agent_schema),
]
#: The client's id of its message.
MessageId = Annotated[
    str | None,
    BeforeValidator(_message_id),
    WithJsonSchema(
        {
            "type": "string",
            "format": "uuid",
            "description": "The client's id of the message: the run.started event of its "
            "turn carries it, so a page recognises its own turn",
        }
    ),
]
#: ``Idempotency-Key``: 1-200 visible ASCII characters.
IdempotencyKey = Annotated[str, Field(pattern=r"^[\x21-\x7e]{1,200}$")]

_uuid = {"type": "string", "format": "uuid"}
_datetime = {"type": "string", "format": "date-time"}
UuidText = Annotated[str, WithJsonSchema(_uuid)]
Timestamp = Annotated[str, WithJsonSchema(_datetime)]
OptionalTimestamp = Annotated[str | None, WithJsonSchema({"anyOf": [_datetime, {"type": "null"}]})]


# -- requests ---------------------------------------------------------------------------------


class NewConversation(BaseModel):
    """Start a conversation with an agent, optionally with a first message."""

    agent: AgentKey
    message: FirstMessage = None


class NewMessage(BaseModel):
    """A user message."""

    message: MessageText
    message_id: MessageId = None


class HandoffRequest(BaseModel):
    """Why the user asks for a person (optional)."""

    reason: Annotated[str, BeforeValidator(_reason)] = ""


class ApprovalDecision(BaseModel):
    # Absent is refused by the validator too (invalid_decision, not missing_field).
    model_config = ConfigDict(json_schema_extra={"required": ["decision"]})

    decision: Annotated[Literal["approve", "reject"], BeforeValidator(_decision)] = Field(
        default=None, validate_default=True
    )


# -- responses --------------------------------------------------------------------------------


class _Out(BaseModel):
    model_config = ConfigDict(extra="allow")


class Progress(_Out):
    index: int = Field(ge=0, description="1-based position of the step; 0 when unknown")
    total: int = Field(ge=0)
    steps: list[Any]
    item: str | None = Field(None, description="In a loop (step_groups): what one round adds")
    round: int | None = Field(None, description="In a loop: the round the journey is at")


class Agent(_Out):
    key: str
    name: str
    description: str
    steps: list[Any]
    journeys: list[Agent] | None = Field(None, description="The journeys behind a router")


class LLMInfo(_Out):
    model: str
    offline_standin: bool


class AgentList(_Out):
    agents: list[Agent]
    llm: LLMInfo


class Turn(_Out):
    conversation_id: UuidText
    reply: str
    agent: str
    journey: str = Field(
        description="Key of the journey that answered (differs from agent behind a router)"
    )
    step: Any
    progress: Progress
    state: dict[str, Any]
    complete: bool
    stopped_reason: str
    usage: dict[str, Any]
    run_id: str = Field("", description="The turn's run: its events on the stream carry it")


class CreatedConversation(_Out):
    """A new conversation; with a first message, also every field of Turn."""

    conversation_id: UuidText
    agent: str


RunStatus = Literal["queued", "running", "done", "failed"]


class Queued(_Out):
    """TURNS = "queued": the message is stored and a worker answers it."""

    conversation_id: UuidText
    run_id: UuidText
    message_id: UuidText
    status: RunStatus
    position: int = Field(description="Unfinished messages of the conversation ahead of it")
    status_url: str


class Run(_Out):
    conversation_id: UuidText
    run_id: UuidText
    message_id: UuidText
    status: RunStatus
    position: int
    attempts: int
    turn: Turn | None
    error: dict[str, Any] | None
    created_at: Timestamp
    started_at: OptionalTimestamp
    finished_at: OptionalTimestamp


class ConversationSummary(_Out):
    conversation_id: UuidText
    agent: str
    journey: str
    step: str | None
    status: str = Field(description="active, complete, failed, abandoned or parked")
    updated_at: Timestamp


class ConversationList(_Out):
    conversations: list[ConversationSummary]


class Message(_Out):
    seq: int
    role: str = Field(description="user, assistant, tool or system")
    content: str | None
    tool_calls: list[Any] | None
    tool_call_id: str | None
    created_at: Timestamp


class JourneyInfo(_Out):
    journey: str
    step: Any
    status: str
    progress: Progress
    updated_at: Timestamp


class Approval(_Out):
    """A tool call that needs approval (by the user or by staff)."""

    id: UuidText
    journey: str
    tool: str
    arguments: Any
    approver: str = Field(description="user or staff")
    summary: str
    status: str = Field(description="pending, approved, rejected or executed")
    decided_by: str | None
    result: Any
    created_at: Timestamp
    decided_at: OptionalTimestamp


class ConversationDetail(_Out):
    conversation_id: UuidText
    agent: str
    journey: str
    step: Any
    progress: Progress
    state: dict[str, Any]
    complete: bool
    status: str
    journeys: list[JourneyInfo] = Field(
        description="Every journey of the conversation (conversation control)"
    )
    parked: list[str] = Field(description="Journeys set aside by a switch, resumable, oldest first")
    approvals: list[Approval] = Field(
        description="Tool calls held for approval, and what became of them"
    )
    messages: list[Message]


class HandoffAnswer(_Out):
    conversation_id: UuidText
    handoff_status: str = Field(description='"", "waiting" or "staff"')
    requested: bool


class ApprovalAnswer(_Out):
    approval: Approval
