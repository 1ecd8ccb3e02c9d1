"""JourneyAgent: a step-driven agent that runs each turn through the one executor loop.

A turn: claim the conversation, load state and history, run ``LLMExecutor`` with a step
view that re-reads the prompt and tools after every tool call, commit state plus the
messages that explain it after each state-changing tool call, then commit the final
reply. A failure later in the turn therefore loses nothing already committed.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Collection, Coroutine, Sequence
from typing import Any, ClassVar, Generic, TypeVar, cast

from ..executor.hooks import CompositeHooks, ExecutorHooks
from ..executor.loop import LLMExecutor, LLMExecutorConfig, StepView, ToolCallRecord
from ..memory.manager import CommitInfo, MemoryManager, close_open_tool_calls, history_window
from ..messages import as_message
from ..state.serializer import StateSerializer
from ..tools.base import BaseJourneyTools
from ..tools.executors import ToolExecutor
from ..tools.schema import ToolSchema
from .approvals import (
    APPROVALS_KEY,
    ApprovalGate,
    ApprovalSession,
    InMemoryApprovalGate,
    PendingCall,
    approval_messages,
    run_approved,
)
from .base import BaseAgent
from .context import INPUT_STORED_KEY, AgentContext, AgentResult, JourneyConfig
from .control import CONTROL_KEY, ControlledToolExecutor, Revisions
from .people import ESCALATION_KEY, Escalation, escalation_enabled

__all__ = ["JourneyAgent", "JourneyDefaults", "JourneyToolExecutor", "new_input_messages"]

StateT = TypeVar("StateT")
ToolsT = TypeVar("ToolsT")
StepT = TypeVar("StepT")


class JourneyToolExecutor(ToolExecutor):
    """Dispatches validated calls to the agent's ``execute_tool``."""

    __slots__ = ("agent", "tools")

    def __init__(self, agent: JourneyAgent[Any, Any, Any], tools: Any) -> None:
        self.agent = agent
        self.tools = tools

    def run_tool(self, name: str, arguments: dict[str, Any]) -> Coroutine[Any, Any, Any]:
        # Hands back ``execute_tool``'s coroutine for the loop to await: one layer fewer.
        return self.agent.execute_tool(self.tools, name, arguments)


def new_input_messages(input_messages: Sequence[Any]) -> list[dict[str, Any]]:
    """The messages a run brings that are not yet history: the trailing user messages.

    Hosts such as django_agent_runtime prepend earlier messages to ``input_messages``;
    the stored history is the source of truth, so only what follows the last
    assistant/tool message is new. This is the boundary where a run's input enters:
    each message (dict, ``AgentMessage``, ``StoredMessage``) becomes a plain dict with
    its text made safe (``messages.as_message``).
    """
    new: list[dict[str, Any]] = []
    for message in reversed(input_messages):
        normalized = as_message(message)
        role = normalized["role"]
        if role == "user":
            new.append(normalized)
        elif role != "system":
            break
    new.reverse()
    return new


class JourneyDefaults(Generic[StateT, ToolsT, StepT]):
    """What a journey gets for free from ``tools_class`` and its state.

    Shared by ``JourneyAgent`` and ``DjangoRuntimeAdapter``: they differ in how a run is
    hosted (and in ``create_tools``' arguments), not in these defaults.
    """

    tools_class: type[Any] | None = None

    def get_tool_schemas(self, state: StateT) -> list[ToolSchema]:
        """Tools offered at the state's step. Default: ``tools_class``'s ``@tool`` methods."""
        if self.tools_class is None:
            return []
        return cast(list[ToolSchema], self.tools_class.tool_schemas(getattr(state, "step", None)))

    def tools_from_class(self, state: StateT, **kwargs: Any) -> Any:
        """``tools_class(state=state, **kwargs)``: the default of ``create_tools``."""
        if self.tools_class is None:
            raise NotImplementedError(
                f"{type(self).__name__} must set tools_class or override create_tools()"
            )
        return self.tools_class(state=state, **kwargs)

    async def execute_tool(self, tools: ToolsT, name: str, arguments: dict[str, Any]) -> Any:
        """Run a validated tool call. Default: call the tools method of that name."""
        method = getattr(tools, name)
        result = method(**arguments)
        if hasattr(result, "__await__"):
            result = await result
        return result

    def get_step_path(self, state: StateT) -> list[StepT]:
        """The steps this journey goes through, given what the state already says.

        Progress ("step k of n") is measured along it. Default: every member of the step
        enum in declaration order. A branching journey returns the path of its branch.
        """
        from .introspect import journey_steps

        return journey_steps(self)

    def is_terminal_state(self, state: StateT) -> bool:
        """Whether the journey is over. Default: ``state.is_terminal()``."""
        is_terminal = getattr(state, "is_terminal", None)
        # An AttributeError raised inside the user's is_terminal() must surface, not read
        # as "not terminal", hence getattr rather than try/except around the call.
        return bool(is_terminal()) if is_terminal is not None else False


