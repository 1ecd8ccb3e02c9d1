"""Tool executors: how a validated tool call reaches code.

The executor loop validates names and arguments first, then calls ``run_tool``, which
raises (the loop decides what a failure means). ``execute`` is 0.3.0's entry point for
calling an executor directly: an unknown tool, or a raising tool in production mode,
gives an error string instead of an exception.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

from ..config import should_swallow_exceptions

__all__ = [
    "CallableToolExecutor",
    "MethodToolExecutor",
    "ToolExecutor",
    "UnknownToolError",
    "tool_runner",
]


class UnknownToolError(LookupError):
    """The executor has no code for this tool name."""


class ToolExecutor:
    """Runs a tool by name with already validated keyword arguments.

    Subclasses implement ``run_tool`` (and ``has_tool``). A subclass written for 0.3.0
    that implements ``execute`` instead works too: the loop calls whichever is defined.
    """

    async def run_tool(self, name: str, arguments: dict[str, Any]) -> Any:
        """Run the tool; raise ``UnknownToolError`` for a name it has no code for."""
        raise NotImplementedError(f"{type(self).__name__} must implement run_tool()")

    async def execute(self, name: str, arguments: dict[str, Any]) -> Any:
        """Run a tool as 0.3.0 did: failures come back as text (debug mode re-raises)."""
        if not self.has_tool(name):
            return f"Unknown tool: {name}"
        try:
            return await self.run_tool(name, arguments)
        except Exception as exc:
            if not should_swallow_exceptions():
                raise
            return f"Error executing {name}: {exc}"

    def has_tool(self, name: str) -> bool:
        """Whether ``execute`` knows ``name`` (True when it cannot tell)."""
        return True


async def _call(fn: Callable[..., Any], arguments: Mapping[str, Any]) -> Any:
    result = fn(**arguments)
    if inspect.isawaitable(result):
        result = await result
    return result


class MethodToolExecutor(ToolExecutor):
    """Calls the method of ``tools`` named like the tool (sync or async)."""

    def __init__(self, tools: Any) -> None:
        self.tools = tools

    def _method(self, name: str) -> Callable[..., Any] | None:
        if name.startswith("_"):
            return None
        method = getattr(self.tools, name, None)
        return method if callable(method) else None

    def has_tool(self, name: str) -> bool:
        return self._method(name) is not None

    async def run_tool(self, name: str, arguments: dict[str, Any]) -> Any:
        method = self._method(name)
        if method is None:
            raise UnknownToolError(f"{type(self.tools).__name__} has no tool method {name!r}")
        return await _call(method, arguments)


class CallableToolExecutor(ToolExecutor):
    """Calls functions from a ``{name: fn}`` mapping (sync or async)."""

    def __init__(self, functions: Mapping[str, Callable[..., Any]]) -> None:
        self.functions = dict(functions)

    def has_tool(self, name: str) -> bool:
        return name in self.functions

    async def run_tool(self, name: str, arguments: dict[str, Any]) -> Any:
        fn = self.functions.get(name)
        if fn is None:
            raise UnknownToolError(f"No function registered for tool {name!r}")
        return await _call(fn, arguments)


def tool_runner(executor: Any) -> Callable[[str, dict[str, Any]], Any]:
    """The callable the loop uses: ``run_tool`` where a class defines it, else ``execute``."""
    run_tool = getattr(type(executor), "run_tool", None)
    if run_tool is not None and run_tool is not ToolExecutor.run_tool:
        return executor.run_tool
    return executor.execute
