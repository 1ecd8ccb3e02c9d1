"""Executor hooks: observe every stage of a run without touching the loop.

Override only the methods you need; the executor skips hooks that are not overridden, so
unused hooks cost nothing on the hot path.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .loop import ExecutorResult

__all__ = ["HOOK_NAMES", "CompositeHooks", "ExecutorHooks", "LoggingHooks", "overridden_hooks"]

HOOK_NAMES = (
    "on_iteration_start",
    "on_llm_start",
    "on_llm_call",
    "on_llm_delta",
    "on_llm_end",
    "on_tool_calls",
    "on_tool_start",
    "on_tool_end",
    "on_tool_error",
    "on_tool_rejected",
    "on_step_change",
    "on_complete",
    "on_error",
)


class ExecutorHooks:
    """No-op base; every method is an async callback of the loop."""

    async def on_iteration_start(self, iteration: int) -> None:
        """Before each LLM call of a run (1-based)."""

    async def on_llm_start(
        self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]
    ) -> None:
        """Right before the model is called, with exactly what it is sent."""

    async def on_llm_call(
        self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None
    ) -> None:
        """0.3.0's name of ``on_llm_start``; called too, for hooks written against 0.3.0."""

    async def on_llm_delta(self, delta: str) -> None:
        """A streamed text fragment (only with a streaming client and ``stream=True``)."""

    async def on_llm_end(self, message: dict[str, Any], usage: dict[str, int]) -> None:
        """The model's complete answer and the tokens it cost."""

    async def on_tool_calls(self, tool_calls: list[dict[str, Any]]) -> None:
        """The tool calls of one answer, before any of them runs."""

    async def on_tool_start(self, name: str, arguments: dict[str, Any]) -> None:
        """A validated tool call is about to run."""

    async def on_tool_end(self, name: str, result: str) -> None:
        """A tool returned (``result`` is what the model will read)."""

    async def on_tool_error(
        self, name: str, arguments: dict[str, Any], error: BaseException
    ) -> None:
        """A tool raised (production mode turns it into an error result)."""

    async def on_tool_rejected(self, name: str, arguments: Any, reason: str) -> None:
        """A call was not executed: unknown tool, not offered at this step, bad arguments."""

    async def on_step_change(self, old_step: Any, new_step: Any) -> None:
        """A tool moved the journey to another step."""

    async def on_complete(self, result: ExecutorResult) -> None:
        """The run ended (see ``result.stopped_reason``).

        A hook written against 0.3.0 as ``on_complete(self, response, stopped_reason)``
        is recognised by its signature and called that way.
        """

    async def on_error(self, error: BaseException) -> None:
        """The run failed with an exception (e.g. the model could not be reached)."""


_BASE_METHODS = {name: getattr(ExecutorHooks, name) for name in HOOK_NAMES}


def overridden_hooks(hooks: ExecutorHooks | None) -> frozenset[str]:
    """Names of the hook methods that ``hooks`` actually implements."""
    if hooks is None:
        return frozenset()
    if isinstance(hooks, CompositeHooks):
        return hooks.active
    cls = type(hooks)
    found = _OVERRIDES.get(cls)
    if found is None:
        names = {name for name in HOOK_NAMES if getattr(cls, name, None) is not _BASE_METHODS[name]}
        if "on_complete" in names and _takes_two_arguments(cls.on_complete):
            names.discard("on_complete")
            names.add("on_complete_030")
        found = _OVERRIDES[cls] = frozenset(names)
    return found


_OVERRIDES: dict[type, frozenset[str]] = {}


def _takes_two_arguments(method: Any) -> bool:
    """Whether ``on_complete`` has 0.3.0's ``(response, stopped_reason)`` signature."""
    try:
        parameters = list(inspect.signature(method).parameters.values())[1:]  # no self
    except (TypeError, ValueError):
        return False
    positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(positional) >= 2


