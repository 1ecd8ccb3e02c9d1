"""Conversation test files: a journey's conversations written as data, played as tests.

A journey author writes what the user says and what must follow, per turn, and the same
conversation can run against a scripted model (exact tool calls, deterministic), the
offline stand-in, or a real provider. The pytest plugin collects ``conversation_*.yaml``
/ ``*.conversation.json`` files (see ``conversation_items``); in Python, build a
``Conversation`` and ``await conversation.play(model)`` (or use the ``play_conversation``
fixture). The format::

    agent: example_project.journeys.onboarding.OnboardingAgent   # or a registry key
    name: onboarding, name first
    turns:
      - user: Hi, I'm Ada Lovelace
        tools: [{save_name: {name: Ada Lovelace}}]   # the calls that ran, in order
        step: collect_email
        state: {name: Ada Lovelace}
        reply: Ada                                   # the reply contains (any case)
      - user: ada@example.com
        model:                                       # scripted mode: what the model answers
          - call: save_email
            args: {email: ada@example.com}
          - reply: All set!
        step: complete
    complete: true

``$today``, ``$today+10`` and ``$today-3`` in any string become ISO dates, for journeys
that only accept dates near today.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import importlib
import json
import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal, InvalidOperation
from enum import Enum
from pathlib import Path
from typing import Any

from ..agents.context import AgentContext, AgentResult
from .scripted import ScriptedLLM, ScriptExhausted, tool_call

__all__ = [
    "MODES",
    "Conversation",
    "ConversationError",
    "ConversationMismatch",
    "ConversationRun",
    "Turn",
    "load_conversations",
    "model_for",
    "resolve_agent",
]

#: The values of ``--journey-model``.
MODES = ("scripted", "standin", "real")

_TODAY = re.compile(r"\$today(?:([+-])(\d+))?\b")
_TURN_KEYS = {"user", "model", "tools", "step", "state", "reply", "complete"}
_CONVERSATION_KEYS = {"name", "agent", "key", "models", "turns", "complete"}


class ConversationError(ValueError):
    """The conversation file itself is wrong (unknown key, unknown agent, bad model item)."""


def expand_dates(value: Any, today: dt.date | None = None) -> Any:
    """``$today``, ``$today+N``, ``$today-N`` in strings (nested too) -> ISO dates."""
    today = today or dt.date.today()
    if isinstance(value, str):

        def date(match: re.Match[str]) -> str:
            days = int(match.group(2) or 0) * (-1 if match.group(1) == "-" else 1)
            return (today + dt.timedelta(days=days)).isoformat()

        return _TODAY.sub(date, value)
    if isinstance(value, Mapping):
        return {key: expand_dates(item, today) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [expand_dates(item, today) for item in value]
    return value


@dataclasses.dataclass(slots=True)
class Turn:
    """One user message and what must be true after the turn (None: not checked)."""

    user: str
    #: Scripted mode: the model's answers, in order (text, or tool calls). Default: call
    #: each of ``tools`` in turn, then reply with the last tool's result.
    model: list[Any] | None = None
    #: The tool calls that ran (not rejected), in order: a name, or ``{name: {args}}``
    #: where the listed arguments must match (others are not checked).
    tools: list[Any] | None = None
    step: Any = None
    #: Fields of the state after the turn (nested mappings/lists compare field by field).
    state: Mapping[str, Any] | None = None
    #: Text the reply contains (case-insensitive); a list: all of them.
    reply: str | list[str] | None = None
    complete: bool | None = None

    @classmethod
    def from_dict(cls, data: Any, where: str = "turn") -> Turn:
        if isinstance(data, str):
            return cls(user=data)
        if not isinstance(data, Mapping) or "user" not in data:
            raise ConversationError(f"{where}: a turn is a mapping with a 'user' message")
        unknown = set(data) - _TURN_KEYS
        if unknown:
            raise ConversationError(
                f"{where}: unknown key(s) {sorted(unknown)}; a turn has {sorted(_TURN_KEYS)}"
            )
        reply = data.get("reply")
        return cls(
            user=str(data["user"]),
            model=list(data["model"]) if data.get("model") is not None else None,
            tools=list(data["tools"]) if data.get("tools") is not None else None,
            step=data.get("step"),
            state=data.get("state"),
            reply=[str(r) for r in reply] if isinstance(reply, list) else reply,
            complete=data.get("complete"),
        )


@dataclasses.dataclass(slots=True)
class Conversation:
    """A conversation to play against one agent; build it in Python or load it from a file."""

    agent: Any
    turns: list[Turn]
    name: str = "conversation"
    #: For an ``agent`` factory that returns several agents (a dict): which one.
    key: str | None = None
    #: The model modes this conversation is written for (None: all of ``MODES``).
    models: list[str] | None = None
    #: Must the journey be complete after the last turn? (None: not checked)
    complete: bool | None = None
    source: str | None = None

    @classmethod
    def from_dict(
        cls, data: Mapping[str, Any], *, defaults: Mapping[str, Any] | None = None
    ) -> Conversation:
        """The file form (a dict) -> a Conversation; ``defaults`` are file-level keys."""
        merged = {**(defaults or {}), **data}
        name = str(merged.get("name") or "conversation")
        unknown = set(merged) - _CONVERSATION_KEYS
        if unknown:
            raise ConversationError(
                f"conversation {name!r}: unknown key(s) {sorted(unknown)}; a conversation "
                f"has {sorted(_CONVERSATION_KEYS)}"
            )
        if not merged.get("agent"):
            raise ConversationError(f"conversation {name!r}: no 'agent' (a key or import path)")
        turns = merged.get("turns")
        if not isinstance(turns, list) or not turns:
            raise ConversationError(f"conversation {name!r}: 'turns' must be a non-empty list")
        models = merged.get("models")
        if isinstance(models, str):
            models = [models]
        for mode in models or ():
            if mode not in MODES:
                raise ConversationError(
                    f"conversation {name!r}: unknown model {mode!r}; use {', '.join(MODES)}"
                )
        return cls(
            agent=merged["agent"],
            turns=[
                Turn.from_dict(turn, f"conversation {name!r}, turn {index}")
                for index, turn in enumerate(turns, 1)
            ],
            name=name,
            key=merged.get("key"),
            models=list(models) if models else None,
            complete=merged.get("complete"),
        )

    def runs_with(self, mode: str) -> bool:
        return self.models is None or mode in self.models

    async def play(self, model: Any = "scripted") -> ConversationRun:
        """Play every turn; raise ``ConversationMismatch`` at the first turn that differs.

        ``model``: "scripted", "standin", "real", or a client object to use as is.
        """
        mode = model if isinstance(model, str) else "client"
        client = model_for(model)
        agent = resolve_agent(self.agent, client, key=self.key)
        run = ConversationRun(self, mode, _describe_agent(self.agent, agent))
        scripted = client if isinstance(client, _ConversationModel) else None
        conversation_id = uuid.uuid4()
        last = len(self.turns)
        for number, raw_turn in enumerate(self.turns, 1):
            turn = _expanded(raw_turn)
            explicit = scripted is not None and turn.model is not None
            if scripted is not None:
                scripted.script.clear()
                scripted.script.extend(_script_for(turn, number))
            ctx = AgentContext.for_message(conversation_id, turn.user)
            try:
                result = await agent.run(ctx)
            except ScriptExhausted as exc:
                raise ConversationMismatch(
                    run,
                    number,
                    turn,
                    [
                        "model: the journey called the model more often than turn "
                        f"{number}'s script answers ({exc})"
                    ],
                ) from None
            except Exception as exc:
                exc.add_note(run.transcript(upcoming=turn))
                raise
            run.results.append(result)
            problems = _check_turn(turn, result)
            if explicit and scripted is not None and scripted.script:
                problems.append(
                    f"model: {len(scripted.script)} scripted answer(s) of turn {number} were "
                    f"never asked for: {list(scripted.script)}"
                )
            if number == last and self.complete is not None and result.complete != self.complete:
                problems.append(
                    f"complete: expected {self.complete} after the last turn, got {result.complete}"
                )
            if problems and scripted is not None and not explicit:
                bare = [t for t in turn.tools or () if isinstance(t, str)]
                if any(r.status == "rejected" and r.name in bare for r in result.tool_calls):
                    problems.append(
                        f"hint: the scripted model calls {', '.join(bare)} as listed, without "
                        "arguments; write {name: {argument: value}} for a scripted run"
                    )
            if problems:
                raise ConversationMismatch(run, number, turn, problems)
        return run


@dataclasses.dataclass
class ConversationRun:
    """What was played so far: the results of the turns, for the transcript."""

    conversation: Conversation
    mode: str
    agent_label: str
    results: list[AgentResult] = dataclasses.field(default_factory=list)

    def transcript(self, upcoming: Turn | None = None) -> str:
        conv = self.conversation
        lines = [f"conversation {conv.name!r} with {self.agent_label} (model: {self.mode})"]
        for number, result in enumerate(self.results, 1):
            turn = _expanded(conv.turns[number - 1])
            lines.extend(_turn_lines(number, turn.user, result))
        if upcoming is not None:
            lines.append(f"  turn {len(self.results) + 1}  user: {upcoming.user}")
        return "\n".join(lines)


class ConversationMismatch(AssertionError):
    """A turn did not go as the conversation says; the message shows the transcript."""

    def __init__(
        self, run: ConversationRun, turn_number: int, turn: Turn, problems: list[str]
    ) -> None:
        self.run = run
        self.turn_number = turn_number
        self.turn = turn
        self.problems = problems
        super().__init__(self.report())

    def report(self) -> str:
        lines = [
            self.run.transcript(),
            "",
            f"turn {self.turn_number} ({self.turn.user!r}) differs:",
            *(f"  {problem}" for problem in self.problems),
        ]
        return "\n".join(lines)


# -- the model ----------------------------------------------------------------------------


class _Echo:
    """Script item: reply with the turn's last tool result (or a fixed text)."""

    __slots__ = ("fallback",)

    def __init__(self, fallback: str) -> None:
        self.fallback = fallback

    def __repr__(self) -> str:
        return "<reply with the last tool result>"


