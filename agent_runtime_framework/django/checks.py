"""System checks: ``manage.py check`` finds broken journeys before a user does.

Each registered agent (and each journey behind a router) is walked through every step of
its step enum: the step must have a system prompt, and every tool offered there must have
a method that accepts the schema's parameters. Keys must be unique and the settings dict
must only hold known keys of the right type.

Check ids:

- ``agent_runtime.E001`` a step has no system prompt (raises, or returns empty/non-str).
- ``agent_runtime.E002`` a tool schema has no matching method on the step's tools object.
- ``agent_runtime.E003`` a tool method's signature does not fit the schema's parameters.
- ``agent_runtime.E004`` two different agents share a key.
- ``agent_runtime.E005`` an unknown key in ``AGENT_RUNTIME_FRAMEWORK`` (a typo?).
- ``agent_runtime.E006`` a setting has a value of the wrong type or range.
- ``agent_runtime.E007`` ``get_initial_state()`` or ``get_tool_schemas()`` raises.
- ``agent_runtime.W001`` a runtime is registered under a key other than its ``.key``.
- ``agent_runtime.W002`` tools could not be created for a step, so E002/E003 were skipped.
- ``agent_runtime.W003`` a step's prompt says ``{name}`` where ``$name`` was meant (a value
  the prompt is rendered with, or a field of the state): the model would read the braces.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import re
import warnings
from collections.abc import Iterator
from typing import Any

from django.core import checks

from ..agents.context import AgentContext
from ..agents.introspect import journey_steps, step_value
from ..prompts.templates import (
    PromptManager,
    PromptPlaceholderWarning,
    PromptTemplate,
    StepPromptMapping,
)

__all__ = [
    "check_agent",
    "check_agent_keys",
    "check_agents",
    "check_prompt_placeholders",
    "check_settings",
    "iter_agents",
]


def iter_agents(runtimes: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    """(label, agent) for every registered runtime and every journey behind a router."""
    for key, runtime in runtimes.items():
        yield key, runtime
        sub_agents = getattr(runtime, "agents", None)
        if isinstance(sub_agents, dict):
            for route, agent in sub_agents.items():
                yield f"{key} -> {step_value(route)}", agent


def _is_journey(agent: Any) -> bool:
    return all(
        callable(getattr(agent, name, None))
        for name in ("get_initial_state", "get_system_prompt", "get_tool_schemas")
    )


def _make_tools(agent: Any, state: Any) -> Any:
    """Call ``create_tools`` with the arity it has: (state, ctx) or (state, ctx, backend)."""
    create = agent.create_tools
    try:
        params = [
            p
            for p in inspect.signature(create).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
    except (TypeError, ValueError):
        params = []
    if len(params) >= 3:
        return create(state, None, None)
    return create(state, AgentContext())


def _signature_problem(method: Any, parameters: list[str]) -> str | None:
    """Why ``method(**{p: ...})`` would fail for the schema's parameters (None if it fits)."""
    try:
        signature = inspect.signature(method)
    except (TypeError, ValueError):
        return None
    params = signature.parameters
    takes_kwargs = any(p.kind is p.VAR_KEYWORD for p in params.values())
    accepted = {
        name for name, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    }
    unknown = [p for p in parameters if p not in accepted and not takes_kwargs]
    if unknown:
        return f"does not accept schema parameter(s) {', '.join(unknown)}"
    missing = [
        name
        for name, p in params.items()
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        and p.default is p.empty
        and name not in parameters
    ]
    if missing:
        return f"requires argument(s) {', '.join(missing)} that the schema does not declare"
    return None


_BRACED_NAME = re.compile(r"(?<!\$)\{([_A-Za-z][_A-Za-z0-9]*)\}")


def _prompt_sources(agent: Any) -> list[tuple[StepPromptMapping[Any], PromptManager[Any] | None]]:
    """The step prompt mappings an agent holds as attributes, directly or in a manager.

    Read statically (instance and class dicts) so that no property runs.
    """
    found: list[tuple[StepPromptMapping[Any], PromptManager[Any] | None]] = []
    seen: set[int] = set()
    values = list(vars(agent).values()) if hasattr(agent, "__dict__") else []
    for klass in type(agent).__mro__:
        values.extend(vars(klass).values())
    for value in values:
        if isinstance(value, PromptManager):
            mapping, manager = value.mapping, value
        elif isinstance(value, StepPromptMapping):
            mapping, manager = value, None
        else:
            continue
        if id(mapping) not in seen:
            seen.add(id(mapping))
            found.append((mapping, manager))
    return found


