"""The app's settings: one namespaced dict, ``settings.AGENT_RUNTIME_FRAMEWORK``.

Every key has a documented default here; read them with ``app_settings().KEY``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["DEFAULTS", "AppSettings", "app_settings"]

DEFAULTS: dict[str, Any] = {
    # Dotted paths of runtimes (adapter instances, classes, or factories) to register.
    "RUNTIMES": [],
    # The model: {"PROVIDER": "openai"|"anthropic"|"azure"|"standin", "MODEL": ..., ...}.
    "LLM": None,
    # Use the offline stand-in model when no provider is configured (demos only).
    "ALLOW_OFFLINE_STANDIN": False,
    # Seconds a turn waits for another turn on the same conversation before JourneyBusy.
    "BUSY_WAIT_SECONDS": 10.0,
    # Seconds a claim lives without renewal. A running turn renews it every third of this
    # (a heartbeat), so it can be short: a crashed worker's claim expires this soon.
    "LEASE_SECONDS": 30.0,
    # How a posted message is played: "inline" (in the request; the demo and tests) or
    # "queued" (stored, then played by a worker of QUEUE; the API answers 202).
    "TURNS": "inline",
    # The engine of queued turns: "tasks" (Django's tasks framework: ``django.tasks`` or the
    # django-tasks backport, e.g. with the django-tasks-db database worker), "celery", or
    # the dotted path of a callable ``(conversation_id: str, delay: float | None) -> None``.
    "QUEUE": "tasks",
    # Live events across web processes: "auto" (PostgreSQL LISTEN/NOTIFY when TURNS is
    # "queued" on PostgreSQL, else polling), "postgres", "poll", or a redis:// URL.
    "LIVE_EVENTS": "auto",
    # Allow anonymous (session-bound) conversations over HTTP.
    "ALLOW_ANONYMOUS": False,
    # HTTP body size limit (bytes) and user message length limit (characters).
    "MAX_BODY_BYTES": 64 * 1024,
    "MAX_MESSAGE_CHARS": 4000,
    # Event payload strings longer than this are truncated with a marker.
    "MAX_EVENT_PAYLOAD_CHARS": 4000,
    # History messages a turn reads at most (None: all); of those the model gets the newest
    # that fit the journey's history_token_budget. The stored history stays complete.
    "MAX_HISTORY_MESSAGES": 200,
    # Threads for database work from async code (each has its own connection).
    "DB_THREADS": 8,
    # PostgreSQL (psycopg 3): prepare the turn path's statements on the server. Turn off
    # behind a transaction-pooling proxy that does not support prepared statements.
    "PREPARED_STATEMENTS": True,
    # OpenTelemetry spans for turns, model calls and tool calls (needs the ``otel`` extra).
    # Off: the tracing hooks are not even composed.
    "TRACING": False,
    # A redactor (``str -> str``, or its dotted path) applied to event payloads before they
    # are stored, e.g. "agent_runtime_framework.django.store.redaction.default_redactor".
    "REDACT": None,
    # Also redact messages as they are stored (the model then reads the redacted history).
    "REDACT_MESSAGES": False,
    # People in the loop: offer the ``talk_to_a_person`` tool to journeys that do not say
    # (``JourneyConfig.offer_escalation`` / the class attribute decide first).
    "OFFER_ESCALATION": False,
    # What the user is told while the conversation waits for, or is with, a person.
    "HANDOFF_REPLY": ("I've passed this conversation to a person. They will answer you here."),
    # Prices per model, per million tokens: {"gpt-4o-mini": {"input": 0.15, "output": 0.60}}.
    # The admin shows each turn's, journey's and agent's cost from them (usage.py).
    "PRICES": {},
    # Per-user limits on HTTP turns: {"turns": 100, "tokens": 200000, "period": 86400}
    # (either limit may be left out; period in seconds). Over a limit: HTTP 429.
    "LIMITS": None,
}


class AppSettings:
    """Attribute access to the settings dict merged over ``DEFAULTS``."""

    def __init__(self, overrides: dict[str, Any]) -> None:
        unknown = set(overrides) - set(DEFAULTS)
        self.unknown = sorted(unknown)
        self._values = {**DEFAULTS, **overrides}

    def __getattr__(self, name: str) -> Any:
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(f"AGENT_RUNTIME_FRAMEWORK has no setting {name!r}") from None


def app_settings() -> AppSettings:
    from django.conf import settings

    return AppSettings(dict(getattr(settings, "AGENT_RUNTIME_FRAMEWORK", None) or {}))
