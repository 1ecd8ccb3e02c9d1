"""A local fake of the OpenAI and Anthropic HTTP APIs, for tests and benchmarks.

``FakeProviderServer`` listens on 127.0.0.1 (a random port) in a background thread and
answers ``/v1/chat/completions`` and ``/v1/messages`` in each provider's wire format, JSON
or server-sent events. Point the real SDKs (or this framework's clients) at it to test a
setup end to end without a network or an API key::

    with FakeProviderServer() as server:
        server.enqueue(openai_completion("Hello!"))
        client = OpenAIClient("gpt-4o-mini", api_key="test", base_url=server.openai_base_url)
        response = await client.generate([{"role": "user", "content": "Hi"}])
        assert server.requests[0].json["model"] == "gpt-4o-mini"

Answers come from a FIFO queue of scripted ``FakeResponse`` objects; when it is empty the
server asks its ``responder`` (for instance ``standin_responder()``, which serves the
rule-based ``OfflineStandInLLM`` in both wire formats), else answers 500. Every request is
recorded. Failure modes are scriptable: any status and headers (``Retry-After``), a delay
before the answer (timeouts), a non-JSON body, and a stream whose connection is dropped
after a number of events.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = [
    "FakeProviderServer",
    "FakeResponse",
    "RecordedRequest",
    "SSEEvent",
    "ToolCallSpec",
    "anthropic_error",
    "anthropic_message",
    "anthropic_stream",
    "openai_completion",
    "openai_error",
    "openai_stream",
    "standin_responder",
]

#: A tool call to script: ``(name, arguments)``; a dict is JSON-encoded, a string is sent
#: as is (so invalid JSON can be scripted too).
ToolCallSpec = tuple[str, Mapping[str, Any] | str]


@dataclass(slots=True)
class SSEEvent:
    """One server-sent event; ``data`` dicts are JSON-encoded."""

    data: Any
    event: str | None = None

    def encode(self) -> bytes:
        data = self.data if isinstance(self.data, str) else json.dumps(self.data)
        head = f"event: {self.event}\n" if self.event else ""
        return f"{head}data: {data}\n\n".encode()


@dataclass(slots=True)
class FakeResponse:
    """What the fake server answers to one request.

    Give ``json_body`` for a JSON answer, ``body`` for raw bytes/text, or ``events`` for an
    SSE stream (sent with chunked encoding). ``delay`` waits before the status line;
    ``event_delay`` waits between events; ``drop_after`` closes the connection abruptly
    after that many events, the way a proxy or a crashed server would.
    """

    status: int = 200
    json_body: Any = None
    body: bytes | str | None = None
    events: Sequence[SSEEvent] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    content_type: str | None = None
    delay: float = 0.0
    event_delay: float = 0.0
    drop_after: int | None = None


@dataclass(slots=True)
class RecordedRequest:
    """A request the fake server received."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes
    received_at: float = 0.0
    handling_seconds: float = 0.0

    @property
    def json(self) -> Any:
        """The body decoded as JSON (None when it is empty or not JSON)."""
        if not self.body:
            return None
        try:
            return json.loads(self.body)
        except ValueError:
            return None


