"""Tracing in the Django host: ``AGENT_RUNTIME_FRAMEWORK["TRACING"]`` turns it on.

When it is on, ``run_turn`` plays each turn inside ``tracing.turn_span`` and the host and
the adapter compose ``OpenTelemetryHooks`` into the run's hooks. When it is off (the
default), none of this is composed: a turn pays one cached flag read.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from django.core.signals import setting_changed

from ...executor.hooks import ExecutorHooks

if TYPE_CHECKING:
    from .turns import TurnResult

__all__ = ["traced_turn", "tracing_enabled", "tracing_hooks"]

logger = logging.getLogger("agent_runtime_framework.django")


_flag: list[bool] = []


def tracing_enabled() -> bool:
    """Whether ``TRACING`` is on and OpenTelemetry importable (read once per settings change)."""
    if not _flag:
        from ...tracing import otel_available
        from ..conf import app_settings

        on = bool(app_settings().TRACING)
        if on and not otel_available():
            logger.warning(
                "AGENT_RUNTIME_FRAMEWORK['TRACING'] is on but OpenTelemetry is not installed "
                "(pip install 'agent-runtime-framework[otel]'); no spans are made"
            )
            on = False
        _flag.append(on)
    return _flag[0]


def tracing_hooks(runtime: Any = None) -> ExecutorHooks | None:
    """``OpenTelemetryHooks`` for a run of ``runtime`` (its model), or None when tracing is off."""
    if not tracing_enabled():
        return None
    from ...tracing import OpenTelemetryHooks

    return OpenTelemetryHooks(getattr(runtime, "llm_client", None))


async def traced_turn(
    play: Callable[..., Awaitable[TurnResult]],
    runtime: Any,
    key: str,
    cid: Any,
    message: str,
    metadata: dict[str, Any],
    run_id: Any,
) -> TurnResult:
    """``play(runtime, key, cid, message, metadata, run_id)`` inside the turn's span."""
    from ...tracing import turn_span

    with turn_span(key, cid, run_id) as span:
        turn = await play(runtime, key, cid, message, metadata, run_id)
        span.set_attribute("arf.journey", turn.journey)
        if turn.step is not None:
            span.set_attribute("arf.step", str(turn.step))
        span.set_attribute("arf.complete", turn.complete)
        span.set_attribute("arf.stopped_reason", turn.stopped_reason)
        usage = turn.usage
        if usage:
            span.set_attribute("gen_ai.usage.input_tokens", int(usage.get("prompt_tokens", 0)))
            span.set_attribute("gen_ai.usage.output_tokens", int(usage.get("completion_tokens", 0)))
        return turn


def _forget(*, setting: str = "", **kwargs: Any) -> None:
    if setting == "AGENT_RUNTIME_FRAMEWORK":
        _flag.clear()


setting_changed.connect(_forget)
