"""AppConfig of the example journeys: registers them with the app's runtime registry."""

from __future__ import annotations

from django.apps import AppConfig


class JourneysConfig(AppConfig):
    name = "example_project.journeys"
    label = "example_journeys"
    verbose_name = "Example journeys"

    def ready(self) -> None:
        # ready(), not import time: Django runs it once per process with the app
        # registry complete, so the agents are registered exactly once.
        from agent_runtime_framework.django.host.registry import register_runtime

        from . import build_agents

        for key, agent in build_agents().items():
            register_runtime(agent, key=key)
