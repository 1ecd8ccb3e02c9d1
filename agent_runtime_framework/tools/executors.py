"""Tool executors: how a validated tool call reaches code.

The executor loop validates names and arguments first; these only dispatch.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["CallableToolExecutor", "MethodToolExecutor", "ToolExecutor", "UnknownToolError"]


class UnknownToolError(LookupError):
    """The executor has no code for this tool name."""


class ToolExecutor:
    """Runs a tool by name with already validated keyword arguments."""

    async def execute(self, name: str, arguments: dict[str, Any]) -> Any:
        raise NotImplementedError

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

    async def execute(self, name: str, arguments: dict[str, Any]) -> Any:
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

    async def execute(self, name: str, arguments: dict[str, Any]) -> Any:
        fn = self.functions.get(name)
        if fn is None:
            raise UnknownToolError(f"No function registered for tool {name!r}")
        return await _call(fn, arguments)