class JourneyAgent(BaseAgent, JourneyDefaults[StateT, ToolsT, StepT]):
    """Base class of a journey; implement the six methods of the seed (three have defaults).

    ``tools_class`` (a ``BaseJourneyTools`` subclass with ``@tool`` methods) gives
    ``get_tool_schemas``, ``create_tools`` and ``execute_tool`` for free.
    """

    journey_config: JourneyConfig | None = None
    #: Steps whose answers the user may correct later: every tool of these steps is
    #: revisable (as ``@tool(revisable=True)``). None: only tools that say so.
    revisable_steps: ClassVar[Collection[Any] | None] = None
    #: Offer the built-in ``talk_to_a_person`` tool at every step (agents/people.py).
    #: None: ``JourneyConfig.offer_escalation``, else the host's default (off).
    offer_escalation: ClassVar[bool | None] = None

    def __init__(
        self,
        llm_client: Any = None,
        *,
        memory: MemoryManager | None = None,
        config: JourneyConfig | None = None,
        hooks: ExecutorHooks | None = None,
    ) -> None:
        self.llm_client = llm_client
        self.memory = memory if memory is not None else MemoryManager()
        self._memory_is_default = memory is None
        self.config = config or self.journey_config or JourneyConfig()
        self.hooks = hooks
        self._state_cls: type[Any] | None = None
        self._executor: LLMExecutor | None = None
        # The optional persistence hooks cost an await per commit; skip the defaults.
        self._custom_load = type(self).load_state is not JourneyAgent.load_state
        self._custom_save = type(self).save_state is not JourneyAgent.save_state
        self._revisions: Revisions | None = None
        self._revisable: bool | None = None  # whether any answer is revisable (cached)
        self._approval_gate: ApprovalGate | None = None  # in-process default (no host)

    @property
    def revisions(self) -> Revisions:
        """The corrections this journey declares (``revisable`` tools, ``revisable_steps``)."""
        if self._revisions is None:
            self._revisions = Revisions.of(self)
        return self._revisions

    # -- the seed's contract ------------------------------------------------------------
    @property
    @abstractmethod
    def key(self) -> str:
        """Unique agent identifier."""

    @abstractmethod
    def get_initial_state(self) -> StateT:
        """A fresh state for a new conversation."""

    @abstractmethod
    def get_system_prompt(self, state: StateT) -> str:
        """The system prompt of the state's current step."""

    def create_tools(self, state: StateT, ctx: AgentContext) -> ToolsT:
        """The tools instance for this run. Default: ``tools_class(state=state)``."""
        return cast(ToolsT, self.tools_from_class(state))

    async def load_state(self, ctx: AgentContext) -> StateT | None:
        """Optional: load state yourself (None: use the memory stores)."""
        return None

    async def save_state(self, ctx: AgentContext, state: StateT) -> None:
        """Optional: also persist state yourself; called after each state change."""

    # -- helpers the hosts use ------------------------------------------------------------
    @property
    def state_class(self) -> type[Any]:
        if self._state_cls is None:
            self._state_cls = type(self.get_initial_state())
        return self._state_cls

    def state_from_dict(self, data: dict[str, Any]) -> StateT:
        """Load a stored state dict (runs ``migrate`` for older versions)."""
        state_cls = self._state_cls if self._state_cls is not None else self.state_class
        state: StateT = StateSerializer.load(state_cls, data)
        return state

    def state_to_dict(self, state: StateT) -> dict[str, Any]:
        return StateSerializer.dump(state)

    def step_view(self, state: StateT) -> StepView:
        # Positional: this runs before every LLM call of a turn.
        return StepView(
            self.get_system_prompt(state),
            self.get_tool_schemas(state),
            getattr(state, "step", None),
        )

    def get_llm_client(self, ctx: AgentContext | None = None) -> Any:
        """The model for this run: the one given, else resolved from settings/env."""
        if self.llm_client is None:
            from ..llm.resolve import get_llm_client

            self.llm_client = get_llm_client()
        return self.llm_client

    def executor_config(self) -> LLMExecutorConfig:
        c = self.config
        return LLMExecutorConfig(
            max_iterations=c.max_iterations,
            max_consecutive_tool_failures=c.max_consecutive_tool_failures,
            stream=c.stream,
            llm_kwargs=dict(c.llm_kwargs),
            terminal_tools=set(c.terminal_tools),
        )

    def is_closing_message(self, message: str) -> bool:
        """Whether ``message`` closes the conversation ("thanks", "bye"; 0.3.0).

        At a terminal step such a message gets an empty reply without a model call.
        """
        text = message.lower().strip()
        return any(phrase in text for phrase in self.config.closing_phrases)

    # -- the turn --------------------------------------------------------------------------
    async def run(self, ctx: AgentContext, *, hooks: ExecutorHooks | None = None) -> AgentResult:
        """Play one turn of the conversation ``ctx.conversation_id``."""
        conversation_id = (
            ctx.conversation_id if ctx.conversation_id is not None else ctx.ensure_run_id()
        )
        key = self.key
        # The whole turn runs inside the claim (inline: a coroutine layer fewer per turn).
        async with self.memory.claim(conversation_id, key, owner=ctx.metadata.get("owner")):
            memory = self.memory
            limit = self.config.max_history_messages
            if limit is None:
                limit = memory.max_history_messages
            loaded = await memory.load_context(conversation_id, key, max_messages=limit)
            state = await self.load_state(ctx) if self._custom_load else None
            saved: dict[str, Any] | None
            if state is not None:
                saved = self.state_to_dict(state)
            elif loaded.state:  # {}: a row made when the first message was stored
                state = self.state_from_dict(loaded.state)
                saved = loaded.state
            else:
                # A new journey: nothing saved yet, so the turn's first commit writes it.
                state = self.get_initial_state()
                saved = None

            new_input = new_input_messages(ctx.input_messages)
            if new_input and ctx.metadata.get(INPUT_STORED_KEY):
                new_input = []  # already the history's last message (a queued turn)
            budget = self.config.history_token_budget
            history = (
                loaded.messages
                if limit is None and budget is None
                else history_window(loaded.messages, max_messages=limit, max_tokens=budget)
            )
            repaired = close_open_tool_calls(history)
            approvals = await self._approval_session(ctx, conversation_id)
            tools: Any = None
            if approvals is not None:
                decided = approvals.decided
                if decided:
                    # Approved or rejected since the last turn (or a crash before their
                    # outcome was committed): their outcome enters the history first.
                    tools = self.create_tools(state, ctx)
                    state, saved = await self._apply_decided(
                        conversation_id, decided, tools, state, saved, repaired, approvals.gate
                    )
                    history.extend(history_tail(decided))
                    repaired = []
            history.extend(new_input)

            if self.is_terminal_state(state) and self._closing(new_input):
                # 0.3.0: a "thank you" after the end needs no model call and no reply.
                await memory.commit(conversation_id, key, messages=repaired + new_input)
                return AgentResult(
                    "", state, new_input, step=getattr(state, "step", None), complete=True
                )

            if tools is None:
                tools = self.create_tools(state, ctx)
            control = ctx.metadata.get(CONTROL_KEY)
            escalation = self._escalation(ctx)
            revisable = self._revisable
            if revisable is None:
                revisable = self._revisable = bool(self.revisions)
            holder: _StateHolder | ControlledToolExecutor
            cancelled = ctx.cancelled
            if control is None and not revisable and escalation is None and approvals is None:
                holder = _StateHolder(self, state, tools)
            else:
                # Corrections, the router's switch tool and/or the escalation tool join
                # the step's tools.
                holder = ControlledToolExecutor(
                    self, state, tools, self.revisions, control, escalation, approvals
                )
                if control is not None or escalation is not None or approvals is not None:
                    cancelled = _until_switched(control, ctx.cancelled, escalation, approvals)
            pending: list[dict[str, Any]] = repaired + new_input
            last_committed: ToolCallRecord | None = None
            last_complete = False  # is_terminal_state at the last commit
            committed = 0  # messages of the executor's run already committed
            new_turn = True
            if pending and not memory.commits_in_process:
                # Durable before the model is called: a turn killed mid-call keeps what
                # the user said (an in-process store would lose it with the process anyway).
                await memory.commit(
                    conversation_id,
                    key,
                    messages=pending,
                    info=CommitInfo(getattr(state, "step", None), False, 0, True),
                )
                pending.clear()
                new_turn = False

            async def after_tool_call(
                record: ToolCallRecord, run_messages: list[dict[str, Any]]
            ) -> None:
                nonlocal saved, committed, new_turn, last_committed, last_complete
                current = holder.current()
                data = self.state_to_dict(current)
                if data == saved:
                    return
                complete = self.is_terminal_state(current)
                await memory.commit(
                    conversation_id,
                    key,
                    state=data,
                    messages=pending + run_messages[committed:],
                    info=CommitInfo(getattr(current, "step", None), complete, 0, new_turn),
                )
                saved = data
                last_committed = record
                last_complete = complete
                pending.clear()
                committed = len(run_messages)
                new_turn = False
                if self._custom_save:
                    await self.save_state(ctx, current)

            run_hooks = self.hooks if hooks is None else CompositeHooks(self.hooks, hooks)
            executor = self._executor
            if executor is None or executor.llm_client is not self.llm_client:
                executor = self._get_executor()  # first turn, or the client was replaced
            try:
                outcome = await executor.run_in_place(
                    history,
                    step_view=holder.step_view,
                    tool_executor=holder,
                    after_tool_call=after_tool_call,
                    cancelled=cancelled,
                    hooks=run_hooks,
                )
            except BaseException:
                # The model or a tool failed: keep what the user said (nothing is lost);
                # state and messages of completed tool calls are committed already.
                if pending:
                    await memory.commit(conversation_id, key, messages=pending)
                raise
            escalated = escalation is not None and escalation.requested is not None
            if escalated and not outcome.content.strip():
                # Handed to a person: the run ends with the host's fixed reply.
                assert escalation is not None
                outcome.content = escalation.reply
                outcome.messages.append({"role": "assistant", "content": escalation.reply})
            held = approvals.requested if approvals is not None else None
            if held is not None and not outcome.content.strip():
                # A call waits for approval: the user is asked, or told staff will decide.
                assert approvals is not None
                outcome.content = approvals.reply()
                outcome.messages.append({"role": "assistant", "content": outcome.content})
            final_state = holder.current()
            calls = outcome.tool_calls
            if saved is not None and (not calls or calls[-1] is last_committed):
                # No tool ran after the last commit, so the state cannot have changed since.
                changed = False
                complete = last_complete if calls else self.is_terminal_state(final_state)
            else:
                data = self.state_to_dict(final_state)
                changed = data != saved
                complete = self.is_terminal_state(final_state)
            step = getattr(final_state, "step", None)
            await memory.commit(
                conversation_id,
                key,
                state=data if changed else None,
                messages=pending + outcome.messages[committed:],
                info=CommitInfo(
                    step,
                    complete,
                    outcome.usage.get("total_tokens", 0),
                    new_turn=new_turn,
                    final=True,
                ),
            )
            if changed and self._custom_save:
                await self.save_state(ctx, final_state)
            if approvals is not None:
                for call in approvals.settled:  # their outcome is committed now
                    await approvals.gate.settle(call)
            # Positional (in field order): a dozen keyword arguments cost as much again.
            result = AgentResult(
                outcome.content,  # response
                final_state,  # state
                new_input + outcome.messages,  # messages
                outcome.usage,  # usage
                outcome.tool_calls,  # tool_calls
                outcome.iterations,  # iterations
                outcome.stopped_reason,  # stopped_reason
                step,  # step
                complete,  # complete
                getattr(tools, "handoff_requested", None),  # handoff
            )
            if isinstance(holder, ControlledToolExecutor) and holder.events:
                result.metadata["control_events"] = holder.events
            if escalation is not None and escalation.requested is not None:
                result.metadata["escalation"] = escalation.outcome()
            if held is not None:
                result.metadata["approval"] = {
                    "id": held.id,
                    "tool": held.tool,
                    "approver": held.approver,
                    "summary": held.summary,
                }
                result.stopped_reason = "approval_pending"
            return result

    # -- tools that need approval (agents/approvals.py) ----------------------------------
    def approval_specs(self) -> dict[str, Any]:
        """``{tool name: (spec, schema)}`` of the ``@tool(needs_approval=...)`` methods."""
        tools_class = self.tools_class
        if not (isinstance(tools_class, type) and issubclass(tools_class, BaseJourneyTools)):
            return {}
        return {
            spec.name: (spec, schema)
            for spec, schema in tools_class.declared_tools()
            if spec.needs_approval is not None
        }

    def approval_gate(self, metadata: dict[str, Any]) -> ApprovalGate:
        """The host's gate (lent in the run's metadata), else this agent's in-process one."""
        lent = metadata.get(APPROVALS_KEY)
        if isinstance(lent, ApprovalGate):
            return lent
        if self._approval_gate is None:
            self._approval_gate = InMemoryApprovalGate()
        return self._approval_gate

    async def _approval_session(
        self, ctx: AgentContext, conversation_id: Any
    ) -> ApprovalSession | None:
        specs = self.approval_specs()
        if not specs:
            return None
        session = ApprovalSession(
            self.approval_gate(ctx.metadata), conversation_id, self.key, specs
        )
        await session.load()
        return session

    async def _apply_decided(
        self,
        conversation_id: Any,
        decided: list[PendingCall],
        tools: Any,
        state: Any,
        saved: dict[str, Any] | None,
        before: list[dict[str, Any]],
        gate: ApprovalGate,
        *,
        final: bool = False,
    ) -> tuple[Any, dict[str, Any] | None]:
        """Run the approved calls, report the rejected ones, commit it all at once, settle.

        Inside the claim. The gate's markers go into the same commit, so a crash before it
        leaves the calls to apply again, and after it they are never run again.
        """
        messages = list(before)
        for call in decided:
            if call.status == "approved":
                await run_approved(self, tools, call, gate)
            messages.extend(approval_messages(call))
        current = getattr(tools, "state", state)
        data = self.state_to_dict(current)
        changed = data != saved
        await self.memory.commit(
            conversation_id,
            self.key,
            state=data if changed else None,
            messages=messages,
            info=CommitInfo(
                getattr(current, "step", None),
                self.is_terminal_state(current),
                0,
                False,
                final=final,
            ),
        )
        for call in decided:
            await gate.settle(call)
        return current, data

    async def apply_approvals(
        self, conversation_id: Any, *, metadata: dict[str, Any] | None = None
    ) -> list[PendingCall]:
        """Apply the decided calls of this journey now (no model call): run the approved
        ones once, report the rejected ones. Hosts call it after a decision; the next turn
        does it anyway. Returns the calls applied."""
        ctx = AgentContext(conversation_id=conversation_id, metadata=dict(metadata or {}))
        specs = self.approval_specs()
        if not specs:
            return []
        gate = self.approval_gate(ctx.metadata)
        key = self.key
        async with self.memory.claim(conversation_id, key, owner=ctx.metadata.get("owner")):
            decided = await gate.to_apply(conversation_id, key)
            if not decided:
                return []
            loaded = await self.memory.load_state(conversation_id, key)
            state = self.state_from_dict(loaded) if loaded else self.get_initial_state()
            tools = self.create_tools(state, ctx)
            await self._apply_decided(
                conversation_id, decided, tools, state, loaded or None, [], gate, final=True
            )
        return decided

    def _escalation(self, ctx: AgentContext) -> Escalation | None:
        """This run's escalation tool, when the journey offers it (the host's, if lent)."""
        if not escalation_enabled(self, ctx.metadata):
            return None
        lent = ctx.metadata.get(ESCALATION_KEY)
        return lent if isinstance(lent, Escalation) else Escalation()

    def _closing(self, new_input: list[dict[str, Any]]) -> bool:
        text = new_input[-1].get("content") if new_input else None
        return isinstance(text, str) and bool(text) and self.is_closing_message(text)

    def _get_executor(self) -> LLMExecutor:
        if self._executor is None or self._executor.llm_client is not self.llm_client:
            client = self.get_llm_client()
            self._executor = LLMExecutor(client, config=self.executor_config())
        return self._executor