def _state_names(state: Any) -> set[str]:
    if dataclasses.is_dataclass(state):
        return {f.name for f in dataclasses.fields(state)}
    return (
        {name for name in vars(state) if not name.startswith("_")}
        if hasattr(state, "__dict__")
        else set()
    )


def check_prompt_placeholders(
    label: str, agent: Any, step: Any, state: Any, prompt: str | None = None
) -> list[checks.CheckMessage]:
    """W003: ``{name}`` in the step's prompt, where ``name`` is a value the prompt is
    rendered with (its template's defaults, its manager's enricher) or a state field.

    ``PromptTemplate`` placeholders are ``$name``; ``{name}`` reaches the model as written.
    """
    names = _state_names(state) | {"step"}
    templates: list[PromptTemplate] = []
    for mapping, manager in _prompt_sources(agent):
        template = mapping.prompts.get(step, mapping.default)
        if template is None:
            continue
        templates.append(template)
        names |= template.defaults.keys()
        enricher = manager.context_enricher if manager is not None else None
        if enricher is not None:
            # E001 reports a prompt that cannot be built.
            with contextlib.suppress(Exception):
                names |= set(enricher(state))
    suspects: set[str] = set()
    for template in templates:
        suspects.update(template.misplaced_placeholders(names))
    if isinstance(prompt, str):  # a prompt built another way: look at what the model gets
        suspects.update(n for n in _BRACED_NAME.findall(prompt) if n in names)
    if not suspects:
        return []
    written = ", ".join("{" + n + "}" for n in sorted(suspects))
    meant = ", ".join("$" + n for n in sorted(suspects))
    return [
        checks.Warning(
            f"Agent '{label}' ({type(agent).__qualname__}): the prompt of step "
            f"'{step_value(step)}' contains {written}, which reaches the model as written.",
            hint=f"Prompt templates substitute {meant} (or ${{name}}), not {{name}}.",
            obj=agent,
            id="agent_runtime.W003",
        )
    ]


def check_agent(label: str, agent: Any) -> list[checks.CheckMessage]:
    """E001/E002/E003/E007/W002/W003 for one agent, walking every step of its enum."""
    errors: list[checks.CheckMessage] = []
    name = type(agent).__qualname__
    try:
        steps = journey_steps(agent)
        if not steps:
            steps = [getattr(agent.get_initial_state(), "step", None)]
    except Exception as exc:
        return [
            checks.Error(
                f"Agent '{label}' ({name}): get_initial_state() raised {type(exc).__name__}: {exc}",
                hint="get_initial_state() must return a fresh state without arguments.",
                obj=agent,
                id="agent_runtime.E007",
            )
        ]
    for step in steps:
        value = step_value(step)
        try:
            state = agent.get_initial_state()
            if step is not None:
                state.step = step
        except Exception as exc:
            errors.append(
                checks.Error(
                    f"Agent '{label}' ({name}): cannot build a state at step '{value}': {exc}",
                    hint="The state's step field must accept every member of the step enum.",
                    obj=agent,
                    id="agent_runtime.E007",
                )
            )
            continue
        prompt = None
        try:
            with warnings.catch_warnings():
                # W003 below says it with the step and the agent's name.
                warnings.simplefilter("ignore", PromptPlaceholderWarning)
                prompt = agent.get_system_prompt(state)
            problem = (
                None if isinstance(prompt, str) and prompt.strip() else (f"returned {prompt!r}")
            )
        except Exception as exc:
            problem = f"raised {type(exc).__name__}: {exc}"
        errors.extend(check_prompt_placeholders(label, agent, step, state, prompt))
        if problem:
            errors.append(
                checks.Error(
                    f"Agent '{label}' ({name}): no system prompt for step '{value}' "
                    f"(get_system_prompt {problem}).",
                    hint="Add a prompt for this step (e.g. to the StepPromptMapping), or give "
                    "the mapping a default.",
                    obj=agent,
                    id="agent_runtime.E001",
                )
            )
        try:
            schemas = list(agent.get_tool_schemas(state))
        except Exception as exc:
            errors.append(
                checks.Error(
                    f"Agent '{label}' ({name}): get_tool_schemas() raised at step '{value}': "
                    f"{type(exc).__name__}: {exc}",
                    hint="get_tool_schemas(state) must work for every step.",
                    obj=agent,
                    id="agent_runtime.E007",
                )
            )
            continue
        if not schemas:
            continue
        try:
            tools = _make_tools(agent, state)
        except Exception as exc:
            errors.append(
                checks.Warning(
                    f"Agent '{label}' ({name}): could not create tools at step '{value}' to "
                    f"verify them ({type(exc).__name__}: {exc}).",
                    hint="Make create_tools work without a live context, or ignore this with "
                    "SILENCED_SYSTEM_CHECKS.",
                    obj=agent,
                    id="agent_runtime.W002",
                )
            )
            continue
        for schema in schemas:
            method = getattr(tools, schema.name, None)
            if not callable(method):
                errors.append(
                    checks.Error(
                        f"Agent '{label}' ({name}): tool '{schema.name}' is offered at step "
                        f"'{value}' but {type(tools).__qualname__} has no method "
                        f"'{schema.name}'.",
                        hint="Add the method to the tools class or fix the schema's name.",
                        obj=agent,
                        id="agent_runtime.E002",
                    )
                )
                continue
            why = _signature_problem(method, schema.parameter_names)
            if why:
                errors.append(
                    checks.Error(
                        f"Agent '{label}' ({name}): tool method "
                        f"{type(tools).__qualname__}.{schema.name} {why}.",
                        hint="Make the method's parameters match the schema's parameters.",
                        obj=agent,
                        id="agent_runtime.E003",
                    )
                )
    return errors


