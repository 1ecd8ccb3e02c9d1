"""OpenAI chat completions (and any OpenAI-compatible server) behind the LLM protocol.

Built on the official async SDK with its own retries switched off, so ``RetryPolicy`` is
the single retry policy. Works with OpenAI, Azure OpenAI (``OpenAIClient.azure``) and any
server speaking ``/v1/chat/completions`` (Ollama, vLLM, LM Studio, ...) via ``base_url``.
Answers are normalized: every tool call has an id, arguments are always a string, usage
always has the three OpenAI counters, and ``finish_reason`` is one of ``stop``,
``tool_calls``, ``length``, ``content_filter``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from ._errors import translate_exception
from ._wire import (
    MISSING_SDK_HINT,
    accepted_parameters,
    arguments_string,
    field,
    stable_call_id,
    text_of,
)
from .base import (
    LLMConnectionError,
    LLMResponse,
    LLMServerError,
    LLMStreamEvent,
    MissingLLMDependencyError,
    NoLLMConfiguredError,
    normalize_usage,
)
from .retry import RetryPolicy

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

_SNIPPET = 120


def normalize_finish_reason(reason: Any, has_tool_calls: bool) -> str:
    """One of stop/tool_calls/length/content_filter, whatever the server called it.

    Some compatible servers say ``stop`` while returning tool calls; the calls win.
    """
    normalized = _FINISH_REASONS.get(str(reason), "stop") if reason else "stop"
    if has_tool_calls and normalized == "stop":
        return "tool_calls"
    return normalized


def _import_openai() -> Any:
    try:
        import openai
    except ImportError as exc:  # pragma: no cover - exercised only without the SDK
        raise MissingLLMDependencyError(
            MISSING_SDK_HINT.format(provider="OpenAI", package="openai", extra="openai")
        ) from exc
    return openai


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


class OpenAIClient:
    """An ``LLMClient`` and ``StreamingLLMClient`` for OpenAI-style chat completions."""

    provider: str = "openai"
    is_offline_standin: bool = False

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
        self.model = model
        self.default_params: dict[str, Any] = dict(default_params or {})
        self.retry = retry if retry is not None else RetryPolicy()
        self.timeout = timeout
        self.stream_usage = stream_usage
        if client is None:
            openai = _import_openai()
            try:
                client = openai.AsyncOpenAI(
                    api_key=api_key,
                    base_url=base_url,
                    organization=organization,
                    timeout=timeout,
                    max_retries=0,
                    default_headers=default_headers,
                )
            except openai.OpenAIError as exc:
                raise NoLLMConfiguredError(
                    f"Cannot create the OpenAI client: {exc} "
                    "(pass api_key=, or set OPENAI_API_KEY)",
                    provider=self.provider,
                ) from exc
        elif getattr(client, "max_retries", 0):
            client = client.with_options(max_retries=0)
        self._client = client
        self._create = client.chat.completions.create
        self._accepted = accepted_parameters(self._create)

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
        openai = _import_openai()
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

    @property
    def sdk_client(self) -> Any:
        """The underlying ``AsyncOpenAI`` (for features this wrapper does not cover)."""
        return self._client

    def __repr__(self) -> str:
        return f"{type(self).__name__}(provider={self.provider!r}, model={self.model!r})"

    # -- requests -------------------------------------------------------------------------

    def _request(
        self,
        messages: Sequence[Mapping[str, Any]],
        tools: Sequence[Mapping[str, Any]] | None,
        kwargs: Mapping[str, Any],
        stream: bool,
    ) -> dict[str, Any]:
        params = {**self.default_params, **kwargs} if kwargs else dict(self.default_params)
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
        # Streaming is decided by which method was called, never by a stray keyword.
        params.pop("stream", None)
        params.pop("stream_options", None)
        if stream:
            request["stream"] = True
            if self.stream_usage:
                request["stream_options"] = {"include_usage": True}
        if params:
            accepted = self._accepted
            extra_body: dict[str, Any] = dict(params.pop("extra_body", None) or {})
            for name, value in params.items():
                if not accepted or name in accepted:
                    request[name] = value
                else:
                    # Server-specific options (top_k, repetition_penalty...) go in the body.
                    extra_body[name] = value
            if extra_body:
                request["extra_body"] = extra_body
        return request

    def _error(self, exc: BaseException) -> BaseException:
        return translate_exception(exc, self.provider) or exc

    # -- generate -------------------------------------------------------------------------

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
            completion = await self._create(**request)
        except Exception as exc:
            raise self._error(exc) from exc
        return self._parse_completion(completion)

    def _parse_completion(self, completion: Any) -> LLMResponse:
        if isinstance(completion, str | bytes):
            snippet = completion[:_SNIPPET]
            raise LLMServerError(
                f"{self.provider}: expected a JSON chat completion but the server sent "
                f"something else: {snippet!r}",
                provider=self.provider,
            )
        choices = field(completion, "choices")
        if not choices:
            raise LLMServerError(
                f"{self.provider}: malformed chat completion (no choices): "
                f"{str(completion)[:_SNIPPET]!r}",
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
            self._tool_call(call, index)
            for index, call in enumerate(field(message, "tool_calls") or ())
        ]
        legacy = field(message, "function_call")
        if legacy is not None and not tool_calls:
            tool_calls.append(self._tool_call({"function": legacy}, 0))
        result: dict[str, Any] = {
            "role": "assistant",
            "content": text_of(field(message, "content")),
        }
        if tool_calls:
            result["tool_calls"] = tool_calls
        return LLMResponse(
            message=result,
            usage=normalize_usage(field(completion, "usage")),
            finish_reason=normalize_finish_reason(field(choice, "finish_reason"), bool(tool_calls)),
            model=field(completion, "model") or self.model,
            raw=completion,
        )

    @staticmethod
    def _tool_call(call: Any, index: int) -> dict[str, Any]:
        function = field(call, "function")
        name = field(function, "name") or ""
        arguments = arguments_string(field(function, "arguments"))
        return {
            "id": field(call, "id") or stable_call_id(name, arguments, index),
            "type": "function",
            "function": {"name": name, "arguments": arguments},
        }

    # -- stream ---------------------------------------------------------------------------

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
            chunks = await self._create(**request)
        except Exception as exc:
            raise self._error(exc) from exc
        if isinstance(chunks, str | bytes):
            raise LLMServerError(
                f"{self.provider}: expected a server-sent event stream but got "
                f"{chunks[:_SNIPPET]!r}",
                provider=self.provider,
            )
        text: list[str] = []
        calls: dict[int, dict[str, Any]] = {}
        usage: Any = None
        finish_reason: Any = None
        model: Any = None
        try:
            async for chunk in chunks:
                if isinstance(chunk, str | bytes):
                    raise LLMServerError(
                        f"{self.provider}: malformed stream chunk {chunk[:_SNIPPET]!r}",
                        provider=self.provider,
                    )
                model = model or field(chunk, "model")
                chunk_usage = field(chunk, "usage")
                if chunk_usage:
                    usage = chunk_usage
                for choice in field(chunk, "choices") or ():
                    if field(choice, "index", 0):
                        continue  # n > 1 is not part of the protocol; keep the first choice
                    delta = field(choice, "delta")
                    content = text_of(field(delta, "content"))
                    if content:
                        text.append(content)
                        yield LLMStreamEvent(delta=content)
                    for position, part in enumerate(field(delta, "tool_calls") or ()):
                        self._merge_tool_call_chunk(calls, part, position)
                    reason = field(choice, "finish_reason")
                    if reason:
                        finish_reason = reason
        except Exception as exc:
            raise self._error(exc) from exc
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                await close()
        if finish_reason is None:
            raise LLMConnectionError(
                f"{self.provider}: the stream ended before the model finished its answer",
                provider=self.provider,
            )
        tool_calls = [self._finish_tool_call(calls[index], index) for index in sorted(calls)]
        message: dict[str, Any] = {"role": "assistant", "content": "".join(text) or None}
        if tool_calls:
            message["tool_calls"] = tool_calls
        yield LLMStreamEvent(
            response=LLMResponse(
                message=message,
                usage=normalize_usage(usage),
                finish_reason=normalize_finish_reason(finish_reason, bool(tool_calls)),
                model=model or self.model,
            )
        )

    @staticmethod
    def _merge_tool_call_chunk(calls: dict[int, dict[str, Any]], part: Any, position: int) -> None:
        """Fold one streamed tool-call fragment into the call at its ``index``."""
        index = field(part, "index")
        if not isinstance(index, int):
            index = position
        call = calls.setdefault(index, {"id": None, "name": "", "arguments": []})
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

    @staticmethod
    def _finish_tool_call(call: dict[str, Any], index: int) -> dict[str, Any]:
        arguments = "".join(call["arguments"]) or "{}"
        name = call["name"]
        return {
            "id": call["id"] or stable_call_id(name, arguments, index),
            "type": "function",
            "function": {"name": name, "arguments": arguments},
        }
