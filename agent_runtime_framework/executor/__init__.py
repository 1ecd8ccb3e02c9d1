"""The executor layer: the one LLM/tool loop and its hooks.

0.3.0's names are kept: ``Executor``/``ExecutorConfig`` (aliases), ``ExecutionResult``,
and the tool executors, also importable from ``executor.loop``.
"""

from .hooks import CompositeHooks, ExecutorHooks, LoggingHooks
from .loop import (
    STOP_CANCELLED,
    STOP_COMPLETED,
    STOP_EMPTY_RESPONSE,
    STOP_INVALID_TOOL_CALLS,
    STOP_MAX_ITERATIONS,
    CallableToolExecutor,
    ExecutionResult,
    Executor,
    ExecutorConfig,
    ExecutorResult,
    LLMExecutor,
    LLMExecutorConfig,
    MethodToolExecutor,
    StepView,
    ToolCallRecord,
    ToolExecutor,
)

__all__ = [
    "STOP_CANCELLED",
    "STOP_COMPLETED",
    "STOP_EMPTY_RESPONSE",
    "STOP_INVALID_TOOL_CALLS",
    "STOP_MAX_ITERATIONS",
    "CallableToolExecutor",
    "CompositeHooks",
    "ExecutionResult",
    "Executor",
    "ExecutorConfig",
    "ExecutorHooks",
    "ExecutorResult",
    "LLMExecutor",
    "LLMExecutorConfig",
    "LoggingHooks",
    "MethodToolExecutor",
    "StepView",
    "ToolCallRecord",
    "ToolExecutor",
]
