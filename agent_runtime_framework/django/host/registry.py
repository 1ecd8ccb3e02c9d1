"""The runtime registry: one registration serves this app's own host and django_agent_runtime.

``register_runtime(runtime)`` records the runtime for the own HTTP host and, when
django_agent_runtime is importable, also calls its ``register_runtime`` (only runtimes
that speak its ``RunContext`` protocol, i.e. not plain ``JourneyAgent`` objects). Runtimes
listed in ``AGENT_RUNTIME_FRAMEWORK["RUNTIMES"]`` are registered from ``AppConfig.ready()``.
"""

from __future__ import annotations

import importlib
import logging
import re
import threading
from typing import Any

from django.core.exceptions import ImproperlyConfigured

__all__ = [
    "RuntimeRegistrationError",
    "find_journey_agent",
    "get_runtime",
    "is_runcontext_runtime",
    "register_runtime",
    "register_runtimes_from_settings",
    "registered_runtimes",
    "unregister_runtime",
]

logger = logging.getLogger("agent_runtime_framework.django")

_KEY_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,199}$")

_RUNTIMES: dict[str, Any] = {}
#: Dotted settings paths already registered (ready() may run more than once in tests).
_FROM_SETTINGS: dict[str, list[str]] = {}
_lock = threading.RLock()


class RuntimeRegistrationError(ImproperlyConfigured):
    """A runtime could not be registered (bad object, bad key, duplicate key)."""


def is_runcontext_runtime(runtime: Any) -> bool:
    """True for runtimes whose ``run`` takes a django_agent_runtime ``RunContext``.

    Plain ``JourneyAgent`` / ``RoutedJourneyAgent`` objects take an ``AgentContext``; they
    run on the own host only.
    """
    from ...agents.journey import JourneyAgent
    from ...agents.routed import RoutedJourneyAgent

    return not isinstance(runtime, JourneyAgent | RoutedJourneyAgent)


def _key_of(runtime: Any, key: str | None) -> str:
    if isinstance(runtime, type):
        raise RuntimeRegistrationError(
            f"register_runtime() needs an instance, got the class {runtime.__qualname__}; "
            f"call it: register_runtime({runtime.__qualname__}())"
        )
    if not callable(getattr(runtime, "run", None)):
        raise RuntimeRegistrationError(
            f"{type(runtime).__qualname__} is not a runtime: it has no run() method"
        )
    name = key if key is not None else getattr(runtime, "key", None)
    if not isinstance(name, str) or not _KEY_RE.match(name):
        raise RuntimeRegistrationError(
            f"Invalid runtime key {name!r} for {type(runtime).__qualname__}: use 1-200 "
            "characters from letters, digits and _ . : - (starting with a letter or digit)"
        )
    return name


def _register_with_django_agent_runtime(runtime: Any, key: str | None) -> bool:
    """Also register with django_agent_runtime when it is installed; True if it was."""
    try:
        module = importlib.import_module("django_agent_runtime.runtime.registry")
    except ImportError:
        return False
    # A runtime that is not an agent_runtime_core AgentRuntime by inheritance says how it
    # becomes one (the adapter registers itself as a virtual subclass); the app does not
    # import adapters/.
    become = getattr(runtime, "register_with_agent_runtime_core", None)
    if callable(become):
        become()
    if key is None:
        module.register_runtime(runtime)
    else:
        module.register_runtime(runtime, key=key)
    return True


def register_runtime(runtime: Any, key: str | None = None) -> Any:
    """Register ``runtime`` under ``key`` (default: ``runtime.key``); returns it.

    Registering the same object twice is a no-op; another object under a key already
    taken raises ``RuntimeRegistrationError``.
    """
    name = _key_of(runtime, key)
    with _lock:
        existing = _RUNTIMES.get(name)
        if existing is runtime:
            return runtime
        if existing is not None:
            raise RuntimeRegistrationError(
                f"A runtime with key {name!r} is already registered "
                f"({type(existing).__qualname__}); keys must be unique"
            )
        _RUNTIMES[name] = runtime
    if is_runcontext_runtime(runtime):
        try:
            _register_with_django_agent_runtime(runtime, key)
        except Exception:
            with _lock:
                _RUNTIMES.pop(name, None)
            raise
    return runtime