def check_agent_keys(runtimes: dict[str, Any]) -> list[checks.CheckMessage]:
    """E004 (one key, two agents) and W001 (registered under a key other than ``.key``)."""
    errors: list[checks.CheckMessage] = []
    owners: dict[str, Any] = {}
    for registered, runtime in runtimes.items():
        own = getattr(runtime, "key", registered)
        if own != registered:
            errors.append(
                checks.Warning(
                    f"Runtime {type(runtime).__qualname__} is registered as '{registered}' "
                    f"but its key is '{own}'.",
                    hint="Register it without key= or make the keys agree; the admin and "
                    "the stores use the agent's own key.",
                    obj=runtime,
                    id="agent_runtime.W001",
                )
            )
    for label, agent in iter_agents(runtimes):
        key = getattr(agent, "key", None)
        if not isinstance(key, str):
            continue
        seen = owners.setdefault(key, agent)
        if seen is not agent:
            errors.append(
                checks.Error(
                    f"Agent key '{key}' is used by {type(seen).__qualname__} and by "
                    f"{type(agent).__qualname__} ({label}).",
                    hint="Agent keys name journey rows in the database: give each agent its "
                    "own key.",
                    obj=agent,
                    id="agent_runtime.E004",
                )
            )
    return errors


def check_settings(raw: Any) -> list[checks.CheckMessage]:
    """E005 (unknown keys) and E006 (wrong types) for ``AGENT_RUNTIME_FRAMEWORK``."""
    from .conf import DEFAULTS

    if raw is None:
        return []
    if not isinstance(raw, dict):
        return [
            checks.Error(
                f"AGENT_RUNTIME_FRAMEWORK must be a dict, got {type(raw).__name__}.",
                hint="settings.AGENT_RUNTIME_FRAMEWORK = {'BUSY_WAIT_SECONDS': 10, ...}",
                id="agent_runtime.E006",
            )
        ]
    errors: list[checks.CheckMessage] = []
    for key in sorted(set(raw) - set(DEFAULTS)):
        close = [k for k in DEFAULTS if k.replace("_", "") == str(key).upper().replace("_", "")]
        errors.append(
            checks.Error(
                f"Unknown setting AGENT_RUNTIME_FRAMEWORK[{key!r}].",
                hint=(f"Did you mean {close[0]!r}? " if close else "")
                + f"Known keys: {', '.join(sorted(DEFAULTS))}.",
                id="agent_runtime.E005",
            )
        )

    def number(key: str, minimum: float, integer: bool = False, optional: bool = False) -> None:
        if key not in raw:
            return
        value: Any = raw[key]
        if value is None and optional:
            return
        kinds: tuple[type, ...] = (int,) if integer else (int, float)
        valid = not isinstance(value, bool) and isinstance(value, kinds)
        if not valid or float(value) < minimum:
            kind = "an integer" if integer else "a number"
            errors.append(
                checks.Error(
                    f"AGENT_RUNTIME_FRAMEWORK[{key!r}] must be {kind} >= {minimum}"
                    + (" or None" if optional else "")
                    + f", got {value!r}.",
                    hint=f"The default is {DEFAULTS[key]!r}.",
                    id="agent_runtime.E006",
                )
            )

    number("BUSY_WAIT_SECONDS", 0)
    number("LEASE_SECONDS", 0.001)
    number("MAX_BODY_BYTES", 1, integer=True)
    number("MAX_MESSAGE_CHARS", 1, integer=True)
    number("MAX_EVENT_PAYLOAD_CHARS", 0, integer=True)
    number("MAX_HISTORY_MESSAGES", 1, integer=True, optional=True)
    number("DB_THREADS", 1, integer=True)
    for flag in (
        "ALLOW_OFFLINE_STANDIN",
        "ALLOW_ANONYMOUS",
        "PREPARED_STATEMENTS",
        "TRACING",
        "REDACT_MESSAGES",
        "OFFER_ESCALATION",
    ):
        if flag in raw and not isinstance(raw[flag], bool):
            errors.append(
                checks.Error(
                    f"AGENT_RUNTIME_FRAMEWORK[{flag!r}] must be True or False, got {raw[flag]!r}.",
                    id="agent_runtime.E006",
                )
            )
    reply = raw.get("HANDOFF_REPLY", "set")
    if not isinstance(reply, str) or not reply.strip():
        errors.append(
            checks.Error(
                "AGENT_RUNTIME_FRAMEWORK['HANDOFF_REPLY'] must be a non-empty string (what the "
                f"user reads while a person has the conversation), got {reply!r}.",
                id="agent_runtime.E006",
            )
        )
    errors.extend(_check_observability(raw))
    errors.extend(_check_cost(raw))
    errors.extend(_check_queued(raw))
    runtimes = raw.get("RUNTIMES", [])
    if isinstance(runtimes, str) or not isinstance(runtimes, list | tuple):
        errors.append(
            checks.Error(
                "AGENT_RUNTIME_FRAMEWORK['RUNTIMES'] must be a list of dotted paths.",
                hint="e.g. ['myapp.agents.OnboardingAgent']",
                id="agent_runtime.E006",
            )
        )
    return errors


