"""Anthropic's Messages API behind the OpenAI-shaped LLM protocol.

The framework speaks OpenAI chat format everywhere; this client translates on the way in
(system prompt separate, tool calls as ``tool_use`` blocks, tool results grouped into one
user turn, roles strictly alternating and starting with the user) and on the way out
(text blocks joined into ``content``, ``tool_use`` blocks as OpenAI ``tool_calls``,
``stop_reason`` as ``finish_reason``, input/output tokens as normalized usage). The SDK's
own retries are off: ``RetryPolicy`` is the one policy.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any

from ._wire import field, text_of
from .base import LLMConnectionError, LLMResponse, LLMServerError, normalize_usage
from .retry import RetryPolicy
from .sdk_client import SNIPPET, Messages, SDKChatClient, Tools

__all__ = [
    "CONVERSATION_START",
    "AnthropicClient",
    "from_anthropic_message",
    "to_anthropic_messages",
    "to_anthropic_tool_choice",
    "to_anthropic_tools",
]

#: Sent as the first user turn when a conversation would otherwise start with the
#: assistant (or be empty): the Messages API requires the first message to be the user's.
CONVERSATION_START = "(The conversation starts.)"

_STOP_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "tool_use": "tool_calls",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "refusal": "content_filter",
}


# -- request translation ------------------------------------------------------------------


def _parse_arguments(arguments: Any) -> dict[str, Any]:
    """Tool-call arguments as the object ``tool_use.input`` must be.

    Invalid JSON (or JSON that is not an object) is kept under ``_raw`` so the model can
    see what it sent and the transcript stays valid.
    """
    if isinstance(arguments, Mapping):
        return dict(arguments)
    if arguments is None or arguments == "":
        return {}
    try:
        parsed = json.loads(arguments)
    except (TypeError, ValueError):
        return {"_raw": str(arguments)}
    return parsed if isinstance(parsed, dict) else {"_raw": str(arguments)}


def _image_block(part: Mapping[str, Any]) -> dict[str, Any] | None:
    image = part.get("image_url")
    url = image.get("url") if isinstance(image, Mapping) else image
    if not isinstance(url, str):
        return None
    if url.startswith("data:") and ";base64," in url:
        media_type, _, data = url[5:].partition(";base64,")
        return {
            "type": "image",
            "source": {"type": "base64", "media_type": media_type, "data": data},
        }
    return {"type": "image", "source": {"type": "url", "url": url}}


def _content_blocks(content: Any) -> list[dict[str, Any]]:
    """OpenAI message content (string or parts) as Anthropic content blocks."""
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    blocks: list[dict[str, Any]] = []
    for part in content:
        if isinstance(part, str):
            if part:
                blocks.append({"type": "text", "text": part})
            continue
        kind = part.get("type")
        if kind == "text":
            if part.get("text"):
                blocks.append({"type": "text", "text": part["text"]})
        elif kind == "image_url":
            block = _image_block(part)
            if block:
                blocks.append(block)
        elif kind in ("image", "document", "tool_use", "tool_result"):
            blocks.append(dict(part))  # already Anthropic-shaped
    return blocks


def _tool_result_content(content: Any) -> str | list[dict[str, Any]]:
    if isinstance(content, str):
        return content
    if content is None:
        return ""
    if isinstance(content, list):
        return _content_blocks(content)
    return json.dumps(content, ensure_ascii=False, default=str)


def to_anthropic_messages(
    messages: Sequence[Mapping[str, Any]],
) -> tuple[str | None, list[dict[str, Any]]]:
    """``(system, messages)`` for the Messages API from OpenAI-format messages.

    All system messages are joined into the system prompt. Consecutive messages of the
    same role are merged (tool results become ``tool_result`` blocks of one user turn,
    placed before any text as the API requires), and a placeholder user turn is added if
    the conversation would start with the assistant.
    """
    system_parts: list[str] = []
    turns: list[dict[str, Any]] = []

    def add(role: str, blocks: list[dict[str, Any]]) -> None:
        if not blocks:
            return
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": list(blocks)})

    for message in messages:
        role = message.get("role")
        if role in ("system", "developer"):
            text = text_of(message.get("content"))
            if text:
                system_parts.append(text)
        elif role == "assistant":
            blocks = _content_blocks(message.get("content"))
            for call in message.get("tool_calls") or ():
                function = call.get("function") or {}
                blocks.append(
                    {
                        "type": "tool_use",
                        "id": call.get("id"),
                        "name": function.get("name"),
                        "input": _parse_arguments(function.get("arguments")),
                    }
                )
            add("assistant", blocks)
        elif role in ("tool", "function"):
            add(
                "user",
                [
                    {
                        "type": "tool_result",
                        "tool_use_id": message.get("tool_call_id") or message.get("name"),
                        "content": _tool_result_content(message.get("content")),
                    }
                ],
            )
        else:  # user, or anything unknown treated as user input
            add("user", _content_blocks(message.get("content")))

    for turn in turns:
        if turn["role"] == "user" and len(turn["content"]) > 1:
            # tool_result blocks must come first in a user turn.
            turn["content"].sort(key=lambda block: block.get("type") != "tool_result")
    if not turns or turns[0]["role"] != "user":
        turns.insert(0, {"role": "user", "content": [{"type": "text", "text": CONVERSATION_START}]})
    system = "\n\n".join(system_parts) if system_parts else None
    return system, turns


def to_anthropic_tools(tools: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """OpenAI function tools as ``{"name", "description", "input_schema"}``.

    Tools already in Anthropic shape (with ``input_schema``) pass through unchanged.
    """
    converted: list[dict[str, Any]] = []
    for tool in tools:
        if "input_schema" in tool or ("name" in tool and "function" not in tool):
            converted.append(dict(tool))
            continue
        function = tool.get("function") or {}
        entry: dict[str, Any] = {
            "name": function.get("name"),
            "input_schema": function.get("parameters") or {"type": "object", "properties": {}},
        }
        if function.get("description"):
            entry["description"] = function["description"]
        converted.append(entry)
    return converted


def to_anthropic_tool_choice(choice: Any) -> Any:
    """OpenAI ``tool_choice`` ("auto", "none", "required", or a named function) translated."""
    if isinstance(choice, str):
        return {
            "auto": {"type": "auto"},
            "none": {"type": "none"},
            "required": {"type": "any"},
        }.get(choice, {"type": choice})
    if isinstance(choice, Mapping) and choice.get("type") == "function":
        return {"type": "tool", "name": (choice.get("function") or {}).get("name")}
    return choice


def _finish_reason(stop_reason: Any, has_tool_calls: bool) -> str:
    reason = _STOP_REASONS.get(str(stop_reason), "stop") if stop_reason else "stop"
    if has_tool_calls and reason == "stop":
        return "tool_calls"
    return reason


def _usage(usage: Any) -> dict[str, int]:
    """Normalized usage; cache reads/writes count as prompt tokens (they are input)."""
    if usage is None:
        return {}
    prompt = sum(
        int(field(usage, name) or 0)
        for name in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
    )
    return normalize_usage(
        {"input_tokens": prompt, "output_tokens": int(field(usage, "output_tokens") or 0)}
    )


def from_anthropic_message(message: Any) -> tuple[dict[str, Any], str, dict[str, int]]:
    """``(assistant message, finish_reason, usage)`` in OpenAI shape from a Messages answer."""
    texts: list[str] = []
    tool_calls: list[dict[str, Any]] = []
    for block in field(message, "content") or ():
        kind = field(block, "type")
        if kind == "text":
            texts.append(field(block, "text") or "")
        elif kind == "tool_use":
            tool_calls.append(
                {
                    "id": field(block, "id"),
                    "type": "function",
                    "function": {
                        "name": field(block, "name"),
                        "arguments": json.dumps(field(block, "input") or {}, ensure_ascii=False),
                    },
                }
            )
    result: dict[str, Any] = {"role": "assistant", "content": "".join(texts) or None}
    if tool_calls:
        result["tool_calls"] = tool_calls
    finish = _finish_reason(field(message, "stop_reason"), bool(tool_calls))
    return result, finish, _usage(field(message, "usage"))


# -- the client ---------------------------------------------------------------------------


class AnthropicClient(SDKChatClient):
    """An ``LLMClient`` and ``StreamingLLMClient`` for Anthropic's Messages API."""

    provider: str = "anthropic"
    sdk_package = "anthropic"
    sdk_label = "Anthropic"
    answer_kind = "a JSON message"

    def __init__(
        self,
        model: str,
        api_key: str | None = None,
        base_url: str | None = None,
        timeout: float = 60.0,
        max_tokens: int = 1024,
        default_params: Mapping[str, Any] | None = None,
        retry: RetryPolicy | None = None,
        client: Any = None,
        *,
        default_headers: Mapping[str, str] | None = None,
    ) -> None:
        """Wrap ``client`` (an ``AsyncAnthropic``) or build one from the other arguments.

        ``max_tokens`` is required by the API, so it has a default here; a per-call
        ``max_tokens=`` overrides it, as any other keyword overrides ``default_params``.
        """
        self.max_tokens = max_tokens
        sdk_options = {"api_key": api_key, "base_url": base_url, "default_headers": default_headers}
        super().__init__(model, client, timeout, default_params, retry, sdk_options)

    def _new_sdk_client(self, options: dict[str, Any]) -> Any:
        return self._import_sdk().AsyncAnthropic(**options)

    def _create_method(self, client: Any) -> Callable[..., Awaitable[Any]]:
        return client.messages.create

    # -- requests -------------------------------------------------------------------------

    def _translate(
        self, messages: Messages, tools: Tools, params: dict[str, Any]
    ) -> dict[str, Any]:
        system, turns = to_anthropic_messages(messages)
        request: dict[str, Any] = {
            "model": params.pop("model", self.model),
            "max_tokens": params.pop("max_tokens", None)
            or params.pop("max_completion_tokens", None)
            or self.max_tokens,
            "messages": turns,
        }
        params.pop("max_completion_tokens", None)
        if system:
            extra_system = params.pop("system", None)
            request["system"] = f"{extra_system}\n\n{system}" if extra_system else system
        if tools:
            request["tools"] = to_anthropic_tools(tools)
            if "tool_choice" in params:
                request["tool_choice"] = to_anthropic_tool_choice(params.pop("tool_choice"))
            if params.pop("parallel_tool_calls", True) is False:
                choice = dict(request.get("tool_choice") or {"type": "auto"})
                choice["disable_parallel_tool_use"] = True
                request["tool_choice"] = choice
        else:
            params.pop("tool_choice", None)
            params.pop("parallel_tool_calls", None)
        stop = params.pop("stop", None)
        if stop:
            request["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
        return request

    # -- answers --------------------------------------------------------------------------

    def _parse_answer(self, answer: Any) -> LLMResponse:
        if field(answer, "content") is None:
            raise LLMServerError(
                f"{self.provider}: malformed message (no content): {str(answer)[:SNIPPET]!r}",
                provider=self.provider,
            )
        message, finish, usage = from_anthropic_message(answer)
        return LLMResponse(
            message=message,
            usage=usage,
            finish_reason=finish,
            model=field(answer, "model") or self.model,
            raw=answer,
        )

    def _stream_accumulator(self) -> _EventAccumulator:
        return _EventAccumulator(self.provider, self.model)


_NO_TEXT: tuple[()] = ()


class _EventAccumulator:
    """Folds Messages stream events into text deltas and one final response."""

    def __init__(self, provider: str, model: str) -> None:
        self.provider = provider
        self.default_model = model
        self.blocks: dict[int, dict[str, Any]] = {}
        self.usage: dict[str, int] = {}
        self.stop_reason: Any = None
        self.model: Any = None
        self.finished = False

    def feed(self, event: Any) -> Iterable[str]:
        kind = field(event, "type")
        blocks = self.blocks
        if kind == "content_block_delta":
            delta = field(event, "delta")
            delta_kind = field(delta, "type")
            block = blocks.setdefault(field(event, "index", 0), {"type": "text", "parts": []})
            if delta_kind == "text_delta":
                text = field(delta, "text") or ""
                if text:
                    block["parts"].append(text)
                    return (text,)
            elif delta_kind == "input_json_delta":
                block["parts"].append(field(delta, "partial_json") or "")
        elif kind == "content_block_start":
            start = field(event, "content_block")
            start_kind = field(start, "type")
            entry: dict[str, Any] = {"type": start_kind, "parts": []}
            deltas: tuple[str, ...] = _NO_TEXT
            if start_kind == "tool_use":
                entry["id"] = field(start, "id")
                entry["name"] = field(start, "name")
                entry["input"] = field(start, "input")
            elif start_kind == "text" and field(start, "text"):
                entry["parts"].append(field(start, "text"))
                deltas = (field(start, "text"),)
            blocks[field(event, "index", len(blocks))] = entry
            return deltas
        elif kind == "message_start":
            message = field(event, "message")
            self.model = field(message, "model")
            self._merge_usage(field(message, "usage"))
        elif kind == "message_delta":
            self.stop_reason = field(field(event, "delta"), "stop_reason") or self.stop_reason
            self._merge_usage(field(event, "usage"))
        elif kind == "message_stop":
            self.finished = True
        return _NO_TEXT

    def _merge_usage(self, usage: Any) -> None:
        """Fold streamed usage in; message_delta counts are cumulative, so the last wins."""
        if usage is None:
            return
        prompt = [
            field(usage, name)
            for name in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
        ]
        if any(isinstance(value, int) for value in prompt):
            self.usage["input"] = sum(value for value in prompt if isinstance(value, int))
        output = field(usage, "output_tokens")
        if isinstance(output, int):
            self.usage["output"] = output

    def response(self) -> LLMResponse:
        if not self.finished:
            raise LLMConnectionError(
                f"{self.provider}: the stream ended before message_stop",
                provider=self.provider,
            )
        texts: list[str] = []
        tool_calls: list[dict[str, Any]] = []
        for index in sorted(self.blocks):
            block = self.blocks[index]
            if block["type"] == "text":
                texts.append("".join(block["parts"]))
            elif block["type"] == "tool_use":
                tool_calls.append(
                    {
                        "id": block.get("id"),
                        "type": "function",
                        "function": {
                            "name": block.get("name"),
                            "arguments": _tool_arguments(block),
                        },
                    }
                )
        message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) or None}
        if tool_calls:
            message["tool_calls"] = tool_calls
        return LLMResponse(
            message=message,
            usage=normalize_usage(
                {
                    "input_tokens": self.usage.get("input", 0),
                    "output_tokens": self.usage.get("output", 0),
                }
            ),
            finish_reason=_finish_reason(self.stop_reason, bool(tool_calls)),
            model=self.model or self.default_model,
        )


def _tool_arguments(block: Mapping[str, Any]) -> str:
    """The streamed JSON input, re-encoded when valid, passed through when not."""
    raw = "".join(block["parts"])
    if not raw:
        return json.dumps(block.get("input") or {}, ensure_ascii=False)
    try:
        return json.dumps(json.loads(raw), ensure_ascii=False)
    except ValueError:
        return raw
