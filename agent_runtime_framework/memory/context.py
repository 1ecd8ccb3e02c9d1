"""0.3.0's module path for ``MemoryManager`` and friends (they live in ``manager``)."""

from .manager import MemoryContext, MemoryManager, build_memory_context

__all__ = ["MemoryContext", "MemoryManager", "build_memory_context"]
