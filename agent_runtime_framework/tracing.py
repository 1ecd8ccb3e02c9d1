"""OpenTelemetry tracing of turns, model calls and tool calls (the optional ``otel`` extra).

- ``turn_span(agent_key, conversation_id, run_id)``: a context manager around one turn
  (span ``invoke_agent <key>``); the Django host wraps every turn in it when
  ``AGENT_RUNTIME_FRAMEWORK["TRACING"]`` is on. Core users wrap ``agent.run`` themselves.
- ``OpenTelemetryHooks``: executor hooks that open a ``chat <model>`` span per model call and
  an ``execute_tool <name>`` span per tool call, with the GenAI semantic-convention
  attributes. Pass them as ``JourneyAgent(hooks=...)`` or ``agent.run(ctx, hooks=...)``.

Every span is a child of whatever span is current (the turn span, else e.g. the Django
request span of an instrumented server), so a turn shows up inside the request that played
it. While a model or tool call runs, its span is current, so instrumented HTTP clients or
database calls made by the provider SDK or the tool nest under it.

Nothing here imports OpenTelemetry until a span is needed; without ``opentelemetry-api``
installed, constructing the hooks or entering ``turn_span`` raises ``ImportError`` with the
install hint. Tool arguments, results and message text are never put on spans (they may
hold personal data).
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any

from .executor.hooks import ExecutorHooks

if TYPE_CHECKING:
    from opentelemetry.trace import Span, Tracer, TracerProvider

    from .executor.loop import ExecutorResult

__all__ = [
    "TRACER_NAME",
    "OpenTelemetryHooks",
    "genai_system",
    "otel_available",
    "turn_span",
]

#: The instrumentation scope of every span this package makes.
TRACER_NAME = "agent_runtime_framework"

_INSTALL_HINT = (
    "Tracing needs OpenTelemetry: pip install 'agent-runtime-framework[otel]' "
    "(opentelemetry-api; an SDK/exporter such as opentelemetry-sdk to see the spans)"
)

#: Provider names of the framework's clients -> GenAI ``gen_ai.system`` values.
_SYSTEMS = {"azure": "az.ai.openai"}


def otel_available() -> bool:
    """Whether ``opentelemetry-api`` can be imported (the ``otel`` extra is installed)."""
    try:
        import opentelemetry.trace  # noqa: F401
    except ImportError:
        return False
    return True


def _tracer(provider: TracerProvider | None) -> Tracer:
    try:
        from opentelemetry import trace
    except ImportError as exc:  # pragma: no cover - only without the extra
        raise ImportError(_INSTALL_HINT) from exc
    from . import __version__

    return trace.get_tracer(TRACER_NAME, __version__, tracer_provider=provider)


def genai_system(llm_client: Any) -> str:
    """The ``gen_ai.system`` of a client: its ``provider`` attribute (``openai``,
    ``anthropic``, ``azure`` -> ``az.ai.openai``), else ``_OTHER`` as the conventions say."""
    provider = getattr(llm_client, "provider", None)
    if isinstance(provider, str) and provider:
        return _SYSTEMS.get(provider, provider)
    return "_OTHER"


def _rejection_kind(reason: str) -> str:
    """What was wrong with a rejected call, without the argument values the reason quotes."""
    for marker, kind in (
        ("invalid arguments", "invalid arguments"),
        ("not available", "tool not offered at this step"),
        ("no implementation", "tool has no implementation"),
        ("no tool name", "no tool name"),
    ):
        if marker in reason:
            return f"tool call rejected: {kind}"
    return "tool call rejected"


def _text(value: Any) -> str:
    return str(value.value if isinstance(value, Enum) else value)


# -- per-turn bookkeeping -------------------------------------------------------------------


@dataclass(slots=True)
class _Open:
    """The spans one hooks object has open in one run (a model call, a tool call)."""

    llm: Any = None
    llm_token: Any = None
    tool: Any = None
    tool_token: Any = None
    call_ids: list[str] = field(default_factory=list)


@dataclass(slots=True)
class _Turn:
    """What a turn span tracks: itself, and the hooks' open spans to close at its end."""

    span: Any = None
    open: dict[int, _Open] = field(default_factory=dict)


#: The current turn (set by ``turn_span``; made on demand in the task when there is none).
#: A ContextVar, so one hooks object shared by concurrent turns keeps them apart.
_TURN: contextvars.ContextVar[_Turn | None] = contextvars.ContextVar("arf_otel_turn", default=None)


