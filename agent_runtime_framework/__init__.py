"""agent_runtime_framework: journey-based conversational agents with LLMs.

The core (everything but ``agent_runtime_framework.django``) imports without Django
configured. See README.md for the concepts and the layers.
"""

from .agents import (
    AgentContext,
    AgentMessage,
    AgentResult,
    JourneyAgent,
    JourneyConfig,
    JourneyNotParked,
    RoutedJourneyAgent,
    StepGroup,
)
from .config import (
    FrameworkConfig,
    configure,
    get_config,
    is_debug,
    reset_config,
    set_config,
    should_swallow_exceptions,
)
from .executor import (
    CompositeHooks,
    Executor,
    ExecutorConfig,
    ExecutorHooks,
    ExecutorResult,
    LLMExecutor,
    LLMExecutorConfig,
    LoggingHooks,
    StepView,
    ToolCallRecord,
)
from .llm.base import LLMClient, LLMError, LLMResponse
from .memory import (
    CommitInfo,
    ConversationStore,
    InMemoryStore,
    JourneyBusy,
    MemoryContext,
    MemoryManager,
    MemoryStore,
    StateStore,
    build_memory_context,
)
from .prompts import PromptManager, PromptTemplate, StepPromptMapping
from .router import IntentDetector, IntentRouter, RouteDefinition
from .state import BaseJourneyState, BaseState, StateError, StateSerializer
from .tools import (
    ArgumentError,
    BaseJourneyTools,
    CallableToolExecutor,
    MethodToolExecutor,
    ToolExecutor,
    ToolParameter,
    ToolResult,
    ToolSchema,
    ToolSchemaBuilder,
    tool,
)

__version__ = "0.4.0"

__all__ = [
    "AgentContext",
    "AgentMessage",
    "AgentResult",
    "ArgumentError",
    "BaseJourneyState",
    "BaseJourneyTools",
    "BaseState",
    "CallableToolExecutor",
    "CommitInfo",
    "CompositeHooks",
    "ConversationStore",
    "Executor",
    "ExecutorConfig",
    "ExecutorHooks",
    "ExecutorResult",
    "FrameworkConfig",
    "InMemoryStore",
    "IntentDetector",
    "IntentRouter",
    "JourneyAgent",
    "JourneyBusy",
    "JourneyConfig",
    "JourneyNotParked",
    "LLMClient",
    "LLMError",
    "LLMExecutor",
    "LLMExecutorConfig",
    "LLMResponse",
    "LoggingHooks",
    "MemoryContext",
    "MemoryManager",
    "MemoryStore",
    "MethodToolExecutor",
    "PromptManager",
    "PromptTemplate",
    "RouteDefinition",
    "RoutedJourneyAgent",
    "StateError",
    "StateSerializer",
    "StateStore",
    "StepGroup",
    "StepPromptMapping",
    "StepView",
    "ToolCallRecord",
    "ToolExecutor",
    "ToolParameter",
    "ToolResult",
    "ToolSchema",
    "ToolSchemaBuilder",
    "__version__",
    "build_memory_context",
    "configure",
    "get_config",
    "is_debug",
    "reset_config",
    "set_config",
    "should_swallow_exceptions",
    "tool",
]
