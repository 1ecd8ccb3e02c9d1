"""MemoryManager: one place where a turn's state and messages are read and written.

``commit`` is the unit of durability: the state and the messages that explain it are
written together (atomically in the Django implementation). ``claim`` serialises turns
on one conversation so that two concurrent turns never lose an update.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from itertools import repeat
from operator import attrgetter
from typing import Any, cast

from ..messages import StoredMessage, as_messages, estimate_tokens
from ..state.serializer import StateSerializer
from .stores import (
    ConversationClaim,
    ConversationLocks,
    ConversationStore,
    InMemoryStore,
    StateStore,
)

__all__ = [
    "CommitInfo",
    "MemoryContext",
    "MemoryManager",
    "build_memory_context",
    "close_open_tool_calls",
    "estimate_tokens",
    "history_window",
]


@dataclass(slots=True)
class MemoryContext:
    """What a turn starts from: the stored state dict (or None) and the history."""

    conversation_id: Any = None
    agent_key: str = ""
    state: dict[str, Any] | None = None
    messages: list[dict[str, Any]] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def is_new(self) -> bool:
        return self.state is None and not self.messages

    def has_state(self) -> bool:
        """Whether a state was stored (0.3.0)."""
        return self.state is not None

    def get_message_dicts(self) -> list[dict[str, Any]]:
        """The history as plain dicts in 0.3.0's form (0.3.0)."""
        return [m.to_dict() if hasattr(m, "to_dict") else dict(m) for m in self.messages]


@dataclass(slots=True)
class CommitInfo:
    """Facts about a commit that stores may index (step, status, token counts)."""

    step: Any = None
    complete: bool = False
    tokens: int = 0
    new_turn: bool = False
    #: The user message that opened this turn (when the commit includes it).
    owner: Any = None
    #: The turn's last commit: a store may release the turn's claim in the same transaction.
    final: bool = False
    #: A journey status to set ("parked", "abandoned", "active"); None: derived from
    #: ``complete`` and the state, as always. Conversation control sets it.
    status: str | None = None


async def build_memory_context(
    conversation_id: Any,
    agent_key: str,
    state_store: StateStore | None = None,
    conversation_store: ConversationStore | None = None,
    message_limit: int | None = None,
) -> MemoryContext:
    """Load a ``MemoryContext`` from the stores given (0.3.0's helper; either may be None)."""
    state = await state_store.load(conversation_id, agent_key) if state_store is not None else None
    messages = (
        await conversation_store.get_messages(conversation_id, message_limit)
        if conversation_store is not None
        else []
    )
    return MemoryContext(conversation_id, agent_key, state, messages)


def history_window(
    messages: Sequence[dict[str, Any]],
    *,
    max_messages: int | None = None,
    max_tokens: int | None = None,
) -> list[dict[str, Any]]:
    """The history to send to the model: the newest messages within both bounds.

    At most ``max_messages`` messages and about ``max_tokens`` tokens (``estimate_tokens``);
    None lifts a bound. The cut starts at a user message, so no tool result is sent
    without the assistant message that asked for it. The stored history is not touched.
    """
    count = len(messages)
    start = 0
    cut = False
    if max_messages is not None and count >= max_messages:
        cut = True
        # At the limit the history may already have been cut by the store: start the
        # window at a user message either way.
        start = count - max_messages
    if max_tokens is not None and not _fits(messages, start, max_tokens):
        # ``estimate_tokens`` inlined for the common message (text only).
        budget = max_tokens * 4  # in characters
        index = count
        while index > start:
            message = messages[index - 1]
            content = message.get("content")
            if type(content) is str and not message.get("tool_calls"):
                budget -= 16 + len(content)
            else:
                budget -= estimate_tokens(message) * 4
            if budget < 0:
                cut = True
                break
            index -= 1
        start = index
    if not cut:
        return list(messages)
    while start < count and messages[start].get("role") != "user":
        start += 1
    return list(messages[start:])


_TOKENS = attrgetter("tokens")


def _fits(messages: Sequence[dict[str, Any]], start: int, max_tokens: int) -> bool:
    """Whether ``messages[start:]`` surely fits ``max_tokens``, checked at C speed.

    Runs on every turn, so it avoids a Python-level loop: the common case (a history well
    inside the budget) then costs a few microseconds at any length the store returns.
    """
    window = messages[start:] if start else messages
    if window and type(window[0]) is StoredMessage and type(window[-1]) is StoredMessage:
        try:  # sizes worked out when the store wrapped the messages
            return sum(map(_TOKENS, window)) <= max_tokens
        except AttributeError:
            pass
    get = dict.get
    text = sum(map(len, map(str, map(get, window, repeat("content")))))
    calls = sum(map(bool, map(get, window, repeat("tool_calls"))))
    return text + 16 * len(window) + 256 * calls <= max_tokens * 4


