"""Tools: schemas the model sees, validation, and the code they dispatch to."""

from .base import (
    BaseJourneyTools,
    BaseTool,
    StateChangeCallback,
    StateT,
    ToolResult,
    ToolSpec,
    stringify_result,
    tool,
)
from .executors import CallableToolExecutor, MethodToolExecutor, ToolExecutor, UnknownToolError
from .schema import (
    ArgumentError,
    ToolParameter,
    ToolSchema,
    ToolSchemaBuilder,
    schemas_to_openai_format,
)

__all__ = [
    "ArgumentError",
    "BaseJourneyTools",
    "BaseTool",
    "CallableToolExecutor",
    "MethodToolExecutor",
    "StateChangeCallback",
    "StateT",
    "ToolExecutor",
    "ToolParameter",
    "ToolResult",
    "ToolSchema",
    "ToolSchemaBuilder",
    "ToolSpec",
    "UnknownToolError",
    "schemas_to_openai_format",
    "stringify_result",
    "tool",
]