def _end(span: Any, token: Any, error: BaseException | str | None = None) -> None:
    """End ``span`` (with an error status when given) and restore the context before it."""
    from opentelemetry import context
    from opentelemetry.trace import Status, StatusCode

    if error is not None:
        if isinstance(error, BaseException):
            span.record_exception(error)
            span.set_attribute("error.type", type(error).__name__)
            span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
        else:
            span.set_status(Status(StatusCode.ERROR, error))
    span.end()
    if token is not None:
        context.detach(token)


def _close_all(turn: _Turn, error: BaseException | None) -> None:
    """End spans a run left open (it was cancelled, or raised past the hooks)."""
    reason: BaseException | str = error if error is not None else "the turn ended first"
    for state in turn.open.values():
        if state.tool is not None:
            _end(state.tool, None, reason)
            state.tool = state.tool_token = None
        if state.llm is not None:
            _end(state.llm, None, reason)
            state.llm = state.llm_token = None


@contextlib.contextmanager
def turn_span(
    agent_key: str,
    conversation_id: Any = None,
    run_id: Any = None,
    *,
    tracer_provider: TracerProvider | None = None,
    attributes: Mapping[str, Any] | None = None,
) -> Iterator[Span]:
    """One turn as the span ``invoke_agent <agent_key>``, current while the block runs.

    An exception leaving the block is recorded and sets the span's status to ERROR; model
    and tool spans the turn left open (a cancelled turn) are ended with it.
    """
    tracer = _tracer(tracer_provider)  # first: without the extra, the install hint
    from opentelemetry import trace

    attrs: dict[str, Any] = {
        "gen_ai.operation.name": "invoke_agent",
        "gen_ai.agent.name": agent_key,
    }
    if conversation_id is not None:
        attrs["gen_ai.conversation.id"] = str(conversation_id)
    if run_id is not None:
        attrs["arf.run_id"] = str(run_id)
    if attributes:
        attrs.update(attributes)
    with tracer.start_as_current_span(
        f"invoke_agent {agent_key}", kind=trace.SpanKind.INTERNAL, attributes=attrs
    ) as span:
        turn = _Turn(span)
        token = _TURN.set(turn)
        error: BaseException | None = None
        try:
            yield span
        except BaseException as exc:
            error = exc
            if not isinstance(exc, Exception):  # cancelled: OpenTelemetry records Exception only
                from opentelemetry.trace import Status, StatusCode

                span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            raise
        finally:
            _close_all(turn, error)
            _TURN.reset(token)


# -- the hooks ------------------------------------------------------------------------------