class _ConversationModel(ScriptedLLM):
    """A ``ScriptedLLM`` refilled per turn, whose default final answer repeats the turn's
    last tool result, as a model would summarise it."""

    async def generate(
        self,
        messages: Sequence[Mapping[str, Any]],
        tools: Sequence[Mapping[str, Any]] | None = None,
        **kwargs: Any,
    ) -> Any:
        if self.script and isinstance(self.script[0], _Echo):
            self.script[0] = _last_tool_result(messages) or self.script[0].fallback
        return await super().generate(messages, tools, **kwargs)


def _last_tool_result(messages: Sequence[Mapping[str, Any]]) -> str | None:
    for message in reversed(messages):
        role = message.get("role")
        if role == "tool":
            content = message.get("content")
            return content if isinstance(content, str) and content else None
        if role == "user":
            return None
    return None


def model_for(model: Any) -> Any:
    """The client for a mode: "scripted", "standin" or "real" (anything else: as is).

    "real" resolves the configured provider (``get_llm_client``) and skips the test when
    there is none, or when it is only the offline stand-in.
    """
    if not isinstance(model, str):
        return model
    if model == "scripted":
        return _ConversationModel()
    if model == "standin":
        from ..llm.standin import OfflineStandInLLM

        return OfflineStandInLLM()
    if model == "real":
        import pytest

        from ..llm.base import NoLLMConfiguredError
        from ..llm.resolve import get_llm_client

        try:
            client = get_llm_client()
        except NoLLMConfiguredError:
            pytest.skip(
                "--journey-model=real: no model is configured (set OPENAI_API_KEY, "
                "ANTHROPIC_API_KEY or AGENT_RUNTIME_LLM, or AGENT_RUNTIME_FRAMEWORK['LLM'])"
            )
        if getattr(client, "is_offline_standin", False):
            pytest.skip("--journey-model=real: the configured model is the offline stand-in")
        return client
    raise ConversationError(f"unknown model {model!r}; use {', '.join(MODES)}")


