"""OpenAI chat completions (and any OpenAI-compatible server) behind the LLM protocol.

Built on the official async SDK with its own retries switched off, so ``RetryPolicy`` is
the single retry policy. Works with OpenAI, Azure OpenAI (``OpenAIClient.azure``) and any
server speaking ``/v1/chat/completions`` (Ollama, vLLM, LM Studio, ...) via ``base_url``.
Answers are normalized: every tool call has an id, arguments are always a string, usage
always has the three OpenAI counters, and ``finish_reason`` is one of ``stop``,
``tool_calls``, ``length``, ``content_filter``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any

from ._wire import arguments_string, field, stable_call_id, text_of
from .base import (
    LLMConnectionError,
    LLMResponse,
    LLMServerError,
    NoLLMConfiguredError,
    normalize_usage,
)
from .retry import RetryPolicy
from .sdk_client import SNIPPET, Messages, SDKChatClient, Tools

__all__ = ["OpenAIClient", "normalize_finish_reason"]

_FINISH_REASONS = {
    "stop": "stop",
    "end_turn": "stop",
    "eos": "stop",
    "stop_sequence": "stop",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "tool_use": "tool_calls",
    "length": "length",
    "max_tokens": "length",
    "content_filter": "content_filter",
}


def normalize_finish_reason(reason: Any, has_tool_calls: bool) -> str:
    """One of stop/tool_calls/length/content_filter, whatever the server called it.

    Some compatible servers say ``stop`` while returning tool calls; the calls win.
    """
    normalized = _FINISH_REASONS.get(str(reason), "stop") if reason else "stop"
    if has_tool_calls and normalized == "stop":
        return "tool_calls"
    return normalized


def _clean_messages(messages: Sequence[Mapping[str, Any]]) -> list[Any]:
    """The messages as a list, fixing the few shapes the API would refuse.

    An assistant message with an empty ``tool_calls`` list is rejected by OpenAI, and
    tool-call arguments must be strings. Untouched messages are passed through as is.
    """
    cleaned: list[Any] = []
    for message in messages:
        tool_calls = message.get("tool_calls", ...)
        if tool_calls is ...:
            cleaned.append(message)
            continue
        copy = dict(message)
        if not tool_calls:
            del copy["tool_calls"]
        else:
            fixed = []
            for call in tool_calls:
                function = call.get("function") or {}
                arguments = function.get("arguments")
                if isinstance(arguments, str):
                    fixed.append(call)
                else:
                    fixed.append(
                        {**call, "function": {**function, "arguments": arguments_string(arguments)}}
                    )
            copy["tool_calls"] = fixed
        cleaned.append(copy)
    return cleaned


class OpenAIClient(SDKChatClient):
    """An ``LLMClient`` and ``StreamingLLMClient`` for OpenAI-style chat completions."""

    provider: str = "openai"
    sdk_package = "openai"
    sdk_label = "OpenAI"
    answer_kind = "a JSON chat completion"

    def __init__(
        self,
        model: str,
        api_key: str | None = None,
        base_url: str | None = None,
        organization: str | None = None,
        timeout: float = 60.0,
        default_params: Mapping[str, Any] | None = None,
        retry: RetryPolicy | None = None,
        client: Any = None,
        *,
        stream_usage: bool = True,
        default_headers: Mapping[str, str] | None = None,
    ) -> None:
        """Wrap ``client`` (an ``AsyncOpenAI``) or build one from the other arguments.

        ``default_params`` are sent with every call (temperature, max_tokens...); per-call
        keyword arguments override them. ``stream_usage=False`` drops
        ``stream_options`` for servers that refuse it.
        """
        self.stream_usage = stream_usage
        sdk_options = {
            "api_key": api_key,
            "base_url": base_url,
            "organization": organization,
            "default_headers": default_headers,
        }
        super().__init__(model, client, timeout, default_params, retry, sdk_options)

    def _new_sdk_client(self, options: dict[str, Any]) -> Any:
        openai = self._import_sdk()
        try:
            return openai.AsyncOpenAI(**options)
        except openai.OpenAIError as exc:
            raise NoLLMConfiguredError(
                f"Cannot create the OpenAI client: {exc} (pass api_key=, or set OPENAI_API_KEY)",
                provider=self.provider,
            ) from exc

    def _create_method(self, client: Any) -> Callable[..., Awaitable[Any]]:
        return client.chat.completions.create

    @classmethod
    def azure(
        cls,
        deployment: str,
        *,
        azure_endpoint: str | None = None,
        api_version: str | None = None,
        api_key: str | None = None,
        azure_ad_token_provider: Any = None,
        timeout: float = 60.0,
        default_params: Mapping[str, Any] | None = None,
        retry: RetryPolicy | None = None,
    ) -> OpenAIClient:
        """A client for an Azure OpenAI deployment (``AsyncAzureOpenAI`` underneath).

        Unset values fall back to the SDK's environment variables: ``AZURE_OPENAI_ENDPOINT``,
        ``AZURE_OPENAI_API_KEY`` and ``OPENAI_API_VERSION``.
        """
        openai = cls._import_sdk()
        try:
            sdk = openai.AsyncAzureOpenAI(
                azure_endpoint=azure_endpoint,
                azure_deployment=deployment,
                api_version=api_version,
                api_key=api_key,
                azure_ad_token_provider=azure_ad_token_provider,
                timeout=timeout,
                max_retries=0,
            )
        except (openai.OpenAIError, ValueError) as exc:
            raise NoLLMConfiguredError(
                f"Cannot create the Azure OpenAI client: {exc} (set azure_endpoint, "
                "api_version and api_key, or AZURE_OPENAI_ENDPOINT, OPENAI_API_VERSION and "
                "AZURE_OPENAI_API_KEY)",
                provider="azure",
            ) from exc
        instance = cls(
            deployment, timeout=timeout, default_params=default_params, retry=retry, client=sdk
        )
        instance.provider = "azure"
        return instance

    def __repr__(self) -> str:
        # The provider is part of it because the same class also serves Azure.
        return f"{type(self).__name__}(provider={self.provider!r}, model={self.model!r})"

    # -- requests -------------------------------------------------------------------------

    def _translate(
        self, messages: Messages, tools: Tools, params: dict[str, Any]
    ) -> dict[str, Any]:
        request: dict[str, Any] = {
            "model": params.pop("model", self.model),
            "messages": _clean_messages(messages),
        }
        if tools:
            request["tools"] = list(tools)
        else:
            # Both are refused by the API when no tools are sent.
            params.pop("tool_choice", None)
            params.pop("parallel_tool_calls", None)
        return request

    def _mark_streaming(self, request: dict[str, Any]) -> None:
        request["stream"] = True
        if self.stream_usage:
            request["stream_options"] = {"include_usage": True}

    # -- answers --------------------------------------------------------------------------

    def _parse_answer(self, answer: Any) -> LLMResponse:
        choices = field(answer, "choices")
        if not choices:
            raise LLMServerError(
                f"{self.provider}: malformed chat completion (no choices): "
                f"{str(answer)[:SNIPPET]!r}",
                provider=self.provider,
            )
        choice = choices[0]
        message = field(choice, "message")
        if message is None:
            raise LLMServerError(
                f"{self.provider}: malformed chat completion (choice without a message)",
                provider=self.provider,
            )
        tool_calls = [
            _tool_call(call, index) for index, call in enumerate(field(message, "tool_calls") or ())
        ]
        legacy = field(message, "function_call")
        if legacy is not None and not tool_calls:
            tool_calls.append(_tool_call({"function": legacy}, 0))
        result: dict[str, Any] = {
            "role": "assistant",
            "content": text_of(field(message, "content")),
        }
        if tool_calls:
            result["tool_calls"] = tool_calls
        return LLMResponse(
            message=result,
            usage=normalize_usage(field(answer, "usage")),
            finish_reason=normalize_finish_reason(field(choice, "finish_reason"), bool(tool_calls)),
            model=field(answer, "model") or self.model,
            raw=answer,
        )

    def _stream_accumulator(self) -> _ChunkAccumulator:
        return _ChunkAccumulator(self.provider, self.model)


def _tool_call(call: Any, index: int) -> dict[str, Any]:
    """One tool call of a complete answer, normalized (id present, arguments a string)."""
    function = field(call, "function")
    name = field(function, "name") or ""
    arguments = arguments_string(field(function, "arguments"))
    return {
        "id": field(call, "id") or stable_call_id(name, arguments, index),
        "type": "function",
        "function": {"name": name, "arguments": arguments},
    }


class _ChunkAccumulator:
    """Folds ``chat.completion.chunk`` objects into text deltas and one final response."""

    def __init__(self, provider: str, model: str) -> None:
        self.provider = provider
        self.default_model = model
        self.text: list[str] = []
        self.calls: dict[int, dict[str, Any]] = {}
        self.usage: Any = None
        self.finish_reason: Any = None
        self.model: Any = None

    def feed(self, chunk: Any) -> Iterable[str]:
        if isinstance(chunk, str | bytes):
            raise LLMServerError(
                f"{self.provider}: malformed stream chunk {chunk[:SNIPPET]!r}",
                provider=self.provider,
            )
        self.model = self.model or field(chunk, "model")
        chunk_usage = field(chunk, "usage")
        if chunk_usage:
            self.usage = chunk_usage
        deltas: list[str] = []
        for choice in field(chunk, "choices") or ():
            if field(choice, "index", 0):
                continue  # n > 1 is not part of the protocol; keep the first choice
            delta = field(choice, "delta")
            content = text_of(field(delta, "content"))
            if content:
                self.text.append(content)
                deltas.append(content)
            for position, part in enumerate(field(delta, "tool_calls") or ()):
                self._merge_tool_call(part, position)
            reason = field(choice, "finish_reason")
            if reason:
                self.finish_reason = reason
        return deltas

    def _merge_tool_call(self, part: Any, position: int) -> None:
        """Fold one streamed tool-call fragment into the call at its ``index``."""
        index = field(part, "index")
        if not isinstance(index, int):
            index = position
        call = self.calls.setdefault(index, {"id": None, "name": "", "arguments": []})
        if field(part, "id"):
            call["id"] = field(part, "id")
        function = field(part, "function")
        name = field(function, "name")
        if name:
            current = call["name"]
            # Most servers send the name once; some repeat it whole in every fragment.
            call["name"] = name if not current or name.startswith(current) else current + name
        arguments = field(function, "arguments")
        if arguments is not None:
            call["arguments"].append(arguments_string(arguments))

    def response(self) -> LLMResponse:
        if self.finish_reason is None:
            raise LLMConnectionError(
                f"{self.provider}: the stream ended before the model finished its answer",
                provider=self.provider,
            )
        calls = self.calls
        tool_calls = [_finish_tool_call(calls[index], index) for index in sorted(calls)]
        message: dict[str, Any] = {"role": "assistant", "content": "".join(self.text) or None}
        if tool_calls:
            message["tool_calls"] = tool_calls
        return LLMResponse(
            message=message,
            usage=normalize_usage(self.usage),
            finish_reason=normalize_finish_reason(self.finish_reason, bool(tool_calls)),
            model=self.model or self.default_model,
        )


def _finish_tool_call(call: dict[str, Any], index: int) -> dict[str, Any]:
    """A streamed tool call, assembled from its fragments."""
    arguments = "".join(call["arguments"]) or "{}"
    name = call["name"]
    return {
        "id": call["id"] or stable_call_id(name, arguments, index),
        "type": "function",
        "function": {"name": name, "arguments": arguments},
    }
