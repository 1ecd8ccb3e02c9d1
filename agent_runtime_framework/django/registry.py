"""The runtime registry of this app's own host (filled in by the adapter work)."""

from __future__ import annotations

from typing import Any

__all__ = ["get_runtime", "register_runtime", "register_runtimes_from_settings", "registered_runtimes"]

_RUNTIMES: dict[str, Any] = {}


def register_runtime(runtime: Any, key: str | None = None) -> Any:
    """Register a runtime (an agent with ``key`` and ``async run``) under its key."""
    name = key or runtime.key
    if name in _RUNTIMES and _RUNTIMES[name] is not runtime:
        raise ValueError(f"A runtime with key {name!r} is already registered")
    _RUNTIMES[name] = runtime
    return runtime


def get_runtime(key: str) -> Any:
    try:
        return _RUNTIMES[key]
    except KeyError:
        raise LookupError(f"No runtime registered with key {key!r}") from None


def registered_runtimes() -> dict[str, Any]:
    return dict(_RUNTIMES)


def register_runtimes_from_settings() -> None:
    """Register the dotted paths in ``AGENT_RUNTIME_FRAMEWORK["RUNTIMES"]``."""
