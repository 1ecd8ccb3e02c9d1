"""DjangoRuntimeAdapter: a journey that runs as a django_agent_runtime runtime (or on the own host).

It is a thin layer over ``JourneyAgent`` (no second LLM/tool loop): every run builds an
internal ``JourneyAgent`` whose six methods delegate to the adapter, maps the host's
``RunContext`` to an ``AgentContext``, keeps the journey state per *conversation* in the
app's journey table (django_agent_runtime's checkpoints are per *run*), also checkpoints
through ``ctx.checkpoint`` after every state change, turns executor hooks into events on
``ctx.emit`` plus the app's event table, and returns a RunResult-shaped object.

Django is imported lazily, so ``import agent_runtime_framework.adapters`` works without
settings; a run needs the Django app (or a ``memory=`` given explicitly).
"""

from __future__ import annotations

import importlib
import logging
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from ..agents.context import INPUT_STORED_KEY, AgentContext, AgentResult, JourneyConfig
from ..agents.introspect import step_value
from ..agents.journey import JourneyAgent, JourneyDefaults
from ..agents.runtime_protocol import (
    RunErrorInfo,
    RunResult,
    error_info,
    journey_run_result,
    was_reported,
)
from ..executor.hooks import ExecutorHooks
from ..memory.manager import CommitInfo, MemoryManager
from ..tools.schema import ToolSchema

__all__ = [
    "CHECKPOINT_MARKER",
    "DjangoRuntimeAdapter",
    "DjangoStateStore",
    "RunErrorInfo",
    "RunResult",
    "create_django_runtime",
    "register_with_agent_runtime_core",
]

logger = logging.getLogger("agent_runtime_framework.adapters")

StateT = TypeVar("StateT")
ToolsT = TypeVar("ToolsT")
StepT = TypeVar("StepT")

#: Key that marks a checkpoint written by this adapter (and its format version).
CHECKPOINT_MARKER = "agent_runtime_framework"

_MAX_ERROR_CHARS = 2000


def register_with_agent_runtime_core() -> bool:
    """Make ``DjangoRuntimeAdapter`` a virtual subclass of agent_runtime_core's ``AgentRuntime``.

    django_agent_runtime's registry only accepts ``AgentRuntime`` instances. Does nothing
    (returns False) when agent_runtime_core is not installed.
    """
    try:
        core = importlib.import_module("agent_runtime_core")
    except ImportError:
        return False
    base = getattr(core, "AgentRuntime", None)
    if base is None:
        try:
            base = importlib.import_module("agent_runtime_core.interfaces").AgentRuntime
        except (ImportError, AttributeError):
            logger.warning("agent_runtime_core has no AgentRuntime; adapter not registered")
            return False
    if not issubclass(DjangoRuntimeAdapter, base):
        base.register(DjangoRuntimeAdapter)
    return True


@dataclass(slots=True)
class _RunAgentContext(AgentContext):
    """An ``AgentContext`` that remembers the host's ``RunContext`` and the backend client."""

    run_context: Any = None
    backend_client: Any = None


class _AdapterJourney(JourneyAgent[Any, Any, Any]):
    """The ``JourneyAgent`` a run actually plays; its methods delegate to the adapter."""

    def __init__(self, adapter: DjangoRuntimeAdapter[Any, Any, Any], llm_client: Any) -> None:
        super().__init__(
            llm_client, memory=adapter.memory, config=adapter.config, hooks=adapter.hooks
        )
        self.adapter = adapter

    @property
    def key(self) -> str:
        return self.adapter.key

    def get_initial_state(self) -> Any:
        return self.adapter.get_initial_state()

    def get_system_prompt(self, state: Any) -> str:
        return self.adapter.get_system_prompt(state)

    def get_tool_schemas(self, state: Any) -> list[ToolSchema]:
        return self.adapter.get_tool_schemas(state)

    def create_tools(self, state: Any, ctx: AgentContext) -> Any:
        run_ctx = cast(_RunAgentContext, ctx)
        return self.adapter.create_tools(state, run_ctx.run_context, run_ctx.backend_client)

    async def execute_tool(self, tools: Any, name: str, arguments: dict[str, Any]) -> Any:
        return await self.adapter.execute_tool(tools, name, arguments)

    def is_terminal_state(self, state: Any) -> bool:
        return self.adapter.is_terminal_state(state)

    def get_step_path(self, state: Any) -> list[Any]:
        return self.adapter.get_step_path(state)

    async def load_state(self, ctx: AgentContext) -> Any:
        """This run's own checkpoint, when the host resumes a run that was interrupted."""
        run_ctx = cast(_RunAgentContext, ctx).run_context
        get_state = getattr(run_ctx, "get_state", None)
        if get_state is None:
            return None
        checkpoint = await get_state()
        if not isinstance(checkpoint, dict) or not checkpoint.get(CHECKPOINT_MARKER):
            return None
        if checkpoint.get("agent_key") != self.key or checkpoint.get("conversation_id") != str(
            ctx.conversation_id
        ):
            return None
        data = checkpoint.get("state")
        if not isinstance(data, dict):
            return None
        state = self.state_from_dict(data)
        # Make the journey row agree with the checkpoint before the turn goes on.
        stored = await self.memory.load_state(ctx.conversation_id, self.key)
        if stored != data:
            await self.memory.commit(
                ctx.conversation_id,
                self.key,
                state=data,
                info=CommitInfo(
                    step=getattr(state, "step", None), complete=self.is_terminal_state(state)
                ),
            )
        return state

    async def save_state(self, ctx: AgentContext, state: Any) -> None:
        """After each committed state change: checkpoint through the host, tell the adapter."""
        run_ctx = cast(_RunAgentContext, ctx).run_context
        checkpoint = getattr(run_ctx, "checkpoint", None)
        if checkpoint is not None:
            await checkpoint(
                {
                    CHECKPOINT_MARKER: 1,
                    "agent_key": self.key,
                    "conversation_id": str(ctx.conversation_id),
                    "state": self.state_to_dict(state),
                    "step": step_value(getattr(state, "step", None)),
                    "complete": self.is_terminal_state(state),
                }
            )
        await self.adapter.on_state_change(run_ctx, state)