def _check_queued(raw: dict[str, Any]) -> list[checks.CheckMessage]:
    """E006 for ``TURNS``, ``QUEUE`` and ``LIVE_EVENTS`` (queued turns, ``queued.py``)."""
    errors: list[checks.CheckMessage] = []
    turns = raw.get("TURNS", "inline")
    if turns not in ("inline", "queued"):
        errors.append(
            checks.Error(
                f"AGENT_RUNTIME_FRAMEWORK['TURNS'] must be 'inline' or 'queued', got {turns!r}.",
                id="agent_runtime.E006",
            )
        )
    queue = raw.get("QUEUE", "tasks")
    if not isinstance(queue, str) or not (queue in ("tasks", "celery") or "." in queue):
        errors.append(
            checks.Error(
                "AGENT_RUNTIME_FRAMEWORK['QUEUE'] must be 'tasks', 'celery' or the dotted "
                f"path of a callable (conversation_id, delay), got {queue!r}.",
                id="agent_runtime.E006",
            )
        )
    elif turns == "queued" and queue in ("tasks", "celery"):
        from .host import tasks

        engines = {
            "tasks": (
                tasks.play_conversation_task,
                "TURNS is 'queued' on Django's tasks framework, which is missing.",
                'Use Django 6, or install "agent-runtime-framework[tasks]" (the django-tasks '
                "backport), and configure TASKS.",
            ),
            "celery": (
                tasks.play_conversation_celery,
                "QUEUE is 'celery' but Celery is not installed.",
                'pip install "agent-runtime-framework[celery]"',
            ),
        }
        task, message, hint = engines[queue]
        if task is None:
            errors.append(checks.Error(message, hint=hint, id="agent_runtime.E006"))
    live = raw.get("LIVE_EVENTS", "auto")
    if not isinstance(live, str) or not (
        live in ("auto", "poll", "postgres") or live.startswith(("redis://", "rediss://"))
    ):
        errors.append(
            checks.Error(
                "AGENT_RUNTIME_FRAMEWORK['LIVE_EVENTS'] must be 'auto', 'poll', 'postgres' "
                f"or a redis:// URL, got {live!r}.",
                id="agent_runtime.E006",
            )
        )
    return errors


