"""LLMExecutor: the one LLM/tool loop of the framework.

Send the conversation and the tools of the current step to the model; run the tool calls
it makes; repeat until it answers in text. Everything else (agents, the Django adapter, the
HTTP host) goes through this loop, so its guarantees hold everywhere:

- A tool runs only if it is offered at the step the journey is in *when the call runs*
  and its arguments validate against its schema. Otherwise it does not run and the model
  reads a precise error (which tool, which argument, what was expected, what is available).
- After each tool call the loop asks ``step_view`` again, so a step change takes effect
  inside the same turn: new system prompt, new tool set.
- Consecutive failed calls, empty answers and ``max_iterations`` are bounded and end the
  run with a safe reply and a ``stopped_reason``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..config import is_debug, should_swallow_exceptions
from ..llm.base import LLMResponse, normalize_usage
from ..messages import as_messages, clean_json, clean_text, valid_tool_name
from ..tools.base import stringify_result
from ..tools.executors import (
    CallableToolExecutor,
    MethodToolExecutor,
    ToolExecutor,
    tool_runner,
)
from ..tools.schema import ArgumentError, ToolSchema
from .hooks import ExecutorHooks, overridden_hooks

__all__ = [
    "STOP_CANCELLED",
    "STOP_COMPLETED",
    "STOP_EMPTY_RESPONSE",
    "STOP_INVALID_TOOL_CALLS",
    "STOP_MAX_ITERATIONS",
    "CallableToolExecutor",
    "ExecutionResult",
    "Executor",
    "ExecutorConfig",
    "ExecutorResult",
    "LLMExecutor",
    "LLMExecutorConfig",
    "MethodToolExecutor",
    "StepView",
    "ToolCallRecord",
    "ToolExecutor",
]

logger = logging.getLogger("agent_runtime_framework.executor")

STOP_COMPLETED = "text_response"  # 0.3.0's value: callers compare against it
STOP_MAX_ITERATIONS = "max_iterations"
STOP_INVALID_TOOL_CALLS = "invalid_tool_calls"
STOP_EMPTY_RESPONSE = "empty_response"
STOP_CANCELLED = "cancelled"


@dataclass(slots=True)
class LLMExecutorConfig:
    """Limits and switches of the loop."""

    #: LLM calls per run at most.
    max_iterations: int = 10
    #: Failed tool calls in a row (rejected, invalid or raising) before the run gives up.
    max_consecutive_tool_failures: int = 3
    #: Use the client's ``stream()`` when it has one, forwarding deltas to hooks.
    stream: bool = False
    #: Extra keyword arguments for every ``generate`` call (temperature, ...).
    llm_kwargs: dict[str, Any] = field(default_factory=dict)
    #: What the user reads when the run has to stop without a proper answer.
    fallback_reply: str = (
        "Sorry, something went wrong on my side and I could not finish that. "
        "Could you say it again, perhaps in other words?"
    )
    #: Tools whose successful call ends the run; its result is the reply and the stop
    #: reason is ``"terminal_tool:<name>"`` (0.3.0).
    terminal_tools: set[str] = field(default_factory=set)
    #: Ask the model to call a tool whenever tools are offered (``tool_choice="required"``).
    require_tool_call: bool = False
    #: 0.3.0's switch; a text answer always ends the run here (there is nothing left for
    #: the model to answer), so only True is accepted.
    stop_on_text: bool = True

    def __post_init__(self) -> None:
        if not self.stop_on_text:
            raise ValueError(
                "stop_on_text=False is not supported: a text answer ends the run. "
                "Use terminal_tools or max_iterations to shape the loop."
            )


@dataclass(slots=True)
class StepView:
    """What the model may see and do at the current step."""

    system_prompt: str | None
    tools: Sequence[ToolSchema]
    step: Any = None


@dataclass(slots=True)
class ToolCallRecord:
    """One tool call of a run and what became of it."""

    id: str
    name: str
    arguments: Any
    status: str  # "ok" | "error" | "rejected"
    result: str
    step_before: Any = None
    step_after: Any = None
    #: The tool's own return value (e.g. a ``ToolResult``), for hosts.
    raw_result: Any = None


@dataclass(slots=True)
class ExecutorResult:
    """The outcome of a run."""

    content: str
    #: Messages this run added (assistant messages with tool calls, tool results, final).
    messages: list[dict[str, Any]]
    tool_calls: list[ToolCallRecord]
    iterations: int
    usage: dict[str, int]
    stopped_reason: str
    final_step: Any = None

    @property
    def final_response(self) -> str:
        return self.content

    @property
    def response(self) -> str:
        """0.3.0's name of ``content``."""
        return self.content

    @property
    def tool_calls_made(self) -> int:
        """How many tool calls were executed or answered (0.3.0)."""
        return len(self.tool_calls)

    @property
    def completed(self) -> bool:
        return self.stopped_reason == STOP_COMPLETED


