"""No model configured: the HTTP 503 body carries the whole message, not its first line."""

from __future__ import annotations

import sys

import pytest

from agent_runtime_framework.django.api.errors import map_exception as _map_exception
from agent_runtime_framework.llm import NoLLMConfiguredError, get_llm_client
from agent_runtime_framework.llm.resolve import HOW_TO_CONFIGURE, get_llm_client_or_standin

HINTS = (
    "llm_client=",
    'AGENT_RUNTIME_FRAMEWORK = {"LLM"',
    "OPENAI_API_KEY",
    "ANTHROPIC_API_KEY",
    'AGENT_RUNTIME_LLM="openai:gpt-4o-mini"',
    "OfflineStandInLLM",
    "pip install agent-runtime-framework[openai]",
)


@pytest.fixture(autouse=True)
def no_model(monkeypatch, settings):
    for name in ("AGENT_RUNTIME_LLM", "OPENAI_API_KEY", "OPENAI_BASE_URL", "ANTHROPIC_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setitem(sys.modules, "agent_runtime_core", None)
    settings.AGENT_RUNTIME_FRAMEWORK = {}


def error_of_a_turn() -> NoLLMConfiguredError:
    with pytest.raises(NoLLMConfiguredError) as info:
        get_llm_client()
    return info.value


def test_the_503_body_carries_every_option():
    api_error = _map_exception(error_of_a_turn(), "c1")
    assert api_error is not None and api_error.status == 503
    assert api_error.code == "llm_not_configured"
    assert api_error.message == HOW_TO_CONFIGURE
    for hint in HINTS:
        assert hint in api_error.message


def test_a_specific_reason_comes_first_and_the_options_follow(monkeypatch):
    monkeypatch.setenv("AGENT_RUNTIME_LLM", "anthropic")
    api_error = _map_exception(error_of_a_turn())
    assert api_error is not None
    assert api_error.message.startswith(
        "AGENT_RUNTIME_LLM='anthropic' selects Anthropic but ANTHROPIC_API_KEY is not set. "
    )
    assert all(hint in api_error.message for hint in HINTS)


def test_the_standin_fallback_still_logs_only_the_reason(monkeypatch, caplog):
    monkeypatch.setenv("AGENT_RUNTIME_LLM", "anthropic")
    with caplog.at_level("WARNING", logger="agent_runtime_framework.llm"):
        client = get_llm_client_or_standin()
    assert client.is_offline_standin
    assert "(AGENT_RUNTIME_LLM='anthropic' selects Anthropic" in caplog.text
    assert "Configure one of these" not in caplog.text
