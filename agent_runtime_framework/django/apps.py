"""AppConfig: registers signal receivers, system checks and runtimes from settings."""

from __future__ import annotations

from django.apps import AppConfig


class AgentRuntimeConfig(AppConfig):
    name = "agent_runtime_framework.django"
    label = "agent_runtime"
    verbose_name = "Agent journeys"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import checks  # noqa: F401  (registers system checks)
        from .host.registry import register_runtimes_from_settings

        register_runtimes_from_settings()