class DjangoRuntimeAdapter(ABC, JourneyDefaults[StateT, ToolsT, StepT]):
    """Base class of a journey runtime for django_agent_runtime and the own HTTP host.

    Implement the seed's six methods (``key``, ``get_initial_state``, ``get_system_prompt``,
    ``get_tool_schemas``, ``create_tools(state, ctx, backend_client)``, ``execute_tool``);
    optionally ``get_llm_client(ctx)``, ``get_backend_client(ctx)``,
    ``on_state_change(ctx, state)``. Register with ``register_runtime(MyAdapter())``.
    """

    journey_config: JourneyConfig | None = None

    def __init__(
        self,
        llm_client: Any = None,
        *,
        memory: MemoryManager | None = None,
        config: JourneyConfig | None = None,
        hooks: ExecutorHooks | None = None,
        backend_client: Any = None,
    ) -> None:
        self.llm_client = llm_client
        #: Handed to ``create_tools`` unless ``get_backend_client`` is overridden.
        self.backend_client = backend_client
        self._memory = memory
        self.config = config or self.journey_config or JourneyConfig()
        self.hooks = hooks
        self._cancelled_runs: set[str] = set()

    # -- the seed's contract ------------------------------------------------------------
    @property
    @abstractmethod
    def key(self) -> str:
        """Unique runtime identifier (the registry key)."""

    @abstractmethod
    def get_initial_state(self) -> StateT:
        """A fresh state for a new conversation."""

    @abstractmethod
    def get_system_prompt(self, state: StateT) -> str:
        """The system prompt of the state's current step."""

    def create_tools(self, state: StateT, ctx: Any, backend_client: Any) -> ToolsT:
        """The tools for this run. Default: ``tools_class(state=state, backend_client=...)``."""
        return cast(ToolsT, self.tools_from_class(state, backend_client=backend_client))

    # -- optional hooks -------------------------------------------------------------------
    def get_llm_client(self, ctx: Any = None) -> Any:
        """The model for a run: the one given to ``__init__``, else from settings/env."""
        if self.llm_client is None:
            from ..llm.resolve import get_llm_client

            self.llm_client = get_llm_client()
        return self.llm_client

    def get_backend_client(self, ctx: Any) -> Any:
        """An object handed to ``create_tools`` (an API client, a service).

        Default: the ``backend_client`` given to the constructor (None if none was)."""
        return self.backend_client

    async def on_state_change(self, ctx: Any, state: StateT) -> None:
        """Called after every committed state change (already checkpointed)."""

    # -- stores ---------------------------------------------------------------------------
    @property
    def memory(self) -> MemoryManager:
        """The journey table's ``DjangoMemoryManager`` (created on first use)."""
        if self._memory is None:
            from ..django.store.orm import DjangoMemoryManager

            self._memory = DjangoMemoryManager()
        return self._memory

    @memory.setter
    def memory(self, value: MemoryManager) -> None:
        self._memory = value

    def journey_agent(self, ctx: Any = None) -> JourneyAgent[Any, Any, Any]:
        """The internal ``JourneyAgent`` for one run (its methods delegate here)."""
        return _AdapterJourney(self, self.get_llm_client(ctx))

    # -- the runtime protocol -------------------------------------------------------------
    async def run(self, ctx: Any) -> RunResult:
        """Play one turn of ``ctx.conversation_id`` and return a RunResult.

        A failure is recorded as an ``error`` event (table + ``ctx.emit``) and re-raised,
        so the host marks the run failed; ``on_error`` then describes it.
        """
        run_id = getattr(ctx, "run_id", None) or uuid.uuid4()
        conversation_id = getattr(ctx, "conversation_id", None) or run_id
        metadata = dict(getattr(ctx, "metadata", None) or {})
        if metadata.get("owner") is None and metadata.get("user_id") is not None:
            # django_agent_runtime's REST view puts the requesting user's id here: the
            # conversation belongs to that user in this app's API and admin too.
            metadata["owner"] = metadata["user_id"]
        agent = self.journey_agent(ctx)
        agent_ctx = _RunAgentContext(
            run_id=run_id,
            conversation_id=conversation_id,
            input_messages=list(getattr(ctx, "input_messages", None) or ()),
            metadata=metadata,
            cancelled=self._cancel_check(ctx, run_id),
            run_context=ctx,
            backend_client=self.get_backend_client(ctx),
        )
        from ..django.host.journey_runtime import event_log_of, play_journey

        try:
            log = await event_log_of(ctx, conversation_id, run_id, self.key)
            if log is not getattr(ctx, "event_log", None) and log.next_seq:
                # django_agent_runtime retries a run that already got going (its events
                # are stored): the run's input is in the history, it is not stored twice.
                agent_ctx.metadata[INPUT_STORED_KEY] = True
            result = await play_journey(agent, agent_ctx, log, describes=self)
        finally:
            self._cancelled_runs.discard(str(run_id))
        return self.to_run_result(result, conversation_id)

    async def on_error(self, ctx: Any, error: BaseException) -> RunErrorInfo:
        """Describe a failed run: the real error type and message, and whether to retry.

        ``run`` already recorded the ``error`` event (table + ``ctx.emit``) for failures
        it saw; for any other error this emits one through ``ctx.emit``.
        """
        info = self.error_info(error)
        emit = getattr(ctx, "emit", None)
        if emit is not None and not was_reported(error):
            try:
                await emit(
                    "error",
                    {"type": info.type, "message": info.message, "retriable": info.retriable},
                )
            except Exception:  # the report must not mask the original error
                logger.exception("could not emit the error event of run %s", ctx.run_id)
        return info

    async def cancel(self, ctx: Any) -> None:
        """Ask a running run to stop; it ends cleanly before its next LLM call."""
        self._cancelled_runs.add(str(getattr(ctx, "run_id", "")))

    # -- helpers --------------------------------------------------------------------------
    #: ``RunErrorInfo`` for an exception (``LLMError.retryable`` sets ``retriable``).
    error_info = staticmethod(error_info)
    #: Makes the class an agent_runtime_core ``AgentRuntime`` (called by ``register_runtime``
    #: before it hands the runtime to django_agent_runtime's registry).
    register_with_agent_runtime_core = staticmethod(register_with_agent_runtime_core)

    def to_run_result(self, result: AgentResult, conversation_id: Any) -> RunResult:
        return journey_run_result(result, self.key, conversation_id)

    def _cancel_check(self, ctx: Any, run_id: Any) -> Callable[[], bool]:
        host_cancelled = getattr(ctx, "cancelled", None)
        key = str(run_id)

        def cancelled() -> bool:
            if key in self._cancelled_runs:
                return True
            return bool(host_cancelled()) if callable(host_cancelled) else False

        return cancelled


