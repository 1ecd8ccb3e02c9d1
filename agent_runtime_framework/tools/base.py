"""Journey tools: methods that read and change the journey state.

Mark methods with ``@tool`` (optionally ``steps=[...]``) and their schemas are derived
from the signature and docstring, so an agent need not write ``get_tool_schemas`` by hand.
A tool without ``steps`` is offered at every step (a global tool, e.g. a policy FAQ);
``revisable=True`` lets the user correct its answer later (see ``agents/control.py``).
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar, overload

from .schema import ToolSchema

__all__ = [
    "BaseJourneyTools",
    "BaseTool",
    "StateChangeCallback",
    "StateT",
    "ToolResult",
    "ToolSpec",
    "tool",
]

StateT = TypeVar("StateT")
#: What ``on_state_change`` may be: called with the state, sync or async (0.3.0's name).
StateChangeCallback = Callable[[Any], Any]
F = TypeVar("F", bound=Callable[..., Any])

_SPEC_ATTR = "__agent_tool_spec__"


class BaseTool:
    """Base of stateless tools (0.3.0): plain methods, run with ``MethodToolExecutor``.

    Stateful journey tools derive from ``BaseJourneyTools`` instead.
    """


@dataclass(slots=True)
class ToolResult:
    """A tool's answer: text for the model plus optional structured data for the host.

    ``data`` is structured data for the host; ``metadata`` is 0.3.0's free-form
    execution details (what ``ok(...)``/``fail(...)`` collect from keyword arguments).
    """

    content: str
    success: bool = True
    data: Any = None
    error: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return self.content

    @classmethod
    def ok(cls, content: str, **metadata: Any) -> ToolResult:
        """A successful result; keyword arguments become ``metadata`` (0.3.0)."""
        return cls(content=content, success=True, metadata=metadata)

    @classmethod
    def fail(
        cls,
        message: str | None = None,
        data: Any = None,
        *,
        error: str | None = None,
        **metadata: Any,
    ) -> ToolResult:
        """A refused input (e.g. an age out of range): the model is asked to retry.

        ``fail(message, data=None)``; 0.3.0's ``fail(error, **metadata)`` works too: the
        text may be given as ``error=``, and other keyword arguments become ``metadata``
        (``data`` stays the structured-data field, not a metadata key).
        """
        if message is None:
            if error is None:
                raise TypeError("ToolResult.fail() needs the error message")
            message = error
        elif error is not None:
            raise TypeError("ToolResult.fail() got both message and error")
        return cls(content=message, success=False, data=data, error=message, metadata=metadata)


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """What ``@tool`` records on a method."""

    name: str
    description: str | None
    steps: frozenset[Any] | None = field(default=None)
    #: The answer this tool collects may be corrected from a later step.
    revisable: bool = False
    #: State fields a *changed* answer makes invalid: they are reset and the journey
    #: continues from the corrected step instead of returning to where it was.
    invalidates: frozenset[str] = field(default_factory=frozenset)
    #: Who must approve a call before it runs: "user", "staff" or None (agents/approvals.py).
    needs_approval: str | None = None
    #: ``(tools, arguments) -> bool``: approval is needed only when true (e.g. an amount).
    approval_if: Callable[[Any, dict[str, Any]], bool] | None = None
    #: ``(arguments) -> str``: the summary the approver reads (default: doc line + args).
    approval_summary: Callable[[dict[str, Any]], str] | None = None


@overload
def tool(fn: F) -> F: ...
@overload
def tool(
    *,
    name: str | None = None,
    description: str | None = None,
    steps: Iterable[Any] | None = None,
    revisable: bool = False,
    invalidates: Iterable[str] = (),
    needs_approval: str | None = None,
    approval_if: Callable[[Any, dict[str, Any]], bool] | None = None,
    approval_summary: Callable[[dict[str, Any]], str] | None = None,
) -> Callable[[F], F]: ...
def tool(
    fn: Any = None,
    *,
    name: str | None = None,
    description: str | None = None,
    steps: Iterable[Any] | None = None,
    revisable: bool = False,
    invalidates: Iterable[str] = (),
    needs_approval: str | None = None,
    approval_if: Callable[[Any, dict[str, Any]], bool] | None = None,
    approval_summary: Callable[[dict[str, Any]], str] | None = None,
) -> Any:
    """Mark a tools method as a tool; ``steps`` limits the steps where it is offered.

    ``revisable=True``: once the journey has passed the tool's step, the tool stays on
    offer as a correction of that answer; ``invalidates`` names the state fields a changed
    answer makes stale (they are reset, and the journey goes on from the corrected step).
    ``needs_approval="user"|"staff"``: a call is held until that person approves it
    (``approval_if(tools, arguments)`` limits it to some calls; see agents/approvals.py).
    """
    if isinstance(invalidates, str):
        raise TypeError("invalidates takes field names, e.g. invalidates=['start_date']")
    if needs_approval not in (None, "user", "staff"):
        raise TypeError(f"needs_approval must be 'user', 'staff' or None, not {needs_approval!r}")

    def mark(f: F) -> F:
        if revisable and steps is None:
            raise TypeError(
                f"@tool {f.__name__}: revisable=True needs steps=[...] (the steps whose "
                "answer it collects); a tool offered everywhere has nothing to correct"
            )
        setattr(
            f,
            _SPEC_ATTR,
            ToolSpec(
                name=name or f.__name__,
                description=description,
                steps=frozenset(steps) if steps is not None else None,
                revisable=revisable,
                invalidates=frozenset(invalidates),
                needs_approval=needs_approval,
                approval_if=approval_if,
                approval_summary=approval_summary,
            ),
        )
        return f

    return mark(fn) if fn is not None else mark


class BaseJourneyTools(Generic[StateT]):
    """Base for a journey's tools; ``state`` is the live state the tools change."""

    _schema_cache: dict[type, list[tuple[ToolSpec, ToolSchema]]]
    #: The step whose answer is being corrected while a revisable tool runs as a
    #: correction (None otherwise): a tool that appends (a driver) can replace instead.
    revising: Any = None

    def __init__(
        self,
        state: StateT,
        backend_client: Any = None,
        on_state_change: Callable[[StateT], Any] | None = None,
    ) -> None:
        self.state = state
        self.backend_client = backend_client
        self.on_state_change = on_state_change
        self.handoff_requested: str | None = None

    async def _notify_state_change(self) -> None:
        """Tell the owner that the state changed (the agent also detects it itself)."""
        if self.on_state_change is not None:
            outcome = self.on_state_change(self.state)
            if inspect.isawaitable(outcome):
                await outcome

    def _require_backend(self) -> Any:
        """The ``backend_client``; ``ValueError`` when the tools were given none (0.3.0).

        For tools that cannot work without the backend.
        """
        if self.backend_client is None:
            raise ValueError(
                f"{type(self).__name__} requires a backend_client but none was provided"
            )
        return self.backend_client

    def request_handoff(self, reason: str = "") -> None:
        """Hand the user back to the intent router after this turn."""
        self.handoff_requested = reason or "handoff requested"

    # -- schemas from @tool methods ----------------------------------------------------
    @classmethod
    def declared_tools(cls) -> list[tuple[ToolSpec, ToolSchema]]:
        """Every ``@tool`` method of the class with its derived schema (cached)."""
        cache = cls.__dict__.get("_tool_declarations")
        if cache is None:
            found: list[tuple[ToolSpec, ToolSchema]] = []
            seen: set[str] = set()
            for klass in cls.__mro__:
                for attr, value in vars(klass).items():
                    spec = getattr(value, _SPEC_ATTR, None)
                    if spec is None or attr in seen:
                        continue
                    seen.add(attr)
                    found.append(
                        (
                            spec,
                            ToolSchema.from_function(
                                value, name=spec.name, description=spec.description
                            ),
                        )
                    )
            cache = found
            cls._tool_declarations = cache  # type: ignore[attr-defined]
        return list(cache)

    @classmethod
    def tool_schemas(cls, step: Any = None) -> list[ToolSchema]:
        """Schemas of the ``@tool`` methods offered at ``step`` (all when None)."""
        return [
            schema
            for spec, schema in cls.declared_tools()
            if step is None or spec.steps is None or step in spec.steps
        ]


def stringify_result(result: Any) -> str:
    """What the model reads for a tool's return value."""
    if isinstance(result, str):
        return result
    if isinstance(result, ToolResult):
        return result.content
    if result is None:
        return "OK"
    try:
        return json.dumps(result, default=str)
    except (TypeError, ValueError):
        return str(result)
