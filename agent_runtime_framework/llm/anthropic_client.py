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
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from ._errors import translate_exception
from ._wire import MISSING_SDK_HINT, accepted_parameters, field, text_of
from .base import (
    LLMConnectionError,
    LLMResponse,
    LLMServerError,
    LLMStreamEvent,
    MissingLLMDependencyError,
    normalize_usage,
)
from .retry import RetryPolicy

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

_SNIPPET = 120


def _import_anthropic() -> Any:
    try:
        import anthropic
    except ImportError as exc:  # pragma: no cover - exercised only without the SDK
        raise MissingLLMDependencyError(
            MISSING_SDK_HINT.format(provider="Anthropic", package="anthropic", extra="anthropic")
        ) from exc
    return anthropic


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


class AnthropicClient:
    """An ``LLMClient`` and ``StreamingLLMClient`` for Anthropic's Messages API."""

    provider: str = "anthropic"
    is_offline_standin: bool = False

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
        self.model = model
        self.max_tokens = max_tokens
        self.default_params: dict[str, Any] = dict(default_params or {})
        self.retry = retry if retry is not None else RetryPolicy()
        self.timeout = timeout
        if client is None:
            anthropic = _import_anthropic()
            client = anthropic.AsyncAnthropic(
                api_key=api_key,
                base_url=base_url,
                timeout=timeout,
                max_retries=0,
                default_headers=default_headers,
            )
        elif getattr(client, "max_retries", 0):
            client = client.with_options(max_retries=0)
        self._client = client
        self._create = client.messages.create
        self._accepted = accepted_parameters(self._create)

    @property
    def sdk_client(self) -> Any:
        """The underlying ``AsyncAnthropic`` (for features this wrapper does not cover)."""
        return self._client

    def __repr__(self) -> str:
        return f"{type(self).__name__}(model={self.model!r})"

    def _request(
        self,
        messages: Sequence[Mapping[str, Any]],
        tools: Sequence[Mapping[str, Any]] | None,
        kwargs: Mapping[str, Any],
        stream: bool,
    ) -> dict[str, Any]:
        params = {**self.default_params, **kwargs} if kwargs else dict(self.default_params)
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
        params.pop("stream", None)  # decided by which method was called
        params.pop("stream_options", None)
        if stream:
            request["stream"] = True
        if params:
            accepted = self._accepted
            extra_body: dict[str, Any] = dict(params.pop("extra_body", None) or {})
            for name, value in params.items():
                if not accepted or name in accepted:
                    request[name] = value
                else:
                    extra_body[name] = value
            if extra_body:
                request["extra_body"] = extra_body
        return request

    def _error(self, exc: BaseException) -> BaseException:
        return translate_exception(exc, self.provider) or exc

    async def generate(
        self,
        messages: Sequence[Mapping[str, Any]],
        tools: Sequence[Mapping[str, Any]] | None = None,
        **kwargs: Any,
    ) -> LLMResponse:
        """One complete answer, retried per the policy."""
        request = self._request(messages, tools, kwargs, stream=False)
        return await self.retry.call(lambda: self._generate_once(request))

    async def _generate_once(self, request: dict[str, Any]) -> LLMResponse:
        try:
            answer = await self._create(**request)
        except Exception as exc:
            raise self._error(exc) from exc
        if isinstance(answer, str | bytes):
            raise LLMServerError(
                f"{self.provider}: expected a JSON message but the server sent something else: "
                f"{answer[:_SNIPPET]!r}",
                provider=self.provider,
            )
        if field(answer, "content") is None:
            raise LLMServerError(
                f"{self.provider}: malformed message (no content): {str(answer)[:_SNIPPET]!r}",
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

    def stream(
        self,
        messages: Sequence[Mapping[str, Any]],
        tools: Sequence[Mapping[str, Any]] | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[LLMStreamEvent]:
        """Text deltas as they arrive, then one event with the complete response."""
        request = self._request(messages, tools, kwargs, stream=True)
        return self.retry.stream(lambda: self._stream_once(request))

    async def _stream_once(self, request: dict[str, Any]) -> AsyncIterator[LLMStreamEvent]:
        try:
            events = await self._create(**request)
        except Exception as exc:
            raise self._error(exc) from exc
        if isinstance(events, str | bytes):
            raise LLMServerError(
                f"{self.provider}: expected a server-sent event stream but got "
                f"{events[:_SNIPPET]!r}",
                provider=self.provider,
            )
        blocks: dict[int, dict[str, Any]] = {}
        usage: dict[str, int] = {}
        stop_reason: Any = None
        model: Any = None
        finished = False
        try:
            async for event in events:
                kind = field(event, "type")
                if kind == "content_block_delta":
                    delta = field(event, "delta")
                    delta_kind = field(delta, "type")
                    block = blocks.setdefault(
                        field(event, "index", 0), {"type": "text", "parts": []}
                    )
                    if delta_kind == "text_delta":
                        text = field(delta, "text") or ""
                        if text:
                            block["parts"].append(text)
                            yield LLMStreamEvent(delta=text)
                    elif delta_kind == "input_json_delta":
                        block["parts"].append(field(delta, "partial_json") or "")
                elif kind == "content_block_start":
                    start = field(event, "content_block")
                    start_kind = field(start, "type")
                    entry: dict[str, Any] = {"type": start_kind, "parts": []}
                    if start_kind == "tool_use":
                        entry["id"] = field(start, "id")
                        entry["name"] = field(start, "name")
                        entry["input"] = field(start, "input")
                    elif start_kind == "text" and field(start, "text"):
                        entry["parts"].append(field(start, "text"))
                        yield LLMStreamEvent(delta=field(start, "text"))
                    blocks[field(event, "index", len(blocks))] = entry
                elif kind == "message_start":
                    message = field(event, "message")
                    model = field(message, "model")
                    self._merge_usage(usage, field(message, "usage"))
                elif kind == "message_delta":
                    stop_reason = field(field(event, "delta"), "stop_reason") or stop_reason
                    self._merge_usage(usage, field(event, "usage"))
                elif kind == "message_stop":
                    finished = True
        except Exception as exc:
            raise self._error(exc) from exc
        finally:
            close = getattr(events, "close", None)
            if close is not None:
                await close()
        if not finished:
            raise LLMConnectionError(
                f"{self.provider}: the stream ended before message_stop",
                provider=self.provider,
            )
        texts: list[str] = []
        tool_calls: list[dict[str, Any]] = []
        for index in sorted(blocks):
            block = blocks[index]
            if block["type"] == "text":
                texts.append("".join(block["parts"]))
            elif block["type"] == "tool_use":
                tool_calls.append(
                    {
                        "id": block.get("id"),
                        "type": "function",
                        "function": {
                            "name": block.get("name"),
                            "arguments": self._tool_arguments(block),
                        },
                    }
                )
        message_out: dict[str, Any] = {"role": "assistant", "content": "".join(texts) or None}
        if tool_calls:
            message_out["tool_calls"] = tool_calls
        yield LLMStreamEvent(
            response=LLMResponse(
                message=message_out,
                usage=normalize_usage(
                    {
                        "input_tokens": usage.get("input", 0),
                        "output_tokens": usage.get("output", 0),
                    }
                ),
                finish_reason=_finish_reason(stop_reason, bool(tool_calls)),
                model=model or self.model,
            )
        )

    @staticmethod
    def _merge_usage(total: dict[str, int], usage: Any) -> None:
        """Fold streamed usage in; message_delta counts are cumulative, so the last wins."""
        if usage is None:
            return
        prompt = [
            field(usage, name)
            for name in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
        ]
        if any(isinstance(value, int) for value in prompt):
            total["input"] = sum(value for value in prompt if isinstance(value, int))
        output = field(usage, "output_tokens")
        if isinstance(output, int):
            total["output"] = output

    @staticmethod
    def _tool_arguments(block: Mapping[str, Any]) -> str:
        """The streamed JSON input, re-encoded when valid, passed through when not."""
        raw = "".join(block["parts"])
        if not raw:
            return json.dumps(block.get("input") or {}, ensure_ascii=False)
        try:
            return json.dumps(json.loads(raw), ensure_ascii=False)
        except ValueError:
            return raw