Responder = Callable[[RecordedRequest], FakeResponse | None]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _HTTPServer

    def setup(self) -> None:
        super().setup()
        # Without this, Nagle's algorithm and delayed ACKs add ~40 ms to every answer.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the per-request stderr log."""

    def do_POST(self) -> None:
        self._handle()

    def do_GET(self) -> None:
        self._handle()

    def _handle(self) -> None:
        started = time.perf_counter()
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        path, _, query = self.path.partition("?")
        request = RecordedRequest(
            method=self.command,
            path=path,
            query=query,
            headers={name.lower(): value for name, value in self.headers.items()},
            body=body,
            received_at=time.time(),
        )
        owner = self.server.owner
        owner._record(request)
        response = owner._next_response(request)
        try:
            self._send(response)
        except OSError:  # the client went away (timeout, dropped stream): nothing to do
            self.close_connection = True
        request.handling_seconds = time.perf_counter() - started

    def _send(self, response: FakeResponse) -> None:
        stop = self.server.owner._stopping
        if response.delay and stop.wait(response.delay):
            self.close_connection = True
            return
        if response.events is not None:
            self._send_events(response, stop)
            return
        if response.body is not None:
            payload = response.body.encode() if isinstance(response.body, str) else response.body
            content_type = response.content_type or "text/plain; charset=utf-8"
        else:
            payload = json.dumps(response.json_body).encode()
            content_type = response.content_type or "application/json"
        self.send_response(response.status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def _send_events(self, response: FakeResponse, stop: threading.Event) -> None:
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type or "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.end_headers()
        for count, event in enumerate(response.events or ()):
            if response.drop_after is not None and count >= response.drop_after:
                self._drop()
                return
            if count and response.event_delay and stop.wait(response.event_delay):
                self._drop()
                return
            data = event.encode()
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()
        if response.drop_after is not None and response.drop_after >= len(response.events or ()):
            self._drop()
            return
        self.wfile.write(b"0\r\n\r\n")

    def _drop(self) -> None:
        """Cut the connection mid-body: no terminating chunk, so the client sees an error."""
        self.wfile.flush()
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    owner: FakeProviderServer


class FakeProviderServer:
    """A scriptable OpenAI + Anthropic compatible HTTP server on 127.0.0.1.

    Use it as a context manager (or ``start()``/``stop()``). ``openai_base_url`` and
    ``anthropic_base_url`` are what to hand to the SDKs; ``requests`` lists what arrived.
    """

    def __init__(
        self,
        responder: Responder | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.responder = responder
        self._host = host
        self._port = port
        self._queue: deque[FakeResponse] = deque()
        self._requests: list[RecordedRequest] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> FakeProviderServer:
        """Bind and serve in a daemon thread; returns self."""
        if self._server is not None:
            return self
        self._stopping.clear()
        server = _HTTPServer((self._host, self._port), _Handler)
        server.owner = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; delayed answers still pending are abandoned."""
        if self._server is None:
            return
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> FakeProviderServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- addresses ------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        if self._server is None:
            raise RuntimeError("the fake provider server is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def openai_base_url(self) -> str:
        """The ``base_url`` for OpenAI SDK clients (it ends in ``/v1``)."""
        return f"{self.url}/v1"

    @property
    def anthropic_base_url(self) -> str:
        """The ``base_url`` for Anthropic SDK clients (they add ``/v1/messages``)."""
        return self.url

    # -- scripting ------------------------------------------------------------------------

    def enqueue(self, *responses: FakeResponse) -> FakeProviderServer:
        """Answer the next requests with these responses, in order."""
        with self._lock:
            self._queue.extend(responses)
        return self

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of the requests received so far (oldest first)."""
        with self._lock:
            return list(self._requests)

    @property
    def pending(self) -> int:
        """Scripted responses not used yet."""
        with self._lock:
            return len(self._queue)

    def reset(self) -> None:
        """Forget scripted responses and recorded requests."""
        with self._lock:
            self._queue.clear()
            self._requests.clear()

    def _next_response(self, request: RecordedRequest) -> FakeResponse:
        with self._lock:
            scripted = self._queue.popleft() if self._queue else None
        if scripted is not None:
            return scripted
        if self.responder is not None:
            answer = self.responder(request)
            if answer is not None:
                return answer
        message = f"fake provider: nothing scripted for {request.method} {request.path}"
        return FakeResponse(
            status=500, json_body={"error": {"message": message, "type": "server_error"}}
        )

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(request)


# -- OpenAI wire format -----------------------------------------------------------------


def _usage_pair(usage: tuple[int, int] | None) -> tuple[int, int]:
    return usage if usage is not None else (0, 0)


def _arguments(arguments: Mapping[str, Any] | str) -> str:
    return arguments if isinstance(arguments, str) else json.dumps(arguments)


def openai_completion(
    content: str | None = None,
    tool_calls: Iterable[ToolCallSpec] = (),
    *,
    finish_reason: str | None = None,
    usage: tuple[int, int] | None = (12, 5),
    model: str = "fake-model",
    headers: Mapping[str, str] | None = None,
) -> FakeResponse:
    """A ``chat.completion`` JSON answer with text and/or tool calls."""
    calls = [
        {
            "id": f"call_{index + 1}",
            "type": "function",
            "function": {"name": name, "arguments": _arguments(arguments)},
        }
        for index, (name, arguments) in enumerate(tool_calls)
    ]
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if calls:
        message["tool_calls"] = calls
    body: dict[str, Any] = {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": finish_reason or ("tool_calls" if calls else "stop"),
                "logprobs": None,
            }
        ],
    }
    if usage is not None:
        prompt, completion = _usage_pair(usage)
        body["usage"] = {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        }
    return FakeResponse(json_body=body, headers=dict(headers or {}))


