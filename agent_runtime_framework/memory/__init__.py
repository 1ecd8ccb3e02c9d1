"""Memory: journey state and conversation history, behind swappable stores."""

from .manager import (
    CommitInfo,
    MemoryContext,
    MemoryManager,
    build_memory_context,
    close_open_tool_calls,
)
from .stores import ConversationStore, InMemoryStore, JourneyBusy, MemoryStore, StateStore

__all__ = [
    "CommitInfo",
    "ConversationStore",
    "InMemoryStore",
    "JourneyBusy",
    "MemoryContext",
    "MemoryManager",
    "MemoryStore",
    "StateStore",
    "build_memory_context",
    "close_open_tool_calls",
]
