"""The executor layer: the one LLM/tool loop and its hooks."""

from .hooks import CompositeHooks, ExecutorHooks, LoggingHooks
from .loop import (
    STOP_CANCELLED,
    STOP_COMPLETED,
    STOP_EMPTY_RESPONSE,
    STOP_INVALID_TOOL_CALLS,
    STOP_MAX_ITERATIONS,
    Executor,
    ExecutorConfig,
    ExecutorResult,
    LLMExecutor,
    LLMExecutorConfig,
    StepView,
    ToolCallRecord,
)

__all__ = [
    "STOP_CANCELLED",
    "STOP_COMPLETED",
    "STOP_EMPTY_RESPONSE",
    "STOP_INVALID_TOOL_CALLS",
    "STOP_MAX_ITERATIONS",
    "CompositeHooks",
    "Executor",
    "ExecutorConfig",
    "ExecutorHooks",
    "ExecutorResult",
    "LLMExecutor",
    "LLMExecutorConfig",
    "LoggingHooks",
    "StepView",
    "ToolCallRecord",
]
