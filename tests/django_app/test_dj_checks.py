"""System checks fire on broken agents and bad settings, and stay quiet on good ones."""

from __future__ import annotations

from collections.abc import Iterator
from enum import Enum
from io import StringIO
from typing import Any

import pytest
from django.core.checks import run_checks
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from agent_runtime_framework import ToolSchema, ToolSchemaBuilder
from agent_runtime_framework.agents.routed import RoutedJourneyAgent
from agent_runtime_framework.django.checks import agent_runtime_checks, check_settings
from agent_runtime_framework.django.host.registry import register_runtime, unregister_runtime
from agent_runtime_framework.router import IntentRouter, RouteDefinition
from tests.journeys import PROMPTS, OnboardingAgent, OnboardingState, OnboardingStep


@pytest.fixture
def register() -> Iterator[Any]:
    keys: list[str] = []

    def add(agent: Any, key: str | None = None) -> Any:
        register_runtime(agent, key)
        keys.append(key or agent.key)
        return agent

    yield add
    for key in keys:
        unregister_runtime(key)


def _ids(messages: list[Any]) -> list[str]:
    return sorted(m.id for m in messages)


# `manage.py check` (call_command("check")) runs Django's own model checks too, and since
# Django 6.0 those ask every database for its features (e.g. SQLite's JSONField support
# opens a cursor), so the tests that run the whole command need database access. Our own
# check (agent_runtime_checks) never touches the database: the other tests call it bare.
manage_py_check = pytest.mark.django_db


class MissingPrompt(OnboardingAgent):
    @property
    def key(self) -> str:
        return "missing-prompt"

    def get_system_prompt(self, state: OnboardingState) -> str:
        prompts = {k: v for k, v in PROMPTS.items() if k != OnboardingStep.COLLECT_EMAIL}
        return prompts[state.step]  # KeyError at collect_email


class EmptyPrompt(OnboardingAgent):
    @property
    def key(self) -> str:
        return "empty-prompt"

    def get_system_prompt(self, state: OnboardingState) -> str:
        return "" if state.step == OnboardingStep.COMPLETE else "ok"


class GhostTool(OnboardingAgent):
    @property
    def key(self) -> str:
        return "ghost-tool"

    def get_tool_schemas(self, state: OnboardingState) -> list[ToolSchema]:
        schemas = super().get_tool_schemas(state)
        if state.step == OnboardingStep.COLLECT_NAME:
            schemas.append(ToolSchemaBuilder("save_phone").description("x").build())
        return schemas


class WrongParams(OnboardingAgent):
    @property
    def key(self) -> str:
        return "wrong-params"

    def get_tool_schemas(self, state: OnboardingState) -> list[ToolSchema]:
        if state.step == OnboardingStep.COLLECT_NAME:
            return [
                ToolSchemaBuilder("save_name")
                .description("x")
                .param("full_name", "string", "name", required=True)
                .build()
            ]
        if state.step == OnboardingStep.COLLECT_EMAIL:
            return [ToolSchemaBuilder("save_email").description("no params").build()]
        return super().get_tool_schemas(state)


@manage_py_check
def test_a_good_agent_passes(register: Any) -> None:
    register(OnboardingAgent())
    assert [m for m in agent_runtime_checks() if m.id.startswith("agent_runtime")] == []
    call_command("check", stdout=StringIO())  # no SystemCheckError


def test_step_without_prompt_is_e001(register: Any) -> None:
    register(MissingPrompt())
    register(EmptyPrompt())
    messages = agent_runtime_checks()
    assert _ids(messages) == ["agent_runtime.E001", "agent_runtime.E001"]
    texts = " ".join(m.msg for m in messages)
    assert "'missing-prompt'" in texts and "collect_email" in texts and "KeyError" in texts
    assert "'empty-prompt'" in texts and "'complete'" in texts
    assert all(m.hint for m in messages)


def test_tool_without_method_is_e002_and_bad_signature_is_e003(register: Any) -> None:
    register(GhostTool())
    register(WrongParams())
    messages = agent_runtime_checks()
    assert _ids(messages) == ["agent_runtime.E002", "agent_runtime.E003", "agent_runtime.E003"]
    texts = [m.msg for m in messages]
    assert any("save_phone" in t for t in texts)
    assert any("does not accept schema parameter(s) full_name" in t for t in texts)
    assert any("requires argument(s) email" in t for t in texts)


def test_duplicate_keys_are_e004_and_key_mismatch_w001(register: Any) -> None:
    class Route(str, Enum):
        ONBOARD = "onboard"

    router = IntentRouter[Route]()
    router.add_route(RouteDefinition(journey=Route.ONBOARD, name="onboard", description="x"))
    register(OnboardingAgent())
    register(RoutedJourneyAgent(router, {Route.ONBOARD: OnboardingAgent()}, key="front"))
    register(EmptyPrompt(), key="alias")
    messages = agent_runtime_checks()
    ids = _ids(messages)
    assert "agent_runtime.E004" in ids
    assert "agent_runtime.W001" in ids
    dup = next(m for m in messages if m.id == "agent_runtime.E004")
    assert "onboarding-agent" in dup.msg and "front -> onboard" in dup.msg


@manage_py_check
def test_manage_py_check_fails_on_broken_agents(register: Any) -> None:
    register(GhostTool())
    with pytest.raises(SystemCheckError, match=r"agent_runtime\.E002"):
        call_command("check", stdout=StringIO(), stderr=StringIO())


def test_our_check_never_touches_the_database(register: Any) -> None:
    """No django_db mark: run through Django's registry (which on Django 6 hands every check
    all database aliases), our check must still work without a database connection."""
    register(GhostTool())
    messages = run_checks(tags=["agent_runtime"])
    assert _ids(messages) == ["agent_runtime.E002"]


def test_settings_checks() -> None:
    assert check_settings({"BUSY_WAIT_SECONDS": 3, "MAX_HISTORY_MESSAGES": None}) == []
    ids = _ids(check_settings({"BUSY_WAIT": 3}))
    assert ids == ["agent_runtime.E005"]
    typo = check_settings({"lease_seconds": 3})[0]
    assert "Did you mean 'LEASE_SECONDS'" in typo.hint
    bad = check_settings(
        {
            "LEASE_SECONDS": 0,
            "DB_THREADS": 1.5,
            "ALLOW_ANONYMOUS": "yes",
            "RUNTIMES": "a.b",
            "MAX_HISTORY_MESSAGES": 0,
        }
    )
    assert _ids(bad) == ["agent_runtime.E006"] * 5
    assert _ids(check_settings(["nope"])) == ["agent_runtime.E006"]


@manage_py_check
def test_settings_check_runs_through_manage_py(settings: Any) -> None:
    settings.AGENT_RUNTIME_FRAMEWORK = {"BUSY_WAIT_SECONDS": -1}
    with pytest.raises(SystemCheckError, match=r"agent_runtime\.E006"):
        call_command("check", stdout=StringIO(), stderr=StringIO())


def test_people_in_the_loop_settings_are_checked() -> None:
    from agent_runtime_framework.django.checks import check_settings

    assert (
        check_settings({"OFFER_ESCALATION": True, "HANDOFF_REPLY": "A person will answer."}) == []
    )
    bad = check_settings({"OFFER_ESCALATION": "yes", "HANDOFF_REPLY": ""})
    assert [m.id for m in bad] == ["agent_runtime.E006", "agent_runtime.E006"]
    assert "OFFER_ESCALATION" in bad[0].msg and "HANDOFF_REPLY" in bad[1].msg
