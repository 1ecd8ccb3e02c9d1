"""Framework-wide switches: debug vs production behaviour and log level.

Debug mode lets tool exceptions propagate with their traceback; production mode turns them
into ``"Error executing <tool>: <message>"`` tool results so the run goes on. The initial
configuration comes from ``AGENT_RUNTIME_DEBUG`` and ``AGENT_RUNTIME_LOG_LEVEL``.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, replace

__all__ = [
    "FrameworkConfig",
    "configure",
    "get_config",
    "is_debug",
    "reset_config",
    "set_config",
    "should_swallow_exceptions",
]

LOGGER_NAME = "agent_runtime_framework"
_TRUE = {"1", "true", "yes", "on"}


@dataclass(frozen=True, slots=True)
class FrameworkConfig:
    """Behaviour switches. ``swallow_tool_exceptions`` and ``log_level`` follow ``debug``
    unless given explicitly."""

    debug: bool = False
    swallow_tool_exceptions: bool | None = None
    log_level: str | None = None

    def __post_init__(self) -> None:
        if self.swallow_tool_exceptions is None:
            object.__setattr__(self, "swallow_tool_exceptions", not self.debug)
        if self.log_level is None:
            object.__setattr__(self, "log_level", "DEBUG" if self.debug else "INFO")
        level = str(self.log_level).upper()
        if not isinstance(logging.getLevelName(level), int):
            raise ValueError(f"Unknown log_level {self.log_level!r}; use DEBUG, INFO, WARNING...")
        object.__setattr__(self, "log_level", level)

    @classmethod
    def from_env(cls) -> FrameworkConfig:
        """Read ``AGENT_RUNTIME_DEBUG`` and ``AGENT_RUNTIME_LOG_LEVEL``."""
        debug = os.environ.get("AGENT_RUNTIME_DEBUG", "").strip().lower() in _TRUE
        level = os.environ.get("AGENT_RUNTIME_LOG_LEVEL") or None
        return cls(debug=debug, log_level=level)

    def enable_debug(self) -> None:
        """Switch this config to debug mode in place (0.3.0); takes effect if active."""
        self._switch(debug=True, swallow=False, level="DEBUG")

    def enable_production(self) -> None:
        """Switch this config to production mode in place (0.3.0); takes effect if active."""
        self._switch(debug=False, swallow=True, level="INFO")

    def _switch(self, *, debug: bool, swallow: bool, level: str) -> None:
        # Frozen so that nobody changes it by accident; these two 0.3.0 methods may.
        object.__setattr__(self, "debug", debug)
        object.__setattr__(self, "swallow_tool_exceptions", swallow)
        object.__setattr__(self, "log_level", level)
        if self is _config:
            _apply_logging(self)


_config: FrameworkConfig = FrameworkConfig.from_env()


def _apply_logging(config: FrameworkConfig) -> None:
    logging.getLogger(LOGGER_NAME).setLevel(str(config.log_level))


def set_config(config: FrameworkConfig) -> None:
    """Replace the active configuration."""
    global _config
    _config = config
    _apply_logging(config)


def get_config() -> FrameworkConfig:
    """The active configuration."""
    return _config


def configure(
    debug: bool | None = None,
    swallow_tool_exceptions: bool | None = None,
    log_level: str | None = None,
) -> FrameworkConfig:
    """Change some switches; the others keep their values (or follow ``debug``)."""
    current = _config
    if debug is not None and debug != current.debug:
        # Derived switches follow the new debug value unless given explicitly.
        current = FrameworkConfig(debug=debug)
    if debug is not None and swallow_tool_exceptions is None:
        # As in 0.3.0: naming the mode always resets exception handling to that mode's.
        swallow_tool_exceptions = not debug
    new = replace(
        current,
        swallow_tool_exceptions=(
            swallow_tool_exceptions
            if swallow_tool_exceptions is not None
            else current.swallow_tool_exceptions
        ),
        log_level=log_level if log_level is not None else current.log_level,
    )
    set_config(new)
    return new


def reset_config() -> FrameworkConfig:
    """Back to what the environment says (useful in tests)."""
    set_config(FrameworkConfig.from_env())
    return _config


def is_debug() -> bool:
    return _config.debug


def should_swallow_exceptions() -> bool:
    return bool(_config.swallow_tool_exceptions)


_apply_logging(_config)