class OpenTelemetryHooks(ExecutorHooks):
    """Spans for model calls (``chat <model>``) and tool calls (``execute_tool <name>``).

    ``llm_client`` gives ``gen_ai.system`` (its ``provider``) and ``gen_ai.request.model``
    (its ``model``) unless ``system``/``model`` say otherwise. One instance may serve many
    concurrent runs: open spans are kept per asyncio context, not on the object.
    """

    def __init__(
        self,
        llm_client: Any = None,
        *,
        system: str | None = None,
        model: str | None = None,
        tracer_provider: TracerProvider | None = None,
    ) -> None:
        self.llm_client = llm_client
        self.system = system
        self.model = model
        self.tracer = _tracer(tracer_provider)

    def _state(self) -> _Open:
        turn = _TURN.get()
        if turn is None:  # no turn span: keep the bookkeeping in this task's context
            turn = _Turn()
            _TURN.set(turn)
        state = turn.open.get(id(self))
        if state is None:
            state = turn.open[id(self)] = _Open()
        return state

    def _start(self, name: str, kind: Any, attributes: dict[str, Any]) -> tuple[Any, Any]:
        """A span, child of the current one, made current itself until it ends."""
        from opentelemetry import context, trace

        span = self.tracer.start_span(name, kind=kind, attributes=attributes)
        return span, context.attach(trace.set_span_in_context(span))

    # -- model calls ------------------------------------------------------------------------
    async def on_llm_start(
        self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]
    ) -> None:
        from opentelemetry.trace import SpanKind

        state = self._state()
        if state.llm is not None:  # a previous call that never ended (should not happen)
            _end(state.llm, state.llm_token, "superseded by the next model call")
        system = self.system or genai_system(self.llm_client)
        model = self.model or getattr(self.llm_client, "model", None)
        attrs: dict[str, Any] = {
            "gen_ai.operation.name": "chat",
            "gen_ai.system": system,
            "gen_ai.provider.name": system,
        }
        if isinstance(model, str) and model:
            attrs["gen_ai.request.model"] = model
        if tools:
            attrs["arf.tools.offered"] = len(tools)
        name = f"chat {model}" if isinstance(model, str) and model else "chat"
        state.llm, state.llm_token = self._start(name, SpanKind.CLIENT, attrs)

    async def on_llm_end(self, message: dict[str, Any], usage: dict[str, int]) -> None:
        state = self._state()
        span = state.llm
        if span is None:
            return
        calls = message.get("tool_calls") or []
        if usage:
            span.set_attribute("gen_ai.usage.input_tokens", int(usage.get("prompt_tokens", 0)))
            span.set_attribute("gen_ai.usage.output_tokens", int(usage.get("completion_tokens", 0)))
        # The hook sees the normalized message, not the provider's raw finish reason: a
        # tool-calling answer is "tool_calls", any other "stop".
        span.set_attribute("gen_ai.response.finish_reasons", ["tool_calls" if calls else "stop"])
        state.call_ids = [str(c.get("id") or "") for c in calls if isinstance(c, dict)]
        _end(span, state.llm_token)
        state.llm = state.llm_token = None

    # -- tool calls -------------------------------------------------------------------------
    def _tool_attributes(self, state: _Open, name: str) -> dict[str, Any]:
        attrs: dict[str, Any] = {
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": name,
            "gen_ai.tool.type": "function",
        }
        # Calls run one after another in the order of the answer: the next id is this one's.
        if state.call_ids:
            call_id = state.call_ids.pop(0)
            if call_id:
                attrs["gen_ai.tool.call.id"] = call_id
        return attrs

    async def on_tool_start(self, name: str, arguments: dict[str, Any]) -> None:
        from opentelemetry.trace import SpanKind

        state = self._state()
        if state.tool is not None:
            _end(state.tool, state.tool_token, "superseded by the next tool call")
        state.tool, state.tool_token = self._start(
            f"execute_tool {name}", SpanKind.INTERNAL, self._tool_attributes(state, name)
        )

    async def on_tool_end(self, name: str, result: str) -> None:
        state = self._state()
        if state.tool is None:
            return
        state.tool.set_attribute("arf.tool.status", "ok")
        _end(state.tool, state.tool_token)
        state.tool = state.tool_token = None

    async def on_tool_error(
        self, name: str, arguments: dict[str, Any], error: BaseException
    ) -> None:
        state = self._state()
        if state.tool is None:
            return
        state.tool.set_attribute("arf.tool.status", "error")
        _end(state.tool, state.tool_token, error)
        state.tool = state.tool_token = None

    async def on_tool_rejected(self, name: str, arguments: Any, reason: str) -> None:
        from opentelemetry.trace import SpanKind

        state = self._state()
        span, token = self._start(
            f"execute_tool {name or 'invalid_tool_call'}",
            SpanKind.INTERNAL,
            self._tool_attributes(state, name),
        )
        span.set_attribute("arf.tool.status", "rejected")
        span.set_attribute("error.type", "tool_call_rejected")
        _end(span, token, _rejection_kind(reason))

    # -- the run ----------------------------------------------------------------------------
    async def on_step_change(self, old_step: Any, new_step: Any) -> None:
        from opentelemetry import trace

        trace.get_current_span().add_event(
            "journey.step_changed", {"from": _text(old_step), "to": _text(new_step)}
        )

    async def on_complete(self, result: ExecutorResult) -> None:
        turn = _TURN.get()
        if turn is None or turn.span is None:
            return  # only annotate a turn span of ours, never someone else's span
        span = turn.span
        span.set_attribute("arf.stopped_reason", result.stopped_reason)
        span.set_attribute("arf.iterations", result.iterations)
        span.set_attribute("arf.tool_calls", len(result.tool_calls))
        if result.final_step is not None:
            span.set_attribute("arf.step", _text(result.final_step))

    async def on_error(self, error: BaseException) -> None:
        state = self._state()
        if state.tool is not None:  # a tool raised in debug mode
            _end(state.tool, state.tool_token, error)
            state.tool = state.tool_token = None
        if state.llm is not None:  # the model call failed
            _end(state.llm, state.llm_token, error)
            state.llm = state.llm_token = None