def unregister_runtime(key: str) -> Any:
    """Remove a runtime from the own host's registry (tests); returns it."""
    with _lock:
        try:
            runtime = _RUNTIMES.pop(key)
        except KeyError:
            raise LookupError(f"No runtime registered with key {key!r}") from None
        for path, keys in list(_FROM_SETTINGS.items()):
            if key in keys:
                del _FROM_SETTINGS[path]
    return runtime


def get_runtime(key: str) -> Any:
    """The runtime registered under ``key``; ``LookupError`` if none."""
    try:
        return _RUNTIMES[key]
    except (KeyError, TypeError):
        raise LookupError(f"No runtime registered with key {key!r}") from None


def registered_runtimes() -> dict[str, Any]:
    """A snapshot: key -> runtime, in registration order."""
    with _lock:
        return dict(_RUNTIMES)


def find_journey_agent(key: str) -> Any | None:
    """The agent whose key is ``key``: a registered runtime or a journey behind a router."""
    runtime = _RUNTIMES.get(key)
    if runtime is not None:
        return runtime
    for candidate in registered_runtimes().values():
        for agent in getattr(candidate, "agents", {}).values() if _is_router(candidate) else ():
            if getattr(agent, "key", None) == key:
                return agent
    return None


def _is_router(runtime: Any) -> bool:
    from ...agents.routed import RoutedJourneyAgent

    return isinstance(runtime, RoutedJourneyAgent)


def _materialize(path: str, target: Any) -> list[Any]:
    """A settings entry -> runtimes: an instance, a class (instantiated), or a factory."""
    if isinstance(target, type):
        try:
            made = target()
        except TypeError as exc:
            raise RuntimeRegistrationError(
                f"AGENT_RUNTIME_FRAMEWORK['RUNTIMES']: {path} is a class that cannot be "
                f"instantiated without arguments ({exc}); point at an instance or a factory"
            ) from exc
    elif callable(getattr(target, "run", None)):
        made = target
    elif callable(target):
        made = target()
    else:
        raise RuntimeRegistrationError(
            f"AGENT_RUNTIME_FRAMEWORK['RUNTIMES']: {path} is {type(target).__qualname__}, "
            "not a runtime instance, class or factory"
        )
    if isinstance(made, list | tuple):
        return list(made)
    return [made]


def register_runtimes_from_settings() -> list[str]:
    """Register every dotted path in ``AGENT_RUNTIME_FRAMEWORK["RUNTIMES"]``; returns keys."""
    from django.utils.module_loading import import_string

    from ..conf import app_settings

    paths = app_settings().RUNTIMES
    if isinstance(paths, str) or not isinstance(paths, list | tuple):
        raise RuntimeRegistrationError(
            "AGENT_RUNTIME_FRAMEWORK['RUNTIMES'] must be a list of dotted paths, "
            f"got {type(paths).__name__}"
        )
    keys: list[str] = []
    for path in paths:
        if not isinstance(path, str):
            raise RuntimeRegistrationError(
                f"AGENT_RUNTIME_FRAMEWORK['RUNTIMES'] entries are dotted paths, got {path!r}"
            )
        with _lock:
            if path in _FROM_SETTINGS:
                keys.extend(_FROM_SETTINGS[path])
                continue
        try:
            target = import_string(path)
        except ImportError as exc:
            raise RuntimeRegistrationError(
                f"AGENT_RUNTIME_FRAMEWORK['RUNTIMES']: cannot import {path!r}: {exc}"
            ) from exc
        registered: list[str] = []
        for runtime in _materialize(path, target):
            register_runtime(runtime)
            registered.append(_key_of(runtime, None))
        with _lock:
            _FROM_SETTINGS[path] = registered
        keys.extend(registered)
    return keys