class LoggingHooks(ExecutorHooks):
    """Logs the run to the ``agent_runtime_framework.executor`` logger."""

    def __init__(self, logger: logging.Logger | None = None, level: int = logging.INFO) -> None:
        self.logger = logger or logging.getLogger("agent_runtime_framework.executor")
        self.level = level

    async def on_iteration_start(self, iteration: int) -> None:
        self.logger.debug("iteration %d", iteration)

    async def on_llm_end(self, message: dict[str, Any], usage: dict[str, int]) -> None:
        self.logger.debug(
            "llm answered (%d tool calls, usage %s)", len(message.get("tool_calls") or ()), usage
        )

    async def on_tool_start(self, name: str, arguments: dict[str, Any]) -> None:
        self.logger.log(self.level, "tool %s started with %s", name, arguments)

    async def on_tool_end(self, name: str, result: str) -> None:
        self.logger.log(self.level, "tool %s returned %.200s", name, result)

    async def on_tool_error(
        self, name: str, arguments: dict[str, Any], error: BaseException
    ) -> None:
        self.logger.warning("tool %s failed: %s", name, error, exc_info=error)

    async def on_tool_rejected(self, name: str, arguments: Any, reason: str) -> None:
        self.logger.warning("tool call %s rejected: %s", name, reason)

    async def on_step_change(self, old_step: Any, new_step: Any) -> None:
        self.logger.log(self.level, "step %s -> %s", old_step, new_step)

    async def on_complete(self, result: ExecutorResult) -> None:
        self.logger.log(
            self.level,
            "run finished: %s after %d iterations, usage %s",
            result.stopped_reason,
            result.iterations,
            result.usage,
        )

    async def on_error(self, error: BaseException) -> None:
        self.logger.error("run failed: %s", error, exc_info=error)


class CompositeHooks(ExecutorHooks):
    """Fans every callback out to several hooks objects, in order."""

    def __init__(self, *hooks: ExecutorHooks | Iterable[ExecutorHooks] | None) -> None:
        flat: list[ExecutorHooks] = []
        for item in hooks:
            if item is None:
                continue
            if isinstance(item, ExecutorHooks):
                flat.append(item)
            else:
                flat.extend(h for h in item if h is not None)
        self.hooks = flat
        self._by_name = {
            name: [h for h in flat if name in overridden_hooks(h)]
            for name in (*HOOK_NAMES, "on_complete_030")
        }
        active = {name for name, hs in self._by_name.items() if hs}
        if "on_complete_030" in active:  # this object's on_complete serves both signatures
            active.discard("on_complete_030")
            active.add("on_complete")
        self.active = frozenset(active)

    def add(self, hooks: ExecutorHooks) -> None:
        self.__init__(*self.hooks, hooks)  # type: ignore[misc]

    async def _fan(self, name: str, *args: Any) -> None:
        for h in self._by_name[name]:
            await getattr(h, name)(*args)

    async def on_iteration_start(self, iteration: int) -> None:
        await self._fan("on_iteration_start", iteration)

    async def on_llm_start(
        self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]
    ) -> None:
        await self._fan("on_llm_start", messages, tools)

    async def on_llm_call(
        self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None
    ) -> None:
        await self._fan("on_llm_call", messages, tools)

    async def on_llm_delta(self, delta: str) -> None:
        await self._fan("on_llm_delta", delta)

    async def on_llm_end(self, message: dict[str, Any], usage: dict[str, int]) -> None:
        await self._fan("on_llm_end", message, usage)

    async def on_tool_calls(self, tool_calls: list[dict[str, Any]]) -> None:
        await self._fan("on_tool_calls", tool_calls)

    async def on_tool_start(self, name: str, arguments: dict[str, Any]) -> None:
        await self._fan("on_tool_start", name, arguments)

    async def on_tool_end(self, name: str, result: str) -> None:
        await self._fan("on_tool_end", name, result)

    async def on_tool_error(
        self, name: str, arguments: dict[str, Any], error: BaseException
    ) -> None:
        await self._fan("on_tool_error", name, arguments, error)

    async def on_tool_rejected(self, name: str, arguments: Any, reason: str) -> None:
        await self._fan("on_tool_rejected", name, arguments, reason)

    async def on_step_change(self, old_step: Any, new_step: Any) -> None:
        await self._fan("on_step_change", old_step, new_step)

    async def on_complete(self, result: Any, stopped_reason: str | None = None) -> None:
        """Fans out to both signatures; accepts a result, or 0.3.0's (response, reason)."""
        if stopped_reason is None and hasattr(result, "stopped_reason"):
            response, reason = result.content, result.stopped_reason
        else:
            from .loop import ExecutorResult

            response, reason = result, str(stopped_reason)
            result = ExecutorResult(str(response), [], [], 0, {}, reason)
        legacy = self._by_name["on_complete_030"]
        for h in self.hooks:  # in registration order, each in its own signature
            if h in legacy:
                await h.on_complete(response, reason)  # type: ignore[call-arg]
            elif "on_complete" in overridden_hooks(h):
                await h.on_complete(result)

    async def on_error(self, error: BaseException) -> None:
        await self._fan("on_error", error)