def close_open_tool_calls(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Answer tool calls left without a result at the end of a history (a crashed turn).

    Providers reject a history in which an assistant tool call has no tool result. Only
    the tail can be open, so this looks at the last messages only. The answers are
    appended to ``messages`` and returned, so the caller can store them too.
    """
    answered: set[str] = set()
    index = len(messages) - 1
    while index >= 0:
        message = messages[index]
        role = message.get("role")
        if role == "tool":
            answered.add(str(message.get("tool_call_id")))
        elif role == "assistant" and message.get("tool_calls"):
            added = [
                {
                    "role": "tool",
                    "tool_call_id": call.get("id"),
                    "content": "Error: this call was interrupted and did not run.",
                }
                for call in message["tool_calls"]
                if str(call.get("id")) not in answered
            ]
            messages.extend(added)
            return added
        else:
            return []
        index -= 1
    return []


class MemoryManager:
    """Loads and commits a journey's state and its conversation."""

    def __init__(
        self,
        state_store: StateStore | None = None,
        conversation_store: ConversationStore | None = None,
        *,
        busy_wait: float = 10.0,
        max_history_messages: int | None = 200,
    ) -> None:
        self.state_store = state_store if state_store is not None else StateStore()
        self.conversation_store = (
            conversation_store if conversation_store is not None else ConversationStore()
        )
        self.busy_wait = busy_wait
        #: Messages a turn reads at most (None: all): turn cost stays flat as history grows.
        self.max_history_messages = max_history_messages
        self._locks = ConversationLocks()

    async def load_context(
        self,
        conversation_id: Any,
        agent_key: str,
        message_limit: int | None = None,
        *,
        max_messages: int | None = None,
    ) -> MemoryContext:
        """State and history of one journey (``message_limit`` is 0.3.0's name)."""
        if max_messages is None:
            max_messages = message_limit
        states, conversations = self.state_store, self.conversation_store
        if self._in_process_defaults():
            state = cast(InMemoryStore[dict[str, Any]], states.store).get_now(
                states.key(conversation_id, agent_key)
            )
            messages = conversations.get_messages_now(conversation_id, max_messages)
        else:
            state = await states.load(conversation_id, agent_key)
            messages = await conversations.get_messages(conversation_id, max_messages)
        return MemoryContext(conversation_id, agent_key, state, messages)

    @property
    def commits_in_process(self) -> bool:
        """Whether everything this manager writes lives only in this process's memory.

        Then writing early buys no durability (a crash loses the process's memory too), so
        the agent skips storing the user's message before the model call.
        """
        return self._in_process_defaults()

    def _in_process_defaults(self) -> bool:
        """Whether the stores are exactly the in-process defaults (plain dicts), which may
        be read and written without an await each. Checked per call: stores can be swapped."""
        states = self.state_store
        return (
            type(states) is StateStore
            and type(states.store) is InMemoryStore
            and type(self.conversation_store) is ConversationStore
        )

    async def load_state(self, conversation_id: Any, agent_key: str) -> dict[str, Any] | None:
        return await self.state_store.load(conversation_id, agent_key)

    async def save_state(self, conversation_id: Any, agent_key: str, state: Any) -> None:
        """Save a state object (or an already serialized dict)."""
        await self.state_store.save(conversation_id, agent_key, _as_state_dict(state))

    async def save_messages(self, conversation_id: Any, messages: Sequence[Any]) -> None:
        """Append ``messages`` (dicts, ``AgentMessage`` or ``StoredMessage``) to the history.

        0.3.0's meaning: every message given is appended, none is dropped.
        """
        await self.conversation_store.append_messages(conversation_id, as_messages(messages))

    async def clear_conversation(self, conversation_id: Any) -> None:
        """Forget a conversation's history (0.3.0)."""
        await self.conversation_store.clear(conversation_id)

    async def delete_state(self, conversation_id: Any, agent_key: str) -> None:
        """Forget a journey's state (0.3.0)."""
        await self.state_store.delete(conversation_id, agent_key)

    async def append_messages(
        self, conversation_id: Any, messages: Sequence[dict[str, Any]]
    ) -> None:
        await self.conversation_store.append_messages(conversation_id, messages)

    async def commit(
        self,
        conversation_id: Any,
        agent_key: str,
        *,
        state: dict[str, Any] | None = None,
        messages: Sequence[dict[str, Any]] = (),
        info: CommitInfo | None = None,
    ) -> None:
        """Write a state and the messages that explain it together."""
        states, conversations = self.state_store, self.conversation_store
        if self._in_process_defaults():
            conversations.append_messages_now(conversation_id, messages)
            if state is not None:
                cast(InMemoryStore[dict[str, Any]], states.store).set_now(
                    states.key(conversation_id, agent_key), state
                )
            return
        if messages:
            await conversations.append_messages(conversation_id, messages)
        if state is not None:
            await states.save(conversation_id, agent_key, state)

    def claim(
        self, conversation_id: Any, agent_key: str, *, owner: Any = None
    ) -> AbstractAsyncContextManager[Any]:
        """Hold the conversation for one turn; raises ``JourneyBusy`` after ``busy_wait``."""
        return ConversationClaim(self._locks, conversation_id, self.busy_wait)


def _as_state_dict(state: Any) -> dict[str, Any]:
    if isinstance(state, dict):
        return state
    return StateSerializer.dump(state)