def _call_item(item: Any, where: str) -> dict[str, Any]:
    """A tool call of the script: ``{call: name, args: {...}}`` or ``{name: {args}}``."""
    if isinstance(item, str):
        return tool_call(item)
    if isinstance(item, Mapping):
        if "call" in item:
            return tool_call(str(item["call"]), dict(item.get("args") or {}))
        if len(item) == 1:
            (name, args), *_ = item.items()
            return tool_call(str(name), dict(args or {}))
    raise ConversationError(f"{where}: {item!r} is not a tool call")


def _script_for(turn: Turn, number: int) -> list[Any]:
    where = f"turn {number}, model"
    if turn.model is None:
        calls = [_call_item(item, f"turn {number}, tools") for item in turn.tools or ()]
        replies = turn.reply if isinstance(turn.reply, list) else [turn.reply or "OK."]
        return [*calls, _Echo(" ".join(replies))]
    script: list[Any] = []
    for item in turn.model:
        if isinstance(item, str):
            script.append(item)
        elif isinstance(item, Mapping) and "reply" in item:
            script.append(str(item["reply"]))
        elif isinstance(item, Mapping) and "calls" in item:
            script.append([_call_item(call, where) for call in item["calls"]])
        else:
            script.append(_call_item(item, where))
    return script


