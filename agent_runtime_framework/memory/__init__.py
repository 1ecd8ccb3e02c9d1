"""Memory: journey state and conversation history, behind swappable stores.

``memory.store`` and ``memory.context`` are 0.3.0's module paths; they re-export from
``stores`` and ``manager``.
"""

from .manager import (
    CommitInfo,
    MemoryContext,
    MemoryManager,
    build_memory_context,
    close_open_tool_calls,
    history_window,
)
from .stores import (
    ConversationStore,
    InMemoryStore,
    JourneyBusy,
    MemoryStore,
    StateStore,
    StoredMessage,
)

__all__ = [
    "CommitInfo",
    "ConversationStore",
    "InMemoryStore",
    "JourneyBusy",
    "MemoryContext",
    "MemoryManager",
    "MemoryStore",
    "StateStore",
    "StoredMessage",
    "build_memory_context",
    "close_open_tool_calls",
    "history_window",
]