def openai_stream(
    text: str | Sequence[str] = (),
    tool_calls: Iterable[ToolCallSpec] = (),
    *,
    argument_chunk: int = 4,
    finish_reason: str | None = None,
    usage: tuple[int, int] | None = (12, 5),
    model: str = "fake-model",
    done: bool = True,
    drop_after: int | None = None,
) -> FakeResponse:
    """A ``chat.completion.chunk`` SSE stream, tool-call arguments split every few chars.

    ``text`` as a string is streamed word by word; as a list, one chunk per item.
    """
    pieces = _split_words(text) if isinstance(text, str) else list(text)

    def chunk(delta: dict[str, Any], reason: str | None = None) -> SSEEvent:
        return SSEEvent(
            {
                "id": "chatcmpl-fake",
                "object": "chat.completion.chunk",
                "created": 1_700_000_000,
                "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": reason}],
            }
        )

    events = [chunk({"role": "assistant", "content": ""})]
    events += [chunk({"content": piece}) for piece in pieces]
    calls = list(tool_calls)
    for index, (name, arguments) in enumerate(calls):
        encoded = _arguments(arguments)
        events.append(
            chunk(
                {
                    "tool_calls": [
                        {
                            "index": index,
                            "id": f"call_{index + 1}",
                            "type": "function",
                            "function": {"name": name, "arguments": ""},
                        }
                    ]
                }
            )
        )
        for start in range(0, len(encoded), max(1, argument_chunk)):
            fragment = encoded[start : start + argument_chunk]
            events.append(
                chunk({"tool_calls": [{"index": index, "function": {"arguments": fragment}}]})
            )
    events.append(chunk({}, finish_reason or ("tool_calls" if calls else "stop")))
    if usage is not None:
        prompt, completion = _usage_pair(usage)
        events.append(
            SSEEvent(
                {
                    "id": "chatcmpl-fake",
                    "object": "chat.completion.chunk",
                    "created": 1_700_000_000,
                    "model": model,
                    "choices": [],
                    "usage": {
                        "prompt_tokens": prompt,
                        "completion_tokens": completion,
                        "total_tokens": prompt + completion,
                    },
                }
            )
        )
    if done:
        events.append(SSEEvent("[DONE]"))
    return FakeResponse(events=events, drop_after=drop_after)


