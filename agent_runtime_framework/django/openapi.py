"""The OpenAPI 3.0 document of the HTTP API (served at ``openapi.json``).

Paths are relative to the prefix the project includes the app's URLs under; the document's
``servers`` entry names that prefix. A test checks that every URL pattern of ``urls.py`` is
documented here and that nothing else is.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.urls import NoReverseMatch, reverse

from .conf import app_settings

__all__ = ["DOCUMENTED_PATHS", "ERROR_CODES", "openapi_document"]

_JSON = "application/json"

#: The API's paths, as in ``urls.py`` with ``{name}`` for each converter.
DOCUMENTED_PATHS = (
    "/agents",
    "/conversations",
    "/conversations/{conversation_id}",
    "/conversations/{conversation_id}/messages",
    "/conversations/{conversation_id}/events",
    "/conversations/{conversation_id}/runs/{run_id}",
    "/conversations/{conversation_id}/handoff",
    "/conversations/{conversation_id}/approvals/{approval_id}",
    "/openapi.json",
    "/ag-ui/{agent_key}",
)


#: Every error ``code`` the API answers with, by status: the Error schema's enum, kept
#: here so that a test can hold every answer of the API against it.
ERROR_CODES: dict[int, tuple[str, ...]] = {
    400: (
        "invalid_request",
        "invalid_json",
        "missing_field",
        "invalid_field",
        "unknown_agent",
        "invalid_idempotency_key",
        "invalid_last_event_id",
        "invalid_decision",
    ),
    403: ("authentication_required", "csrf_failed", "staff_only"),
    404: ("not_found", "approval_not_found", "run_not_found"),
    405: ("method_not_allowed",),
    409: ("conversation_busy", "request_in_progress", "agent_unavailable", "already_decided"),
    413: ("body_too_large",),
    415: ("unsupported_media_type",),
    422: ("message_too_long",),
    429: ("usage_limit_exceeded",),
    500: ("internal_error",),
    502: ("llm_error",),
    503: ("llm_not_configured", "queue_unavailable"),
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _error(status: int, description: str) -> dict[str, Any]:
    codes = ", ".join(ERROR_CODES[status])
    return {
        "description": f"{description} (code: {codes})",
        "content": {_JSON: {"schema": _ref("Error")}},
    }


def _ok(description: str, schema: str) -> dict[str, Any]:
    return {"description": description, "content": {_JSON: {"schema": _ref(schema)}}}


_RETRY_AFTER = {
    "Retry-After": {"description": "Seconds to wait before retrying", "schema": {"type": "integer"}}
}


def _run_fields() -> dict[str, Any]:
    """What the 202 of a queued message and the run's status share (``queued.py``)."""
    return {
        "conversation_id": {"type": "string", "format": "uuid"},
        "run_id": {"type": "string", "format": "uuid"},
        "message_id": {"type": "string", "format": "uuid"},
        "status": {"type": "string", "enum": ["queued", "running", "done", "failed"]},
        "position": {
            "type": "integer",
            "description": "Unfinished messages of the conversation ahead of it",
        },
    }