# -- the agent ----------------------------------------------------------------------------


def _import(path: str) -> Any:
    module_name, _, attribute = path.replace(":", ".").rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConversationError(f"agent {path!r}: cannot import {module_name!r}: {exc}") from exc
    try:
        return getattr(module, attribute)
    except AttributeError:
        raise ConversationError(f"agent {path!r}: {module_name} has no {attribute!r}") from None


def _registered(key: str) -> Any:
    try:
        from django.conf import settings

        configured = settings.configured
    except ImportError:
        configured = False
    if not configured:
        raise ConversationError(
            f"agent {key!r}: not an import path, and Django is not configured to look it up "
            "in the runtime registry; write e.g. 'myapp.journeys.OnboardingAgent'"
        )
    from ..django.host.registry import registered_runtimes

    runtimes = registered_runtimes()
    if key not in runtimes:
        raise ConversationError(
            f"agent {key!r} is not registered; registered: {', '.join(sorted(runtimes)) or '-'}"
        )
    return runtimes[key]


def _rebind(agent: Any, client: Any) -> Any:
    """A copy of a (shared, registered) agent that uses ``client`` and its own memory."""
    from ..memory.manager import MemoryManager

    if not callable(getattr(agent, "run", None)):
        raise ConversationError(f"{agent!r} is not an agent (it has no run())")
    clone = copy.copy(agent)
    if hasattr(clone, "llm_client"):
        clone.llm_client = client
    if hasattr(clone, "_executor"):
        clone._executor = None
    if hasattr(clone, "memory"):
        clone.memory = MemoryManager()  # a fresh in-memory history: no database needed
    sub_agents = getattr(clone, "agents", None)
    if isinstance(sub_agents, dict):
        clone.agents = {route: _rebind(sub, client) for route, sub in sub_agents.items()}
        for sub in clone.agents.values():
            sub.memory = clone.memory  # one conversation, one history, as the router does
    return clone