register_with_agent_runtime_core()


class DjangoStateStore:
    """A state dict kept in django_agent_runtime's run checkpoints (0.3.0).

    ``load()`` reads ``ctx.get_state()``, ``save(state)`` calls ``ctx.checkpoint(state)``.
    That state is scoped to one run; ``DjangoRuntimeAdapter`` itself keeps journey state
    per conversation in this app's tables and does not need this class.
    """

    def __init__(self, ctx: Any, agent_key: str) -> None:
        self._ctx = ctx
        self._agent_key = agent_key
        self._cached: dict[str, Any] | None = None

    async def load(self) -> dict[str, Any] | None:
        if self._cached is None:
            self._cached = await self._ctx.get_state() or None
        return self._cached

    async def save(self, state: dict[str, Any]) -> None:
        self._cached = state
        await self._ctx.checkpoint(state)


AdapterT = TypeVar("AdapterT", bound=DjangoRuntimeAdapter[Any, Any, Any])


def create_django_runtime(
    agent_class: type[AdapterT],
    llm_client: Any = None,
    backend_client: Any = None,
    **kwargs: Any,
) -> AdapterT:
    """``agent_class(llm_client=..., backend_client=..., **kwargs)`` (0.3.0's factory)."""
    return agent_class(llm_client=llm_client, backend_client=backend_client, **kwargs)