#: 0.3.0's name of the result type.
ExecutionResult = ExecutorResult


AfterToolCall = Callable[[ToolCallRecord, list[dict[str, Any]]], Awaitable[None]]


class LLMExecutor:
    """Runs the model/tool loop; see the module docstring for its guarantees."""

    def __init__(
        self,
        llm_client: Any,
        tool_executor: ToolExecutor | None = None,
        config: LLMExecutorConfig | None = None,
        hooks: ExecutorHooks | None = None,
    ) -> None:
        self.llm_client = llm_client
        self.tool_executor = tool_executor
        self.config = config or LLMExecutorConfig()
        self.hooks = hooks
        self._active = overridden_hooks(hooks)

    async def run(
        self,
        messages: Sequence[Mapping[str, Any]],
        tools: Sequence[ToolSchema] | None = None,
        system_prompt: str | None = None,
        *,
        step_view: Callable[[], StepView] | None = None,
        tool_executor: ToolExecutor | None = None,
        after_tool_call: AfterToolCall | None = None,
        cancelled: Callable[[], bool] | None = None,
        hooks: ExecutorHooks | None = None,
    ) -> ExecutorResult:
        """Run until the model answers in text or a limit is hit.

        ``tools``/``system_prompt`` are fixed for the run; pass ``step_view`` instead to
        have them re-read after every tool call. ``after_tool_call`` runs after each
        executed call with the messages so far (agents persist there). ``cancelled`` is
        polled before each LLM call. ``hooks`` replaces the executor's hooks for this run.
        """
        if step_view is None:
            fixed = StepView(system_prompt=system_prompt, tools=list(tools or ()))

            def step_view() -> StepView:
                return fixed

        return await self.run_in_place(
            as_messages(messages),
            step_view=step_view,
            tool_executor=tool_executor,
            after_tool_call=after_tool_call,
            cancelled=cancelled,
            hooks=hooks,
        )

    async def run_in_place(
        self,
        convo: list[dict[str, Any]],
        *,
        step_view: Callable[[], StepView],
        tool_executor: ToolExecutor | None = None,
        after_tool_call: AfterToolCall | None = None,
        cancelled: Callable[[], bool] | None = None,
        hooks: ExecutorHooks | None = None,
    ) -> ExecutorResult:
        """``run`` on a history list the caller hands over instead of a copy of it.

        The loop works in ``convo`` itself: the system prompt goes in at index 0 and the
        run's messages are appended. For callers that own a fresh history list (as
        ``JourneyAgent`` does), this saves copying the whole history on every turn.
        """
        if hooks is not None:
            active = overridden_hooks(hooks)
        else:
            hooks, active = self.hooks, self._active
        executor = tool_executor or self.tool_executor
        run_tool = tool_runner(executor) if executor is not None else None
        config = self.config
        view = step_view()
        prompt = view.system_prompt
        owns_system = bool(prompt)
        if prompt:
            convo.insert(0, {"role": "system", "content": prompt})
        first_new = len(convo)
        records: list[ToolCallRecord] = []
        prompt_tokens = completion_tokens = total_tokens = 0
        failures = 0
        iteration = 0
        content = ""
        stopped = STOP_MAX_ITERATIONS
        stream = config.stream and hasattr(self.llm_client, "stream")
        llm_kwargs = config.llm_kwargs
        if config.require_tool_call:
            llm_kwargs = {**llm_kwargs, "tool_choice": "required"}
        terminal = config.terminal_tools

        try:
            while iteration < config.max_iterations:
                if cancelled is not None and cancelled():
                    stopped = STOP_CANCELLED
                    break
                iteration += 1
                if "on_iteration_start" in active:
                    await hooks.on_iteration_start(iteration)  # type: ignore[union-attr]
                # A loop rather than a comprehension: no extra frame on every LLM call.
                tool_specs: list[dict[str, Any]] = []
                for tool in view.tools:
                    tool_specs.append(tool.to_openai_format())
                if "on_llm_start" in active:
                    await hooks.on_llm_start(convo, tool_specs)  # type: ignore[union-attr]
                if "on_llm_call" in active:
                    await hooks.on_llm_call(convo, tool_specs)  # type: ignore[union-attr]
                if stream:
                    response = await self._stream_llm(convo, tool_specs, hooks, active)
                elif llm_kwargs:
                    kwargs = llm_kwargs
                    if not tool_specs and "tool_choice" in kwargs:
                        kwargs = {k: v for k, v in kwargs.items() if k != "tool_choice"}
                    response = await self.llm_client.generate(
                        convo, tools=tool_specs or None, **kwargs
                    )
                else:  # the same call without unpacking an empty dict each time
                    response = await self.llm_client.generate(convo, tools=tool_specs or None)
                message, calls = _normalize_message(response, iteration)
                call_usage = normalize_usage(getattr(response, "usage", None))
                if call_usage:
                    prompt_tokens += call_usage["prompt_tokens"]
                    completion_tokens += call_usage["completion_tokens"]
                    total_tokens += call_usage["total_tokens"]
                if "on_llm_end" in active:
                    await hooks.on_llm_end(message, call_usage)  # type: ignore[union-attr]

                if not calls:
                    text = message.get("content") or ""
                    if not text.strip():
                        logger.warning("model answered with neither content nor tool calls")
                        content = config.fallback_reply
                        convo.append({"role": "assistant", "content": content})
                        stopped = STOP_EMPTY_RESPONSE
                        break
                    convo.append(message)
                    content = text
                    stopped = STOP_COMPLETED
                    break

                convo.append(message)
                if "on_tool_calls" in active:
                    await hooks.on_tool_calls(calls)  # type: ignore[union-attr]
                for call in calls:
                    record = await self._run_call(call, view, executor, run_tool, hooks, active)
                    records.append(record)
                    convo.append(
                        {"role": "tool", "tool_call_id": record.id, "content": record.result}
                    )
                    if record.status == "ok":
                        failures = 0
                        view = step_view()
                        record.step_after = view.step
                        if view.step != record.step_before and "on_step_change" in active:
                            await hooks.on_step_change(record.step_before, view.step)  # type: ignore[union-attr]
                        if view.system_prompt != prompt:
                            prompt = view.system_prompt
                            if owns_system:
                                convo[0] = {"role": "system", "content": prompt or ""}
                            elif prompt:
                                convo.insert(0, {"role": "system", "content": prompt})
                                owns_system = True
                                first_new += 1
                        if after_tool_call is not None:
                            await after_tool_call(record, convo[first_new:])
                    else:
                        failures += 1
                        record.step_after = record.step_before
                last = records[-1]
                if terminal and last.status == "ok" and last.name in terminal:
                    content = last.result
                    stopped = f"terminal_tool:{last.name}"
                    break
                if failures >= config.max_consecutive_tool_failures:
                    content = config.fallback_reply
                    convo.append({"role": "assistant", "content": content})
                    stopped = STOP_INVALID_TOOL_CALLS
                    break
            else:
                # Out of iterations while the model still wanted tools.
                content = config.fallback_reply
                convo.append({"role": "assistant", "content": content})
                stopped = STOP_MAX_ITERATIONS
            if stopped == STOP_CANCELLED:
                content = ""
        except Exception as exc:
            if "on_error" in active:
                await hooks.on_error(exc)  # type: ignore[union-attr]
            raise

        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": total_tokens,
        }
        # Positional, in field order (content, messages, tool_calls, iterations, usage,
        # stopped_reason, final_step): this runs once per turn.
        result = ExecutorResult(
            content, convo[first_new:], records, iteration, usage, stopped, view.step
        )
        if "on_complete" in active:
            await hooks.on_complete(result)  # type: ignore[union-attr]
        elif "on_complete_030" in active:  # 0.3.0's signature: (response, stopped_reason)
            await hooks.on_complete(content, stopped)  # type: ignore[union-attr,call-arg,arg-type]
        return result

    async def _stream_llm(
        self,
        convo: list[dict[str, Any]],
        tool_specs: list[dict[str, Any]],
        hooks: ExecutorHooks | None,
        active: frozenset[str],
    ) -> Any:
        final: LLMResponse | None = None
        stream = self.llm_client.stream(convo, tools=tool_specs or None, **self.config.llm_kwargs)
        async for event in stream:
            if event.delta and "on_llm_delta" in active:
                await hooks.on_llm_delta(clean_text(event.delta))  # type: ignore[union-attr]
            if event.response is not None:
                final = event.response
        if final is None:
            raise RuntimeError("the client's stream ended without a complete response")
        return final

    async def _run_call(
        self,
        call: dict[str, Any],
        view: StepView,
        executor: ToolExecutor | None,
        run_tool: Callable[[str, dict[str, Any]], Any] | None,
        hooks: ExecutorHooks | None,
        active: frozenset[str],
    ) -> ToolCallRecord:
        function = call.get("function") or {}
        name = function.get("name") or ""
        raw_args = function.get("arguments")
        step = view.step
        schema: ToolSchema | None = None
        for tool in view.tools:
            if tool.name == name:
                schema = tool
                break
        arguments: dict[str, Any] | None = None
        problem: ArgumentError | None = None
        if schema is not None and executor is not None and executor.has_tool(name):
            if type(raw_args) is str and "\\u" in raw_args:
                raw_args = _clean_escapes(raw_args)
            try:
                arguments = schema.validate_arguments(raw_args)
            except ArgumentError as exc:
                problem = exc
        if arguments is None:
            reason = _rejection(schema, name, view, executor, problem)
            if "on_tool_rejected" in active:
                await hooks.on_tool_rejected(name, raw_args, reason)  # type: ignore[union-attr]
            return ToolCallRecord(call["id"], name, raw_args, "rejected", reason, step)

        if "on_tool_start" in active:
            await hooks.on_tool_start(name, arguments)  # type: ignore[union-attr]
        try:
            raw = await run_tool(name, arguments)  # type: ignore[misc]
        except Exception as exc:
            if "on_tool_error" in active:
                await hooks.on_tool_error(name, arguments, exc)  # type: ignore[union-attr]
            if is_debug() or not should_swallow_exceptions():
                raise
            logger.warning("tool %s raised %s: %s", name, type(exc).__name__, exc)
            error = f"Error executing {name}: {exc}"
            return ToolCallRecord(call["id"], name, arguments, "error", error, step)
        result = clean_text(raw if type(raw) is str else stringify_result(raw))
        if "on_tool_end" in active:
            await hooks.on_tool_end(name, result)  # type: ignore[union-attr]
        return ToolCallRecord(call["id"], name, arguments, "ok", result, step, raw_result=raw)