def _schemas(max_chars: int, agent_keys: list[str]) -> dict[str, Any]:
    nullable_string = {"type": "string", "nullable": True}
    agent_field: dict[str, Any] = {"type": "string", "description": "Key of a registered agent"}
    if agent_keys:
        agent_field["enum"] = agent_keys
    return {
        "Error": {
            "type": "object",
            "required": ["error"],
            "properties": {
                "error": {
                    "type": "object",
                    "required": ["code", "message", "details"],
                    "properties": {
                        "code": {
                            "type": "string",
                            "enum": sorted({c for codes in ERROR_CODES.values() for c in codes}),
                            "example": "message_too_long",
                        },
                        "message": {"type": "string"},
                        "details": {"type": "object", "additionalProperties": True},
                    },
                }
            },
        },
        "Progress": {
            "type": "object",
            "required": ["index", "total", "steps"],
            "properties": {
                "index": {
                    "type": "integer",
                    "minimum": 0,
                    "description": "1-based position of the step; 0 when unknown",
                },
                "total": {"type": "integer", "minimum": 0},
                "steps": {"type": "array", "items": {}},
                "item": {
                    "type": "string",
                    "description": "In a loop (step_groups): what one round adds",
                },
                "round": {
                    "type": "integer",
                    "minimum": 1,
                    "description": "In a loop: the round the journey is at (item 2)",
                },
            },
        },
        "Agent": {
            "type": "object",
            "required": ["key", "name", "description", "steps"],
            "properties": {
                "key": {"type": "string"},
                "name": {"type": "string"},
                "description": {"type": "string"},
                "steps": {"type": "array", "items": {}},
                "journeys": {
                    "type": "array",
                    "items": _ref("Agent"),
                    "description": "The journeys behind a router",
                },
            },
        },
        "AgentList": {
            "type": "object",
            "required": ["agents", "llm"],
            "properties": {
                "agents": {"type": "array", "items": _ref("Agent")},
                "llm": {
                    "type": "object",
                    "required": ["model", "offline_standin"],
                    "properties": {
                        "model": {"type": "string"},
                        "offline_standin": {"type": "boolean"},
                    },
                },
            },
        },
        "Turn": {
            "type": "object",
            "required": [
                "conversation_id",
                "reply",
                "agent",
                "journey",
                "step",
                "progress",
                "state",
                "complete",
                "stopped_reason",
                "usage",
            ],
            "properties": {
                "conversation_id": {"type": "string", "format": "uuid"},
                "reply": {"type": "string"},
                "agent": {"type": "string"},
                "journey": {
                    "type": "string",
                    "description": "Key of the journey that answered (differs from "
                    "agent behind a router)",
                },
                "step": {"nullable": True},
                "progress": _ref("Progress"),
                "state": {"type": "object", "additionalProperties": True},
                "complete": {"type": "boolean"},
                "stopped_reason": {"type": "string"},
                "usage": {"type": "object", "additionalProperties": {"type": "integer"}},
                "run_id": {
                    "type": "string",
                    "format": "uuid",
                    "description": "The turn's run: its events on the stream carry it",
                },
            },
        },
        "Queued": {
            "type": "object",
            "description": 'TURNS = "queued": the message is stored and a worker answers it',
            "required": list(_run_fields()),
            "properties": {**_run_fields(), "status_url": {"type": "string"}},
            "additionalProperties": True,
        },
        "Run": {
            "type": "object",
            "required": list(_run_fields()),
            "properties": {
                **_run_fields(),
                "attempts": {"type": "integer"},
                "turn": {"nullable": True, "allOf": [_ref("Turn")]},
                "error": {"type": "object", "nullable": True, "additionalProperties": True},
                "created_at": {"type": "string", "format": "date-time"},
                "started_at": {"type": "string", "format": "date-time", "nullable": True},
                "finished_at": {"type": "string", "format": "date-time", "nullable": True},
            },
        },
        "CreatedConversation": {
            "type": "object",
            "required": ["conversation_id", "agent"],
            "properties": {
                "conversation_id": {"type": "string", "format": "uuid"},
                "agent": {"type": "string"},
            },
            "additionalProperties": True,
            "description": "With a first message, also every field of Turn",
        },
        "ConversationSummary": {
            "type": "object",
            "required": ["conversation_id", "agent", "journey", "step", "status", "updated_at"],
            "properties": {
                "conversation_id": {"type": "string", "format": "uuid"},
                "agent": {"type": "string"},
                "journey": {"type": "string"},
                "step": nullable_string,
                "status": {
                    "type": "string",
                    "enum": ["active", "complete", "failed", "abandoned", "parked"],
                },
                "updated_at": {"type": "string", "format": "date-time"},
            },
        },
        "ConversationList": {
            "type": "object",
            "required": ["conversations"],
            "properties": {
                "conversations": {"type": "array", "items": _ref("ConversationSummary")}
            },
        },
        "Message": {
            "type": "object",
            "required": ["seq", "role", "content", "tool_calls", "tool_call_id", "created_at"],
            "properties": {
                "seq": {"type": "integer"},
                "role": {"type": "string", "enum": ["user", "assistant", "tool", "system"]},
                "content": nullable_string,
                "tool_calls": {"type": "array", "nullable": True, "items": {"type": "object"}},
                "tool_call_id": nullable_string,
                "created_at": {"type": "string", "format": "date-time"},
            },
        },
        "ConversationDetail": {
            "type": "object",
            "required": [
                "conversation_id",
                "agent",
                "journey",
                "step",
                "progress",
                "state",
                "complete",
                "messages",
            ],
            "properties": {
                "conversation_id": {"type": "string", "format": "uuid"},
                "agent": {"type": "string"},
                "journey": {"type": "string"},
                "step": nullable_string,
                "progress": _ref("Progress"),
                "state": {"type": "object", "additionalProperties": True},
                "complete": {"type": "boolean"},
                "status": {"type": "string"},
                "journeys": {
                    "type": "array",
                    "description": "Every journey of the conversation (conversation control)",
                    "items": {
                        "type": "object",
                        "properties": {
                            "journey": {"type": "string"},
                            "step": nullable_string,
                            "status": {"type": "string"},
                            "progress": _ref("Progress"),
                            "updated_at": {"type": "string", "format": "date-time"},
                        },
                    },
                },
                "parked": {
                    "type": "array",
                    "items": {"type": "string"},
                    "description": "Journeys set aside by a switch, resumable, oldest first",
                },
                "approvals": {
                    "type": "array",
                    "items": _ref("Approval"),
                    "description": "Tool calls held for approval, and what became of them",
                },
                "messages": {"type": "array", "items": _ref("Message")},
            },
        },
        "Approval": {
            "type": "object",
            "description": "A tool call that needs approval (by the user or by staff)",
            "properties": {
                "id": {"type": "string", "format": "uuid"},
                "journey": {"type": "string"},
                "tool": {"type": "string"},
                "arguments": {"type": "object", "additionalProperties": True},
                "approver": {"type": "string", "enum": ["user", "staff"]},
                "summary": {"type": "string"},
                "status": {
                    "type": "string",
                    "enum": ["pending", "approved", "rejected", "executed"],
                },
                "decided_by": nullable_string,
                "result": nullable_string,
                "created_at": {"type": "string", "format": "date-time"},
                "decided_at": {"type": "string", "format": "date-time", "nullable": True},
            },
        },
        "ApprovalDecision": {
            "type": "object",
            "required": ["decision"],
            "properties": {"decision": {"type": "string", "enum": ["approve", "reject"]}},
        },
        "NewConversation": {
            "type": "object",
            "required": ["agent"],
            "properties": {
                "agent": agent_field,
                "message": {
                    "type": "string",
                    "maxLength": max_chars,
                    "description": "Optional first user message",
                },
            },
        },
        "NewMessage": {
            "type": "object",
            "required": ["message"],
            "properties": {
                "message": {"type": "string", "minLength": 1, "maxLength": max_chars},
                "message_id": {
                    "type": "string",
                    "format": "uuid",
                    "description": "The client's id of the message: the run.started event "
                    "of its turn carries it, so a page recognises its own turn",
                },
            },
        },
        "RunAgentInput": {
            "type": "object",
            "description": (
                "AG-UI's RunAgentInput (https://docs.ag-ui.com). Only the last message is "
                "used, and it must be the new user message; the rest (history, state, "
                "tools, context, forwardedProps) is accepted and ignored."
            ),
            "required": ["threadId", "runId", "messages"],
            "properties": {
                "threadId": {
                    "type": "string",
                    "format": "uuid",
                    "description": "The conversation id (a new one starts a conversation)",
                },
                "runId": {
                    "type": "string",
                    "pattern": "^[\\x21-\\x7e]{1,190}$",
                    "description": "The run's id, also the turn's idempotency key",
                },
                "messages": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "required": ["id", "role", "content"],
                        "properties": {
                            "id": {"type": "string"},
                            "role": {"type": "string", "enum": ["user"]},
                            "content": {"type": "string", "minLength": 1, "maxLength": max_chars},
                        },
                    },
                },
            },
        },
    }