def openai_error(
    status: int,
    message: str,
    *,
    type: str = "invalid_request_error",
    code: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> FakeResponse:
    """An OpenAI error body ``{"error": {"message", "type", "code"}}`` with a status."""
    return FakeResponse(
        status=status,
        json_body={"error": {"message": message, "type": type, "param": None, "code": code}},
        headers=dict(headers or {}),
    )


# -- Anthropic wire format --------------------------------------------------------------


def _tool_input(arguments: Mapping[str, Any] | str) -> Any:
    if isinstance(arguments, str):
        try:
            return json.loads(arguments)
        except ValueError:
            return {"_raw": arguments}
    return dict(arguments)


def anthropic_message(
    text: str | None = None,
    tool_uses: Iterable[ToolCallSpec] = (),
    *,
    stop_reason: str | None = None,
    usage: tuple[int, int] | None = (12, 5),
    model: str = "fake-claude",
    headers: Mapping[str, str] | None = None,
) -> FakeResponse:
    """A Messages API JSON answer with a text block and/or ``tool_use`` blocks."""
    content: list[dict[str, Any]] = []
    if text is not None:
        content.append({"type": "text", "text": text})
    uses = list(tool_uses)
    for index, (name, arguments) in enumerate(uses):
        content.append(
            {
                "type": "tool_use",
                "id": f"toolu_{index + 1}",
                "name": name,
                "input": _tool_input(arguments),
            }
        )
    prompt, completion = _usage_pair(usage)
    body = {
        "id": "msg_fake",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason or ("tool_use" if uses else "end_turn"),
        "stop_sequence": None,
        "usage": {"input_tokens": prompt, "output_tokens": completion},
    }
    return FakeResponse(json_body=body, headers=dict(headers or {}))


def anthropic_stream(
    text: str | Sequence[str] = (),
    tool_uses: Iterable[ToolCallSpec] = (),
    *,
    argument_chunk: int = 4,
    stop_reason: str | None = None,
    usage: tuple[int, int] | None = (12, 5),
    model: str = "fake-claude",
    drop_after: int | None = None,
) -> FakeResponse:
    """A Messages API SSE stream (``event:`` lines), tool input as ``input_json_delta``."""
    pieces = _split_words(text) if isinstance(text, str) else list(text)
    prompt, completion = _usage_pair(usage)
    events = [
        SSEEvent(
            {
                "type": "message_start",
                "message": {
                    "id": "msg_fake",
                    "type": "message",
                    "role": "assistant",
                    "model": model,
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": {"input_tokens": prompt, "output_tokens": 1},
                },
            },
            "message_start",
        ),
        SSEEvent({"type": "ping"}, "ping"),
    ]
    index = 0
    if pieces:
        events.append(
            SSEEvent(
                {
                    "type": "content_block_start",
                    "index": index,
                    "content_block": {"type": "text", "text": ""},
                },
                "content_block_start",
            )
        )
        events += [
            SSEEvent(
                {
                    "type": "content_block_delta",
                    "index": index,
                    "delta": {"type": "text_delta", "text": piece},
                },
                "content_block_delta",
            )
            for piece in pieces
        ]
        events.append(
            SSEEvent({"type": "content_block_stop", "index": index}, "content_block_stop")
        )
        index += 1
    uses = list(tool_uses)
    for number, (name, arguments) in enumerate(uses):
        encoded = _arguments(arguments)
        events.append(
            SSEEvent(
                {
                    "type": "content_block_start",
                    "index": index,
                    "content_block": {
                        "type": "tool_use",
                        "id": f"toolu_{number + 1}",
                        "name": name,
                        "input": {},
                    },
                },
                "content_block_start",
            )
        )
        for start in range(0, len(encoded), max(1, argument_chunk)):
            events.append(
                SSEEvent(
                    {
                        "type": "content_block_delta",
                        "index": index,
                        "delta": {
                            "type": "input_json_delta",
                            "partial_json": encoded[start : start + argument_chunk],
                        },
                    },
                    "content_block_delta",
                )
            )
        events.append(
            SSEEvent({"type": "content_block_stop", "index": index}, "content_block_stop")
        )
        index += 1
    events.append(
        SSEEvent(
            {
                "type": "message_delta",
                "delta": {
                    "stop_reason": stop_reason or ("tool_use" if uses else "end_turn"),
                    "stop_sequence": None,
                },
                "usage": {"output_tokens": completion},
            },
            "message_delta",
        )
    )
    events.append(SSEEvent({"type": "message_stop"}, "message_stop"))
    return FakeResponse(events=events, drop_after=drop_after)


def anthropic_error(
    status: int,
    message: str,
    *,
    type: str = "invalid_request_error",
    headers: Mapping[str, str] | None = None,
) -> FakeResponse:
    """An Anthropic error body ``{"type": "error", "error": {"type", "message"}}``."""
    return FakeResponse(
        status=status,
        json_body={"type": "error", "error": {"type": type, "message": message}},
        headers=dict(headers or {}),
    )


def _split_words(text: str) -> list[str]:
    """Word-sized pieces that concatenate back to ``text`` exactly."""
    pieces: list[str] = []
    for word in text.split(" "):
        pieces.append(word if not pieces else " " + word)
    return [piece for piece in pieces if piece]


# -- serving the stand-in model ---------------------------------------------------------


def _anthropic_request_to_openai(
    body: Mapping[str, Any],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Messages and tools of a Messages API request, in OpenAI chat format."""
    messages: list[dict[str, Any]] = []
    system = body.get("system")
    if isinstance(system, list):
        system = "\n\n".join(
            block.get("text", "") for block in system if isinstance(block, Mapping)
        )
    if system:
        messages.append({"role": "system", "content": system})
    for message in body.get("messages") or ():
        role = message.get("role")
        content = message.get("content")
        if isinstance(content, str):
            messages.append({"role": role, "content": content})
            continue
        texts: list[str] = []
        calls: list[dict[str, Any]] = []
        for block in content or ():
            kind = block.get("type")
            if kind == "text":
                texts.append(block.get("text", ""))
            elif kind == "tool_use":
                calls.append(
                    {
                        "id": block.get("id"),
                        "type": "function",
                        "function": {
                            "name": block.get("name"),
                            "arguments": json.dumps(block.get("input") or {}),
                        },
                    }
                )
            elif kind == "tool_result":
                result = block.get("content")
                if isinstance(result, list):
                    result = "".join(
                        part.get("text", "") for part in result if isinstance(part, Mapping)
                    )
                messages.append(
                    {
                        "role": "tool",
                        "tool_call_id": block.get("tool_use_id"),
                        "content": result or "",
                    }
                )
        if role == "assistant":
            entry: dict[str, Any] = {"role": "assistant", "content": "".join(texts) or None}
            if calls:
                entry["tool_calls"] = calls
            messages.append(entry)
        elif texts:
            messages.append({"role": role, "content": "".join(texts)})
    tools = [
        {
            "type": "function",
            "function": {
                "name": tool.get("name"),
                "description": tool.get("description", ""),
                "parameters": tool.get("input_schema") or {"type": "object", "properties": {}},
            },
        }
        for tool in body.get("tools") or ()
    ]
    return messages, tools


def standin_responder(llm: Any = None) -> Responder:
    """A responder that answers every request with the rule-based ``OfflineStandInLLM``.

    It speaks both wire formats (JSON and streaming), so a whole journey can run through
    the real SDKs and this framework's clients against ``FakeProviderServer`` with no
    scripting. ``llm`` defaults to a fresh ``OfflineStandInLLM``.
    """
    from agent_runtime_framework.llm.standin import OfflineStandInLLM

    model = llm if llm is not None else OfflineStandInLLM()

    def respond(request: RecordedRequest) -> FakeResponse | None:
        body = request.json
        if not isinstance(body, Mapping):
            return None
        streaming = bool(body.get("stream"))
        if request.path.endswith("/chat/completions"):
            answer = model.reply(body.get("messages") or [], body.get("tools") or None)
            message = answer.message
            calls = [
                (call["function"]["name"], call["function"]["arguments"])
                for call in message.get("tool_calls") or ()
            ]
            usage = (answer.usage.get("prompt_tokens", 0), answer.usage.get("completion_tokens", 0))
            if streaming:
                return openai_stream(
                    message.get("content") or "", calls, usage=usage, model=model.model
                )
            return openai_completion(message.get("content"), calls, usage=usage, model=model.model)
        if request.path.endswith("/messages"):
            messages, tools = _anthropic_request_to_openai(body)
            answer = model.reply(messages, tools or None)
            message = answer.message
            calls = [
                (call["function"]["name"], call["function"]["arguments"])
                for call in message.get("tool_calls") or ()
            ]
            usage = (answer.usage.get("prompt_tokens", 0), answer.usage.get("completion_tokens", 0))
            if streaming:
                return anthropic_stream(
                    message.get("content") or "", calls, usage=usage, model=model.model
                )
            return anthropic_message(message.get("content"), calls, usage=usage, model=model.model)
        return None

    return respond
