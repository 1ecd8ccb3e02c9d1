"""Tools: schemas the model sees, validation, and the code they dispatch to."""

from .base import BaseJourneyTools, StateT, ToolResult, ToolSpec, stringify_result, tool
from .executors import CallableToolExecutor, MethodToolExecutor, ToolExecutor, UnknownToolError
from .schema import ArgumentError, ToolParameter, ToolSchema, ToolSchemaBuilder

__all__ = [
    "ArgumentError",
    "BaseJourneyTools",
    "CallableToolExecutor",
    "MethodToolExecutor",
    "StateT",
    "ToolExecutor",
    "ToolParameter",
    "ToolResult",
    "ToolSchema",
    "ToolSchemaBuilder",
    "ToolSpec",
    "UnknownToolError",
    "stringify_result",
    "tool",
]