def _conversation_param() -> dict[str, Any]:
    return {
        "name": "conversation_id",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "format": "uuid"},
    }


def _paths(agent_keys: list[str]) -> dict[str, Any]:
    auth_errors = {
        "403": _error(403, "Not logged in (and anonymous use is off), or the CSRF check failed"),
    }
    not_found = {
        "404": _error(
            404,
            "No such conversation for this caller: unknown, someone else's, or made from "
            "code with no owner (same answer for all)",
        ),
    }
    body_errors = {
        "400": _error(
            400,
            "Malformed request: a lying Content-Length, malformed or too deeply nested JSON, "
            "not a JSON object, a missing or wrong-typed field, an unknown agent, a bad "
            "Idempotency-Key",
        ),
        "413": _error(413, "Body larger than MAX_BODY_BYTES"),
        "415": _error(415, "Body is not application/json (checked before the CSRF check)"),
        "422": _error(422, "Message longer than MAX_MESSAGE_CHARS"),
    }
    turn_errors = {
        "409": {
            **_error(
                409,
                "The conversation is busy with another turn, the same Idempotency-Key is "
                "still being processed, or the conversation's agent is no longer registered",
            ),
            "headers": _RETRY_AFTER,
        },
        "429": {
            **_error(
                429,
                "The caller is over a LIMITS limit (turns or tokens per period); the message "
                "was not stored. Retry-After says when the window frees",
            ),
            "headers": _RETRY_AFTER,
        },
        "502": _error(502, "The language model provider failed"),
        "503": _error(503, "No language model is configured"),
    }
    return {
        "/agents": {
            "get": {
                "operationId": "listAgents",
                "summary": "Registered agents and their steps, and the model in use",
                "responses": {"200": _ok("The agents", "AgentList")},
            }
        },
        "/conversations": {
            "get": {
                "operationId": "listConversations",
                "summary": "The caller's conversations, most recent first (at most 100)",
                "responses": {"200": _ok("The conversations", "ConversationList"), **auth_errors},
            },
            "post": {
                "operationId": "createConversation",
                "summary": "Start a conversation with an agent, optionally with a first message",
                "requestBody": {
                    "required": True,
                    "content": {_JSON: {"schema": _ref("NewConversation")}},
                },
                "responses": {
                    "201": _ok(
                        "Created (with the first turn when a message was given)",
                        "CreatedConversation",
                    ),
                    **auth_errors,
                    **body_errors,
                    **turn_errors,
                },
            },
        },
        "/conversations/{conversation_id}": {
            "get": {
                "operationId": "getConversation",
                "summary": "Where the conversation's journey stands, and its messages",
                "parameters": [_conversation_param()],
                "responses": {
                    "200": _ok("The conversation", "ConversationDetail"),
                    **auth_errors,
                    **not_found,
                },
            }
        },
        "/conversations/{conversation_id}/messages": {
            "post": {
                "operationId": "postMessage",
                "summary": "Send a user message and get the turn's answer",
                "parameters": [
                    _conversation_param(),
                    {
                        "name": "Idempotency-Key",
                        "in": "header",
                        "required": False,
                        "description": "A retried request with the same key returns the "
                        "first response instead of playing the turn again",
                        "schema": {"type": "string", "pattern": "^[\\x21-\\x7e]{1,200}$"},
                    },
                ],
                "requestBody": {
                    "required": True,
                    "content": {_JSON: {"schema": _ref("NewMessage")}},
                },
                "responses": {
                    "200": _ok("The turn", "Turn"),
                    "202": _ok('Stored and queued (TURNS = "queued"); Location: the run', "Queued"),
                    **auth_errors,
                    **not_found,
                    **body_errors,
                    **turn_errors,
                },
            }
        },
        "/conversations/{conversation_id}/handoff": {
            "post": {
                "operationId": "requestHandoff",
                "summary": "Hand the conversation to a person, without asking the model",
                "description": (
                    "Staff see it in the admin's queue; until one hands it back the model "
                    "is not called and each message is answered with HANDOFF_REPLY. "
                    "Idempotent: a conversation already waiting for or with a person stays "
                    "as it is (requested: false)."
                ),
                "parameters": [_conversation_param()],
                "requestBody": {
                    "required": True,
                    "content": {
                        _JSON: {
                            "schema": {
                                "type": "object",
                                "properties": {"reason": {"type": "string", "maxLength": 500}},
                            }
                        }
                    },
                },
                "responses": {
                    "200": {
                        "description": "Where the conversation stands",
                        "content": {
                            _JSON: {
                                "schema": {
                                    "type": "object",
                                    "required": ["conversation_id", "handoff_status", "requested"],
                                    "properties": {
                                        "conversation_id": {"type": "string", "format": "uuid"},
                                        "handoff_status": {
                                            "type": "string",
                                            "enum": ["", "waiting", "staff"],
                                        },
                                        "requested": {"type": "boolean"},
                                    },
                                }
                            }
                        },
                    },
                    **auth_errors,
                    **not_found,
                    **body_errors,
                },
            }
        },
        "/conversations/{conversation_id}/approvals/{approval_id}": {
            "post": {
                "operationId": "decideApproval",
                "summary": "Approve or reject a tool call held for the user's approval",
                "description": (
                    "Approving runs the tool exactly once (at once when the conversation "
                    "is free, else with the turn that holds it); its result enters the "
                    "conversation as the tool's result. Rejecting tells the model."
                ),
                "parameters": [
                    _conversation_param(),
                    {
                        "name": "approval_id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string", "format": "uuid"},
                    },
                ],
                "requestBody": {
                    "required": True,
                    "content": {_JSON: {"schema": _ref("ApprovalDecision")}},
                },
                "responses": {
                    "200": {
                        "description": "The approval as it stands",
                        "content": {
                            _JSON: {
                                "schema": {
                                    "type": "object",
                                    "properties": {"approval": _ref("Approval")},
                                }
                            }
                        },
                    },
                    "400": _error(400, "decision is not approve or reject"),
                    "403": _error(403, "Not logged in, CSRF failed, or only staff may decide"),
                    "404": _error(
                        404, "No such conversation for this caller, or no such approval in it"
                    ),
                    "409": _error(409, "Already decided"),
                },
            }
        },
        "/conversations/{conversation_id}/runs/{run_id}": {
            "get": {
                "operationId": "getRun",
                "summary": "A queued turn: queued, running, done (with the turn) or failed",
                "parameters": [
                    _conversation_param(),
                    {
                        "name": "run_id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string", "format": "uuid"},
                    },
                ],
                "responses": {
                    "200": _ok("The run", "Run"),
                    **auth_errors,
                    "404": _error(404, "No such conversation for this caller, or no such run"),
                },
            }
        },
        "/conversations/{conversation_id}/events": {
            "get": {
                "operationId": "streamEvents",
                "summary": "Server-sent events of the conversation, resumable",
                "description": (
                    "Each event is `id: <event id>`, `event: <type>`, `data: <json>`. Types: "
                    "tool.call, tool.result, assistant.message, assistant.delta (live only), "
                    "journey.step_changed, journey.completed, journey.routed, error; people "
                    "in the loop: handoff.requested, handoff.taken, staff.message, "
                    "handoff.returned, handoff.user_message, approval.requested, "
                    "approval.approved, approval.rejected, approval.executed. "
                    "Resumes after Last-Event-ID (header or last_event_id query). Comments "
                    "keep the connection alive."
                ),
                "parameters": [
                    _conversation_param(),
                    {
                        "name": "Last-Event-ID",
                        "in": "header",
                        "required": False,
                        "schema": {"type": "string"},
                    },
                    {
                        "name": "last_event_id",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "string"},
                    },
                ],
                "responses": {
                    "200": {
                        "description": "The event stream",
                        "content": {"text/event-stream": {"schema": {"type": "string"}}},
                    },
                    "400": _error(400, "Last-Event-ID is not an event id"),
                    **auth_errors,
                    **not_found,
                },
            }
        },
        "/ag-ui/{agent_key}": {
            "post": {
                "operationId": "runAgUi",
                "summary": "Run a turn for an AG-UI front end; answers with AG-UI events (SSE)",
                "description": (
                    "Events: RUN_STARTED, STATE_SNAPSHOT, STEP_STARTED/STEP_FINISHED, "
                    "TEXT_MESSAGE_START/CONTENT/END, TOOL_CALL_START/ARGS/END/RESULT, "
                    "STATE_DELTA, CUSTOM, then RUN_FINISHED, or RUN_ERROR whose code is one "
                    "of this API's error codes (e.g. conversation_busy, llm_error)."
                ),
                "parameters": [
                    {
                        "name": "agent_key",
                        "in": "path",
                        "required": True,
                        "description": "Key of a registered agent",
                        "schema": {
                            "type": "string",
                            **({"enum": agent_keys} if agent_keys else {}),
                        },
                    }
                ],
                "requestBody": {
                    "required": True,
                    "content": {_JSON: {"schema": _ref("RunAgentInput")}},
                },
                "responses": {
                    "200": {
                        "description": "The run's AG-UI events",
                        "content": {"text/event-stream": {"schema": {"type": "string"}}},
                    },
                    **auth_errors,
                    "404": _error(
                        404,
                        "No agent with this key, or the thread is a conversation the caller "
                        "does not own (or one with another agent)",
                    ),
                    **body_errors,
                },
            }
        },
        "/openapi.json": {
            "get": {
                "operationId": "getOpenApi",
                "summary": "This document",
                "responses": {
                    "200": {
                        "description": "OpenAPI 3 document",
                        "content": {_JSON: {"schema": {"type": "object"}}},
                    }
                },
            }
        },
    }