def resolve_agent(spec: Any, client: Any, *, key: str | None = None) -> Any:
    """The agent a conversation names, using ``client`` as its model.

    ``spec``: an agent object (copied, with the client), a registry key ("quote"), or an
    import path ("pkg.module.Class" or "pkg.module:factory") to a journey class (called
    with the client), a factory (called with the client; a dict result is indexed by
    ``key``) or an agent instance.
    """
    if isinstance(spec, str):
        if "." not in spec and ":" not in spec:
            return _rebind(_registered(spec), client)
        target = _import(spec)
        if isinstance(target, type) or (callable(target) and not hasattr(target, "run")):
            made = target(client)
        else:
            return _rebind(target, client)
    elif isinstance(spec, type) or (callable(spec) and not hasattr(spec, "run")):
        made = spec(client)
    else:
        return _rebind(spec, client)
    if isinstance(made, Mapping):
        if key is None or key not in made:
            raise ConversationError(
                f"agent {spec!r} gives several agents ({', '.join(map(str, made))}): "
                "say which with 'key'"
            )
        made = made[key]
    return made


def _describe_agent(spec: Any, agent: Any) -> str:
    own = getattr(agent, "key", None)
    name = f"{type(agent).__module__}.{type(agent).__qualname__}"
    return f"{own!r} ({name})" if isinstance(own, str) else name


# -- checking a turn ----------------------------------------------------------------------


def _expanded(turn: Turn) -> Turn:
    return Turn(
        user=expand_dates(turn.user),
        model=expand_dates(turn.model),
        tools=expand_dates(turn.tools),
        step=turn.step,
        state=expand_dates(turn.state),
        reply=expand_dates(turn.reply),
        complete=turn.complete,
    )


def _plain(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


def _same(expected: Any, actual: Any) -> bool:
    if isinstance(actual, Enum):
        if isinstance(expected, str) and expected.lower() == actual.name.lower():
            return True
        actual = actual.value
    if isinstance(expected, dt.date | dt.datetime):
        expected = expected.isoformat()
    if isinstance(actual, dt.date | dt.datetime):
        return isinstance(expected, str) and actual.isoformat() == expected
    if isinstance(expected, bool) or isinstance(actual, bool):
        return expected is actual
    numbers = int | float | Decimal
    if isinstance(actual, numbers) and isinstance(expected, numbers | str):
        try:
            return Decimal(str(expected)) == Decimal(str(actual))
        except InvalidOperation:
            return False
    return bool(expected == actual)


def _field(value: Any, name: str) -> tuple[bool, Any]:
    if isinstance(value, Mapping):
        return (name in value), value.get(name)
    if hasattr(value, name):
        return True, getattr(value, name)
    return False, None


def _differences(expected: Any, actual: Any, path: str) -> list[str]:
    """``path: expected X, got Y`` for every field of ``expected`` that ``actual`` lacks."""
    if isinstance(expected, Mapping):
        problems: list[str] = []
        for name, want in expected.items():
            found, got = _field(actual, str(name))
            if not found:
                problems.append(f"{path}.{name}: expected {want!r}, there is no such field")
            else:
                problems.extend(_differences(want, got, f"{path}.{name}"))
        return problems
    if isinstance(expected, list):
        items = list(actual) if isinstance(actual, list | tuple) else None
        if items is None or len(items) != len(expected):
            return [f"{path}: expected {expected!r}, got {_shown(actual)}"]
        problems = []
        for index, (want, got) in enumerate(zip(expected, items, strict=True)):
            problems.extend(_differences(want, got, f"{path}[{index}]"))
        return problems
    if _same(expected, actual):
        return []
    return [f"{path}: expected {expected!r}, got {_shown(actual)}"]


def _shown(value: Any) -> str:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return repr({f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)})
    if isinstance(value, list | tuple):
        return repr([_plain(v) for v in value])
    return repr(_plain(value))


def _call_text(name: str, arguments: Any) -> str:
    if isinstance(arguments, Mapping):
        inner = ", ".join(f"{k}={_plain(v)!r}" for k, v in arguments.items())
        return f"{name}({inner})"
    return f"{name}({arguments!r})"


def _expected_call_text(item: Any) -> str:
    if isinstance(item, Mapping) and len(item) == 1:
        (name, args), *_ = item.items()
        return _call_text(str(name), dict(args or {}))
    return f"{item}(...)"


