"""0.3.0's module path for the stores and ``StoredMessage`` (they live in ``stores``)."""

from .stores import (
    ConversationStore,
    InMemoryStore,
    MemoryStore,
    StateStore,
    StoredMessage,
)

__all__ = ["ConversationStore", "InMemoryStore", "MemoryStore", "StateStore", "StoredMessage"]