def _server_url(request: HttpRequest | None) -> str:
    try:
        agents = reverse("agent_runtime:agents")
    except NoReverseMatch:
        return "/"
    prefix = agents[: -len("agents")].rstrip("/") or "/"
    if request is not None:
        return request.build_absolute_uri(prefix)
    return prefix


def openapi_document(request: HttpRequest | None = None) -> dict[str, Any]:
    """The OpenAPI 3.0.3 document, with limits taken from the current settings."""
    from .. import __version__ as version
    from .registry import registered_runtimes

    max_chars = int(app_settings().MAX_MESSAGE_CHARS)
    agent_keys = sorted(registered_runtimes())
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "agent-runtime-framework HTTP API",
            "version": str(version),
            "description": (
                "Journey-based conversational agents. Session authentication; POSTs need the "
                "X-CSRFToken header (value of the csrftoken cookie). Errors are "
                '{"error": {"code", "message", "details"}}; a method an operation does not '
                "list answers 405 (method_not_allowed, with an Allow header). A client's "
                "mistake never gets a 5xx."
            ),
        },
        "servers": [{"url": _server_url(request)}],
        "security": [{"sessionCookie": []}],
        "paths": _paths(agent_keys),
        "components": {
            "schemas": _schemas(max_chars, agent_keys),
            "securitySchemes": {
                "sessionCookie": {"type": "apiKey", "in": "cookie", "name": "sessionid"},
                "csrfHeader": {"type": "apiKey", "in": "header", "name": "X-CSRFToken"},
            },
        },
    }