def _rejection(
    schema: ToolSchema | None,
    name: str,
    view: StepView,
    executor: ToolExecutor | None,
    problem: ArgumentError | None,
) -> str:
    """What the model reads when its call does not run: which tool, what is wrong."""
    available = ", ".join(t.name for t in view.tools) or "none"
    step = view.step
    step_text = f" at step '{getattr(step, 'value', step)}'" if step is not None else ""
    if schema is None:
        if not name:
            return f"Error: the tool call has no tool name. Tools available now: {available}."
        return (
            f"Error: tool '{name}' is not available{step_text}. "
            f"Tools available now: {available}. Call one of those, or answer in text."
        )
    if executor is None or not executor.has_tool(name):
        return (
            f"Error: tool '{name}' is offered but has no implementation. "
            f"Tools available now: {available}."
        )
    expected = json.dumps(schema.parameters_schema().get("properties", {}))
    return (
        f"Error: invalid arguments for tool '{name}': {problem}. "
        f"Expected parameters: {expected}. Tools available now: {available}."
    )


def _normalize_message(
    response: Any, iteration: int
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The answer as an OpenAI-style assistant dict, and its tool calls as plain dicts.

    This is where model output enters, so it is made safe here: text that cannot be
    stored or streamed is cleaned (``messages.clean_text``), and a tool call whose name a
    provider would refuse to read back (empty, missing, odd characters) is echoed under
    the name ``invalid_tool_call``; the call itself keeps the name the model sent, so the
    error it gets back says what was wrong.
    """
    try:
        message = response.message
    except AttributeError:
        message = None
    if type(message) is dict and message.get("role") == "assistant":
        content = message.get("content")
        if (
            content is None
            or (type(content) is str and content.isascii() and "\x00" not in content)
            or (type(content) is str and clean_text(content) is content)
        ):
            given = message.get("tool_calls")
            if not given:
                if "tool_calls" not in message:
                    return message, []
            elif _well_formed(given):
                return message, given
    if message is None and isinstance(response, Mapping):
        message = response.get("message", response)
    if message is None:
        raise TypeError(
            f"LLM client returned {type(response).__name__} without a .message; "
            "generate() must return an object with .message and .usage"
        )
    if not isinstance(message, dict):
        message = _as_dict(message)
    content = message.get("content")
    if type(content) is str:
        content = clean_text(content)
    elif content is not None:
        content = clean_json(content)
    raw_calls = message.get("tool_calls") or []
    if not raw_calls:
        return {"role": "assistant", "content": content}, []
    calls: list[dict[str, Any]] = []
    echoed: list[dict[str, Any]] = []
    for index, raw in enumerate(raw_calls):
        call = raw if isinstance(raw, dict) else _as_dict(raw)
        function = call.get("function") or {}
        if not isinstance(function, dict):
            function = _as_dict(function)
        if not function and "name" in call:  # the simplified {"name", "arguments"} form
            function = call
        arguments = function.get("arguments")
        if not isinstance(arguments, str):
            # Some clients decode the arguments; the transcript keeps the JSON string.
            try:
                arguments = json.dumps(arguments if arguments is not None else {})
            except (TypeError, ValueError):
                arguments = str(arguments)
        arguments = clean_text(arguments)
        name = function.get("name")
        name = clean_text(name) if type(name) is str else ""
        call_id = call.get("id")
        call_id = clean_text(call_id) if type(call_id) is str and call_id else ""
        if not call_id:
            call_id = f"call_{iteration}_{index}"
        calls.append(
            {
                "id": call_id,
                "type": "function",
                "function": {"name": name, "arguments": arguments},
            }
        )
        echoed.append(
            {
                "id": call_id,
                "type": "function",
                "function": {
                    "name": name if valid_tool_name(name) else "invalid_tool_call",
                    "arguments": arguments,
                },
            }
        )
    return {"role": "assistant", "content": content, "tool_calls": echoed}, calls


def _clean_escapes(raw_args: str) -> str:
    """Arguments whose JSON escapes decode to a NUL or a lone surrogate, made clean.

    Strict JSON parsers refuse a lone surrogate escape and a NUL would reach the tool and
    the database; Python's parser accepts both, so parse, clean and write back.
    """
    try:
        decoded = json.loads(raw_args)
    except ValueError:
        return raw_args  # not JSON at all: validation says so
    cleaned = clean_json(decoded)
    return raw_args if cleaned == decoded else json.dumps(cleaned, ensure_ascii=False)


def _well_formed(calls: Any) -> bool:
    """True when tool calls are plain OpenAI dicts with ids, valid names and clean text."""
    if type(calls) is not list:
        return False
    for call in calls:
        if type(call) is not dict or call.get("type") != "function":
            return False
        call_id = call.get("id")
        if type(call_id) is not str or not call_id or clean_text(call_id) is not call_id:
            return False
        function = call.get("function")
        if type(function) is not dict:
            return False
        arguments = function.get("arguments")
        if type(arguments) is not str or clean_text(arguments) is not arguments:
            return False
        if not valid_tool_name(function.get("name")):
            return False
    return True


def _as_dict(obj: Any) -> dict[str, Any]:
    if hasattr(obj, "model_dump"):
        return obj.model_dump()
    if isinstance(obj, Mapping):
        return dict(obj)
    return dict(vars(obj))


#: 0.3.0 names, kept so older code runs unchanged.
Executor = LLMExecutor
ExecutorConfig = LLMExecutorConfig