def _check_tools(expected: list[Any], records: Iterable[Any]) -> list[str]:
    ran = [r for r in records if r.status != "rejected"]
    want_text = "[" + ", ".join(_expected_call_text(item) for item in expected) + "]"
    got_text = "[" + ", ".join(_call_text(r.name, r.arguments) for r in ran) + "]"
    mismatch = len(ran) != len(expected)
    for item, record in zip(expected, ran, strict=False):
        if isinstance(item, Mapping) and len(item) == 1:
            (name, args), *_ = item.items()
            if record.name != name or _differences(dict(args or {}), record.arguments, "args"):
                mismatch = True
        elif record.name != item:
            mismatch = True
    return [f"tools: expected {want_text}, got {got_text}"] if mismatch else []


def _check_turn(turn: Turn, result: AgentResult) -> list[str]:
    problems: list[str] = []
    if turn.step is not None and not _same(turn.step, result.step):
        problems.append(f"step: expected {turn.step!r}, got {_plain(result.step)!r}")
    if turn.tools is not None:
        problems.extend(_check_tools(turn.tools, result.tool_calls))
    if turn.state is not None:
        problems.extend(_differences(turn.state, result.state, "state"))
    if turn.reply is not None:
        wanted = turn.reply if isinstance(turn.reply, list) else [turn.reply]
        text = result.response or ""
        for phrase in wanted:
            if str(phrase).lower() not in text.lower():
                problems.append(f"reply: expected it to contain {phrase!r}, got {text!r}")
    if turn.complete is not None and result.complete != turn.complete:
        problems.append(f"complete: expected {turn.complete}, got {result.complete}")
    return problems


def _turn_lines(number: int, user: str, result: AgentResult) -> list[str]:
    pad = " " * (len(f"  turn {number}") + 2)
    lines = [f"  turn {number}  user: {user}"]
    for record in result.tool_calls:
        status = "" if record.status == "ok" else f" [{record.status}]"
        outcome = _short(str(record.result))
        lines.append(f"{pad}tool: {_call_text(record.name, record.arguments)}{status} -> {outcome}")
    lines.append(f"{pad}reply: {_short(result.response or '')}")
    complete = ", complete" if result.complete else ""
    lines.append(f"{pad}step: {_plain(result.step)}{complete}")
    return lines


def _short(text: str, limit: int = 120) -> str:
    text = " ".join(text.split())
    return repr(text if len(text) <= limit else text[: limit - 3] + "...")


# -- files --------------------------------------------------------------------------------


def _read(path: Path) -> Any:
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        return json.loads(text)
    try:
        import yaml
    except ImportError:
        raise ConversationError(
            f"{path.name}: reading YAML needs PyYAML (pip install pyyaml); or write the "
            "conversation as JSON (*.conversation.json)"
        ) from None
    return yaml.safe_load(text)


def load_conversations(path: str | Path) -> list[Conversation]:
    """The conversations of a file: one conversation, a list of them, or a mapping with
    ``conversations:`` and file-level defaults (``agent``, ``key``, ``models``)."""
    path = Path(path)
    data = _read(path)
    defaults: dict[str, Any] = {}
    if isinstance(data, Mapping) and "conversations" in data:
        defaults = {k: v for k, v in data.items() if k != "conversations"}
        items = data["conversations"]
    elif isinstance(data, list):
        items = data
    else:
        items = [data]
    if not isinstance(items, list) or not all(isinstance(i, Mapping) for i in items):
        raise ConversationError(f"{path.name}: expected a conversation or a list of them")
    conversations = []
    for index, item in enumerate(items, 1):
        item = dict(item)
        item.setdefault("name", f"conversation {index}" if len(items) > 1 else path.stem)
        conversation = Conversation.from_dict(item, defaults=defaults)
        conversation.source = str(path)
        conversations.append(conversation)
    return conversations