def _check_observability(raw: dict[str, Any]) -> list[checks.CheckMessage]:
    """E006 for ``TRACING`` without OpenTelemetry and a ``REDACT`` that is not a redactor."""
    errors: list[checks.CheckMessage] = []
    if raw.get("TRACING") is True:
        from ..tracing import otel_available

        if not otel_available():
            errors.append(
                checks.Error(
                    "AGENT_RUNTIME_FRAMEWORK['TRACING'] is on but OpenTelemetry is not "
                    "installed, so no spans are made.",
                    hint="pip install 'agent-runtime-framework[otel]', or set TRACING False.",
                    id="agent_runtime.E006",
                )
            )
    redact = raw.get("REDACT")
    if redact is not None:
        from .store.redaction import resolve_redactor

        try:
            resolve_redactor(redact)
        except (ImportError, TypeError) as exc:
            errors.append(
                checks.Error(
                    f"AGENT_RUNTIME_FRAMEWORK['REDACT'] must be None, a callable or the dotted "
                    f"path of one, got {redact!r} ({exc}).",
                    hint="e.g. 'agent_runtime_framework.django.store.redaction.default_redactor'",
                    id="agent_runtime.E006",
                )
            )
    elif raw.get("REDACT_MESSAGES") is True:
        errors.append(
            checks.Error(
                "AGENT_RUNTIME_FRAMEWORK['REDACT_MESSAGES'] is on but 'REDACT' is None, so "
                "nothing would be redacted.",
                hint="Set REDACT, e.g. 'agent_runtime_framework.django.store.redaction."
                "default_redactor'.",
                id="agent_runtime.E006",
            )
        )
    return errors


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value >= 0


def _check_cost(raw: dict[str, Any]) -> list[checks.CheckMessage]:
    """E006 for ``PRICES`` and ``LIMITS`` that are not of the documented shape."""
    errors: list[checks.CheckMessage] = []
    prices = raw.get("PRICES", {})
    bad = not isinstance(prices, dict) or any(
        not isinstance(model, str)
        or not isinstance(price, dict)
        or not price
        or set(price) - {"input", "output"}
        or not all(_is_number(v) for v in price.values())
        for model, price in prices.items()
    )
    if bad:
        errors.append(
            checks.Error(
                "AGENT_RUNTIME_FRAMEWORK['PRICES'] must map model names to prices per million "
                f"tokens ({{'input': number, 'output': number}}, >= 0), got {prices!r}.",
                hint="e.g. {'gpt-4o-mini': {'input': 0.15, 'output': 0.60}}",
                id="agent_runtime.E006",
            )
        )
    limits = raw.get("LIMITS")
    if limits is None:
        return errors
    shape = "{'turns': int, 'tokens': int, 'period': seconds} (turns or tokens, or both)"
    valid = (
        isinstance(limits, dict)
        and not set(limits) - {"turns", "tokens", "period"}
        and (limits.get("turns") is not None or limits.get("tokens") is not None)
        and all(
            limits.get(k) is None
            or (isinstance(limits[k], int) and not isinstance(limits[k], bool) and limits[k] >= 1)
            for k in ("turns", "tokens")
        )
        and (_is_number(limits.get("period", 86400)) and limits.get("period", 86400) > 0)
    )
    if not valid:
        errors.append(
            checks.Error(
                f"AGENT_RUNTIME_FRAMEWORK['LIMITS'] must be None or {shape}, got {limits!r}.",
                hint="e.g. {'turns': 100, 'tokens': 200000, 'period': 86400}",
                id="agent_runtime.E006",
            )
        )
    return errors


def check_agents(runtimes: dict[str, Any]) -> list[checks.CheckMessage]:
    """All agent checks for a registry snapshot (the function behind the system check)."""
    errors = check_agent_keys(runtimes)
    seen: set[int] = set()
    for label, agent in iter_agents(runtimes):
        if id(agent) in seen or not _is_journey(agent):
            continue
        seen.add(id(agent))
        errors.extend(check_agent(label, agent))
    return errors


@checks.register("agent_runtime")
def agent_runtime_checks(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """The registered system check: settings, then every registered agent."""
    from django.conf import settings

    from .host.registry import registered_runtimes

    errors = check_settings(getattr(settings, "AGENT_RUNTIME_FRAMEWORK", None))
    errors.extend(check_agents(registered_runtimes()))
    return errors
