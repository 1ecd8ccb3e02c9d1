"""The skeleton every official-SDK provider client shares.

A provider client does the same things around its SDK whatever the provider: build one
SDK client with the SDK's own retries off (``RetryPolicy`` is the one policy), merge
``default_params`` with per-call keywords, send keywords the SDK method does not know in
``extra_body``, translate SDK exceptions, and wrap one attempt in the retry policy. That
lives here once; a provider subclass supplies only what differs: how the request is
translated, how an answer is parsed and how stream events are read.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, ClassVar, Protocol

from ._errors import translate_exception
from ._wire import MISSING_SDK_HINT, accepted_parameters
from .base import LLMResponse, LLMServerError, LLMStreamEvent, MissingLLMDependencyError
from .retry import RetryPolicy

__all__ = ["SNIPPET", "Messages", "SDKChatClient", "StreamAccumulator", "Tools"]

#: OpenAI-format messages and tool definitions, as every client receives them.
Messages = Sequence[Mapping[str, Any]]
Tools = Sequence[Mapping[str, Any]] | None

#: How much of an unexpected server answer is quoted in an error message.
SNIPPET = 120


class StreamAccumulator(Protocol):
    """Reads one provider's stream events and builds the final response from them."""

    def feed(self, event: Any) -> Iterable[str]:
        """The text deltas this event carries (usually none or one), recording the rest."""
        ...

    def response(self) -> LLMResponse:
        """The complete answer once the stream is over; raises if it ended too early."""
        ...


class SDKChatClient(ABC):
    """An ``LLMClient`` and ``StreamingLLMClient`` around one provider's async SDK."""

    provider: str
    is_offline_standin: bool = False

    #: The SDK's import name (also its pip extra) and how to name it in the missing-SDK hint.
    sdk_package: ClassVar[str]
    sdk_label: ClassVar[str]
    #: What a non-streaming answer should be, for the error when the server sends text.
    answer_kind: ClassVar[str] = "a JSON answer"

    def __init__(
        self,
        model: str,
        client: Any,
        timeout: float,
        default_params: Mapping[str, Any] | None,
        retry: RetryPolicy | None,
        sdk_options: Mapping[str, Any],
    ) -> None:
        """Wrap ``client``, or build one from ``sdk_options`` when it is None.

        A client passed in keeps its settings but loses its own retries, so a failure is
        not retried twice over.
        """
        self.model = model
        self.default_params: dict[str, Any] = dict(default_params or {})
        self.retry = retry if retry is not None else RetryPolicy()
        self.timeout = timeout
        if client is None:
            client = self._new_sdk_client({**sdk_options, "timeout": timeout, "max_retries": 0})
        elif getattr(client, "max_retries", 0):
            client = client.with_options(max_retries=0)
        self._client = client
        self._create = self._create_method(client)
        self._accepted = accepted_parameters(self._create)

    @classmethod
    def _import_sdk(cls) -> Any:
        """The SDK module, imported only now so the core works without it."""
        try:
            return importlib.import_module(cls.sdk_package)
        except ImportError as exc:  # pragma: no cover - exercised only without the SDK
            raise MissingLLMDependencyError(
                MISSING_SDK_HINT.format(
                    provider=cls.sdk_label, package=cls.sdk_package, extra=cls.sdk_package
                )
            ) from exc

    @abstractmethod
    def _new_sdk_client(self, options: dict[str, Any]) -> Any:
        """A new SDK client from keyword ``options`` (``timeout``, ``max_retries`` included)."""

    @abstractmethod
    def _create_method(self, client: Any) -> Callable[..., Awaitable[Any]]:
        """The SDK method that sends one request (streaming or not)."""

    @property
    def sdk_client(self) -> Any:
        """The underlying SDK client (for features this wrapper does not cover)."""
        return self._client

    def __repr__(self) -> str:
        return f"{type(self).__name__}(model={self.model!r})"

    # -- requests -------------------------------------------------------------------------

    @abstractmethod
    def _translate(
        self, messages: Messages, tools: Tools, params: dict[str, Any]
    ) -> dict[str, Any]:
        """The provider's request body; pops from ``params`` every keyword it consumed."""

    def _mark_streaming(self, request: dict[str, Any]) -> None:
        """Ask for a stream (a provider may add its own stream options)."""
        request["stream"] = True

    def _request(
        self,
        messages: Sequence[Mapping[str, Any]],
        tools: Sequence[Mapping[str, Any]] | None,
        kwargs: Mapping[str, Any],
        stream: bool,
    ) -> dict[str, Any]:
        params = {**self.default_params, **kwargs} if kwargs else dict(self.default_params)
        request = self._translate(messages, tools, params)
        # Streaming is decided by which method was called, never by a stray keyword.
        params.pop("stream", None)
        params.pop("stream_options", None)
        if stream:
            self._mark_streaming(request)
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
            answer = await self._create(**request)
        except Exception as exc:
            raise self._error(exc) from exc
        if isinstance(answer, str | bytes):
            # A misconfigured base_url or a proxy's error page, not an API answer.
            raise LLMServerError(
                f"{self.provider}: expected {self.answer_kind} but the server sent "
                f"something else: {answer[:SNIPPET]!r}",
                provider=self.provider,
            )
        return self._parse_answer(answer)

    @abstractmethod
    def _parse_answer(self, answer: Any) -> LLMResponse:
        """The normalized response from one SDK answer object."""

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

    @abstractmethod
    def _stream_accumulator(self) -> StreamAccumulator:
        """A fresh reader for one attempt's stream events."""

    async def _stream_once(self, request: dict[str, Any]) -> AsyncIterator[LLMStreamEvent]:
        try:
            events = await self._create(**request)
        except Exception as exc:
            raise self._error(exc) from exc
        if isinstance(events, str | bytes):
            raise LLMServerError(
                f"{self.provider}: expected a server-sent event stream but got "
                f"{events[:SNIPPET]!r}",
                provider=self.provider,
            )
        accumulator = self._stream_accumulator()
        feed = accumulator.feed
        try:
            async for event in events:
                for text in feed(event):
                    yield LLMStreamEvent(delta=text)
        except Exception as exc:
            raise self._error(exc) from exc
        finally:
            # Release the connection before the (possibly failing) final assembly.
            close = getattr(events, "close", None)
            if close is not None:
                await close()
        yield LLMStreamEvent(response=accumulator.response())
