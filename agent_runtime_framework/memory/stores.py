"""Storage interfaces and their in-process implementations.

History is append-only: ``ConversationStore.append_messages`` costs O(new messages), and no
store rewrites a conversation's history. The Django app provides ORM implementations of
``StateStore`` and ``ConversationStore`` with the same interface.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Sequence
from typing import Any, Generic, TypeVar

from ..messages import StoredMessage, as_message, as_messages

__all__ = [
    "ConversationStore",
    "InMemoryStore",
    "JourneyBusy",
    "MemoryStore",
    "StateStore",
    "StoredMessage",
]

T = TypeVar("T")


class JourneyBusy(Exception):
    """Another turn holds this conversation; retry after ``retry_after`` seconds."""

    def __init__(self, conversation_id: Any, retry_after: float = 1.0) -> None:
        super().__init__(f"Conversation {conversation_id} is busy with another turn; retry shortly")
        self.conversation_id = conversation_id
        self.retry_after = retry_after


class MemoryStore(ABC, Generic[T]):
    """Async key-value persistence."""

    @abstractmethod
    async def get(self, key: str) -> T | None: ...

    @abstractmethod
    async def set(self, key: str, value: T) -> None: ...

    @abstractmethod
    async def delete(self, key: str) -> None: ...

    async def exists(self, key: str) -> bool:
        """Whether ``key`` holds a value (0.3.0 made this optional; so do we)."""
        return await self.get(key) is not None


class InMemoryStore(MemoryStore[T]):
    """A dict in this process: for tests and single-process demos."""

    def __init__(self) -> None:
        self._data: dict[str, T] = {}

    async def get(self, key: str) -> T | None:
        return self._data.get(key)

    async def set(self, key: str, value: T) -> None:
        self._data[key] = value

    # Synchronous access: ``StateStore`` and ``MemoryManager`` use these when the store
    # is exactly this class, saving an await per state read or write.
    def get_now(self, key: str) -> T | None:
        return self._data.get(key)

    def set_now(self, key: str, value: T) -> None:
        self._data[key] = value

    async def delete(self, key: str) -> None:
        self._data.pop(key, None)

    async def exists(self, key: str) -> bool:
        return key in self._data

    def __len__(self) -> int:
        return len(self._data)

    def clear(self) -> None:
        """Forget everything (0.3.0)."""
        self._data.clear()


class StateStore:
    """Journey state dicts per (conversation, agent key), kept in a ``MemoryStore``.

    ``load``/``save``/``delete`` are the names the framework uses; 0.3.0's
    ``load_state``/``save_state``/``delete_state`` and its key-value ``get``/``set`` are
    the same operations under their old names.
    """

    def __init__(
        self,
        store: MemoryStore[dict[str, Any]] | None = None,
        *,
        backend: MemoryStore[dict[str, Any]] | None = None,
    ) -> None:
        self.store: MemoryStore[dict[str, Any]] = store or backend or InMemoryStore()

    @staticmethod
    def key(conversation_id: Any, agent_key: str) -> str:
        return f"state:{agent_key}:{conversation_id}"

    async def load(self, conversation_id: Any, agent_key: str) -> dict[str, Any] | None:
        store = self.store
        if type(store) is InMemoryStore:  # exactly the default: no await needed
            return store.get_now(self.key(conversation_id, agent_key))
        return await store.get(self.key(conversation_id, agent_key))

    async def save(self, conversation_id: Any, agent_key: str, state: dict[str, Any]) -> None:
        store = self.store
        if type(store) is InMemoryStore:
            store.set_now(self.key(conversation_id, agent_key), state)
        else:
            await store.set(self.key(conversation_id, agent_key), state)

    async def delete(self, conversation_id: Any, agent_key: str) -> None:
        await self.store.delete(self.key(conversation_id, agent_key))

    # -- 0.3.0's names ---------------------------------------------------------------
    async def save_state(self, conversation_id: Any, agent_key: str, state: dict[str, Any]) -> None:
        await self.save(conversation_id, agent_key, state)

    async def load_state(self, conversation_id: Any, agent_key: str) -> dict[str, Any] | None:
        return await self.load(conversation_id, agent_key)

    async def delete_state(self, conversation_id: Any, agent_key: str) -> None:
        await self.delete(conversation_id, agent_key)

    async def get(self, key: str) -> dict[str, Any] | None:
        return await self.store.get(key)

    async def set(self, key: str, value: dict[str, Any]) -> None:
        await self.store.set(key, value)


class ConversationStore:
    """A conversation's messages, append-only, in this process.

    Messages come back as ``StoredMessage`` (a dict that also has 0.3.0's attributes).
    0.3.0's ``add_message``/``add_messages``/``clear_conversation`` are kept.
    """

    def __init__(self) -> None:
        self._messages: dict[str, list[dict[str, Any]]] = {}

    async def get_messages(
        self, conversation_id: Any, limit: int | None = None
    ) -> list[dict[str, Any]]:
        """The history in order (the last ``limit`` messages when given)."""
        return self.get_messages_now(conversation_id, limit)

    async def append_messages(
        self, conversation_id: Any, messages: Sequence[dict[str, Any]]
    ) -> None:
        """Add messages at the end; O(len(messages))."""
        self.append_messages_now(conversation_id, messages)

    # Synchronous forms of the two above: this store is a dict in this process, and
    # ``MemoryManager`` calls these directly (no await) when it uses this exact class.
    def get_messages_now(
        self, conversation_id: Any, limit: int | None = None
    ) -> list[dict[str, Any]]:
        stored = self._messages.get(str(conversation_id))
        if not stored:
            return []
        return stored[-limit:] if limit else list(stored)

    def append_messages_now(self, conversation_id: Any, messages: Sequence[dict[str, Any]]) -> None:
        if messages:
            self._messages.setdefault(str(conversation_id), []).extend(
                map(StoredMessage.of, messages)
            )

    async def count(self, conversation_id: Any) -> int:
        return len(self._messages.get(str(conversation_id), ()))

    async def save_messages(self, conversation_id: Any, messages: Sequence[Any]) -> None:
        """Append ``messages`` to the history (0.3.0's meaning). Nothing is dropped."""
        await self.append_messages(conversation_id, as_messages(messages))

    async def add_message(self, conversation_id: Any, message: Any) -> None:
        """Append one message (0.3.0)."""
        await self.append_messages(conversation_id, [as_message(message)])

    async def add_messages(self, conversation_id: Any, messages: Sequence[Any]) -> None:
        """Append messages (0.3.0)."""
        await self.append_messages(conversation_id, as_messages(messages))

    async def clear(self, conversation_id: Any) -> None:
        self._messages.pop(str(conversation_id), None)

    async def clear_conversation(self, conversation_id: Any) -> None:
        """0.3.0's name of ``clear``."""
        await self.clear(conversation_id)


class ConversationLocks:
    """Per-conversation turn claims for one process (FIFO waiters with a wait bound).

    Claims are re-entrant within one asyncio task, so a router can hold the conversation
    while the journey it delegates to claims it again. An uncontended claim costs a dict
    entry and no lock object: waiters (futures) exist only while another turn waits.
    """

    def __init__(self) -> None:
        #: The held conversations, by ``str(conversation_id)``.
        self.held: dict[str, _Held] = {}

    def claim(self, conversation_id: Any, wait: float) -> ConversationClaim:
        return ConversationClaim(self, conversation_id, wait)


class _Held:
    """A held conversation: the owning task, its re-entry depth and the queued waiters.

    No ``__init__``: the claim that takes the conversation sets the fields (a Python
    call fewer on every turn).
    """

    __slots__ = ("depth", "owner", "waiters")

    owner: asyncio.Task[Any] | None
    depth: int
    #: Made on first contention.
    waiters: deque[tuple[asyncio.Task[Any] | None, asyncio.Future[None]]] | None


class ConversationClaim:
    """Async context manager holding one conversation of ``locks`` (a class: it is on the
    hot path; ``MemoryManager`` makes it directly rather than through ``locks.claim``).

    ``locks.held`` has an entry exactly while some task holds the conversation.
    Releasing hands the claim straight to the first waiter still waiting (FIFO, nobody
    can barge in between), or removes the entry when nobody waits.
    """

    __slots__ = ("conversation_id", "held", "key", "table", "wait")

    def __init__(self, locks: ConversationLocks, conversation_id: Any, wait: float) -> None:
        self.table = locks.held
        self.conversation_id = conversation_id
        self.key = str(conversation_id)
        self.wait = wait
        self.held: _Held | None = None

    async def __aenter__(self) -> None:
        task = asyncio.current_task()
        held = self.table.get(self.key)
        if held is None:  # free: take it
            held = self.held = self.table[self.key] = _Held()
            held.owner = task
            held.depth = 1
            held.waiters = None
            return
        if held.owner is task and task is not None:
            held.depth += 1
            self.held = held
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if held.waiters is None:
            held.waiters = deque()
        held.waiters.append((task, future))
        try:
            await asyncio.wait_for(future, timeout=max(self.wait, 0.0))
        except BaseException as exc:
            if future.done() and not future.cancelled():
                # The claim was handed over just as the wait ended: pass it on.
                _release(self.table, self.key, held)
            if isinstance(exc, TimeoutError):
                raise JourneyBusy(self.conversation_id, retry_after=max(1.0, self.wait)) from None
            raise
        # ``_release`` made this task the owner before waking it.
        self.held = held

    async def __aexit__(self, *exc: object) -> None:
        held = self.held
        assert held is not None
        held.depth -= 1
        if held.depth:
            return
        if held.waiters:
            _release(self.table, self.key, held)
        else:  # nobody waits: the conversation is free
            held.owner = None
            del self.table[self.key]


def _release(table: dict[str, _Held], key: str, held: _Held) -> None:
    """Hand ``held`` to its first waiter still waiting, or free the conversation."""
    waiters = held.waiters
    while waiters:
        task, future = waiters.popleft()
        if not future.done():
            held.owner = task
            held.depth = 1
            future.set_result(None)
            return
    held.owner = None
    if table.get(key) is held:
        del table[key]