def history_tail(decided: list[PendingCall]) -> list[dict[str, Any]]:
    """The messages the outcomes of ``decided`` add to the history (in order)."""
    return [message for call in decided for message in approval_messages(call)]


def _until_switched(
    control: Any, cancelled: Any, escalation: Any = None, approvals: Any = None
) -> Any:
    """The run's cancel check: also stop once the model switched to another journey,
    handed the conversation to a person or called a tool that waits for approval."""

    def check() -> bool:
        return (
            (control is not None and control.requested is not None)
            or (escalation is not None and escalation.requested is not None)
            or (approvals is not None and approvals.requested is not None)
            or (cancelled is not None and bool(cancelled()))
        )

    return check


class _StateHolder(JourneyToolExecutor):
    """A turn's tool executor that also tracks the live state.

    Tools may replace ``tools.state`` rather than mutate it, so the state is read from
    the tools each time.
    """

    __slots__ = ("journey_tools", "state")

    def __init__(self, agent: JourneyAgent[Any, Any, Any], state: Any, tools: Any) -> None:
        self.agent = agent
        self.tools = tools
        self.state = state
        self.journey_tools = isinstance(tools, BaseJourneyTools)

    def current(self) -> Any:
        if self.journey_tools:
            return self.tools.state
        return getattr(self.tools, "state", self.state)

    def step_view(self) -> StepView:
        """The agent's step view of the live state (the executor asks before each call)."""
        tools = self.tools
        state = tools.state if self.journey_tools else getattr(tools, "state", self.state)
        return self.agent.step_view(state)
