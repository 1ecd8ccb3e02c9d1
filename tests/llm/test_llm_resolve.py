"""get_llm_client: explicit client, Django settings, environment, agent_runtime_core."""

from __future__ import annotations

import sys
import types

import pytest
from django.test import override_settings

from agent_runtime_framework.llm import (
    AnthropicClient,
    MissingLLMDependencyError,
    NoLLMConfiguredError,
    OfflineStandInLLM,
    OpenAIClient,
    RetryPolicy,
    build_llm_client,
    get_llm_client,
    get_llm_client_or_standin,
)

ENV_VARS = [
    "AGENT_RUNTIME_LLM",
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "OPENAI_MODEL",
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_BASE_URL",
    "ANTHROPIC_MODEL",
    "AZURE_OPENAI_API_KEY",
    "AZURE_OPENAI_ENDPOINT",
    "OPENAI_API_VERSION",
    "OLLAMA_BASE_URL",
]


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    # agent_runtime_core is optional and absent here; make sure a test never sees one.
    monkeypatch.setitem(sys.modules, "agent_runtime_core", None)


def test_explicit_client_wins(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env")
    mine = OfflineStandInLLM()
    assert get_llm_client(mine) is mine


def test_nothing_configured_explains_every_option():
    with pytest.raises(NoLLMConfiguredError) as info:
        get_llm_client()
    message = str(info.value)
    for hint in (
        "llm_client=",
        'AGENT_RUNTIME_FRAMEWORK = {"LLM"',
        "OPENAI_API_KEY",
        "ANTHROPIC_API_KEY",
        "AGENT_RUNTIME_LLM",
        "OfflineStandInLLM",
        "pip install agent-runtime-framework[openai]",
    ):
        assert hint in message


def test_or_standin_falls_back():
    client = get_llm_client_or_standin()
    assert isinstance(client, OfflineStandInLLM) and client.is_offline_standin


def test_openai_key_from_environment(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env")
    client = get_llm_client()
    assert isinstance(client, OpenAIClient) and client.model == "gpt-4o-mini"
    assert client.sdk_client.api_key == "sk-env"
    monkeypatch.setenv("OPENAI_MODEL", "gpt-4.1")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    client = get_llm_client()
    assert client.model == "gpt-4.1"
    assert str(client.sdk_client.base_url).startswith("http://127.0.0.1:9/v1")


def test_anthropic_key_from_environment(monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-env")
    monkeypatch.setenv("ANTHROPIC_MODEL", "claude-haiku-4-5")
    client = get_llm_client()
    assert isinstance(client, AnthropicClient) and client.model == "claude-haiku-4-5"


def test_selector_variable(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-env")
    monkeypatch.setenv("AGENT_RUNTIME_LLM", "anthropic:claude-sonnet-4-5")
    client = get_llm_client()
    assert isinstance(client, AnthropicClient) and client.model == "claude-sonnet-4-5"
    monkeypatch.setenv("AGENT_RUNTIME_LLM", "openai:gpt-4o")
    assert get_llm_client().model == "gpt-4o"
    monkeypatch.setenv("AGENT_RUNTIME_LLM", "standin")
    assert isinstance(get_llm_client(), OfflineStandInLLM)


def test_selector_without_key_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("AGENT_RUNTIME_LLM", "anthropic:claude-sonnet-4-5")
    with pytest.raises(NoLLMConfiguredError, match="ANTHROPIC_API_KEY is not set"):
        get_llm_client()
    monkeypatch.setenv("AGENT_RUNTIME_LLM", "mystery:model")
    with pytest.raises(NoLLMConfiguredError, match="unknown provider 'mystery'"):
        get_llm_client()


def test_ollama_selector_defaults_to_local_server(monkeypatch):
    monkeypatch.setenv("AGENT_RUNTIME_LLM", "ollama:llama3.2")
    client = get_llm_client()
    assert isinstance(client, OpenAIClient) and client.model == "llama3.2"
    assert str(client.sdk_client.base_url).startswith("http://localhost:11434/v1")


def test_django_settings_win_over_environment(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env")
    llm = {
        "PROVIDER": "anthropic",
        "MODEL": "claude-opus-4-1",
        "API_KEY": "sk-ant-settings",
        "BASE_URL": "http://127.0.0.1:9",
        "OPTIONS": {"timeout": 12.5, "max_tokens": 2048, "retry": {"max_retries": 5}},
    }
    with override_settings(AGENT_RUNTIME_FRAMEWORK={"LLM": llm}):
        client = get_llm_client()
    assert isinstance(client, AnthropicClient)
    assert (
        client.model == "claude-opus-4-1" and client.max_tokens == 2048 and client.timeout == 12.5
    )
    assert client.retry == RetryPolicy(max_retries=5)
    assert str(client.sdk_client.base_url).startswith("http://127.0.0.1:9")


def test_django_settings_openai_compatible_and_standin():
    llm = {"PROVIDER": "openai", "MODEL": "qwen2.5", "BASE_URL": "http://127.0.0.1:8000/v1"}
    with override_settings(AGENT_RUNTIME_FRAMEWORK={"LLM": llm}):
        client = get_llm_client()
    assert isinstance(client, OpenAIClient) and client.model == "qwen2.5"
    with override_settings(AGENT_RUNTIME_FRAMEWORK={"LLM": {"PROVIDER": "standin"}}):
        assert isinstance(get_llm_client(), OfflineStandInLLM)
    with override_settings(AGENT_RUNTIME_FRAMEWORK={"LLM": "standin"}):
        assert isinstance(get_llm_client(), OfflineStandInLLM)


def test_django_settings_dotted_path(monkeypatch):
    path = "agent_runtime_framework.llm.standin.OfflineStandInLLM"
    with override_settings(AGENT_RUNTIME_FRAMEWORK={"LLM": path}):
        assert isinstance(get_llm_client(), OfflineStandInLLM)
    factory = types.ModuleType("llm_factory_for_tests")
    made = OfflineStandInLLM()
    factory.make = lambda: made  # type: ignore[attr-defined]
    factory.instance = made  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "llm_factory_for_tests", factory)
    with override_settings(AGENT_RUNTIME_FRAMEWORK={"LLM": "llm_factory_for_tests.make"}):
        assert get_llm_client() is made
    with override_settings(AGENT_RUNTIME_FRAMEWORK={"LLM": "llm_factory_for_tests.instance"}):
        assert get_llm_client() is made


def test_django_settings_azure():
    llm = {
        "PROVIDER": "azure",
        "MODEL": "my-gpt4o-deployment",
        "API_KEY": "azure-key",
        "OPTIONS": {
            "azure_endpoint": "https://example.openai.azure.com",
            "api_version": "2024-10-21",
        },
    }
    with override_settings(AGENT_RUNTIME_FRAMEWORK={"LLM": llm}):
        client = get_llm_client()
    assert isinstance(client, OpenAIClient) and client.provider == "azure"
    assert "my-gpt4o-deployment" in str(client.sdk_client.base_url)


def test_settings_without_provider_is_an_error():
    with (
        override_settings(AGENT_RUNTIME_FRAMEWORK={"LLM": {"MODEL": "x"}}),
        pytest.raises(NoLLMConfiguredError, match="PROVIDER"),
    ):
        get_llm_client()


def test_agent_runtime_core_is_the_last_resort(monkeypatch):
    sentinel = OfflineStandInLLM()
    package = types.ModuleType("agent_runtime_core")
    llm_module = types.ModuleType("agent_runtime_core.llm")
    llm_module.get_llm_client = lambda: sentinel  # type: ignore[attr-defined]
    package.llm = llm_module  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "agent_runtime_core", package)
    monkeypatch.setitem(sys.modules, "agent_runtime_core.llm", llm_module)
    assert get_llm_client() is sentinel
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env")
    assert isinstance(get_llm_client(), OpenAIClient)


def test_agent_runtime_core_failure_is_reported(monkeypatch):
    def broken() -> None:
        raise RuntimeError("no provider configured in agent_runtime_core")

    package = types.ModuleType("agent_runtime_core")
    llm_module = types.ModuleType("agent_runtime_core.llm")
    llm_module.get_llm_client = broken  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "agent_runtime_core", package)
    monkeypatch.setitem(sys.modules, "agent_runtime_core.llm", llm_module)
    with pytest.raises(NoLLMConfiguredError, match="no provider configured in agent_runtime_core"):
        get_llm_client()


def test_missing_sdk_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "openai", None)
    monkeypatch.setitem(sys.modules, "anthropic", None)
    with pytest.raises(
        MissingLLMDependencyError, match=r"pip install agent-runtime-framework\[openai\]"
    ):
        build_llm_client("openai", "gpt-4o-mini", api_key="sk")
    with pytest.raises(
        MissingLLMDependencyError, match=r"pip install agent-runtime-framework\[anthropic\]"
    ):
        AnthropicClient("claude-sonnet-4-5", api_key="k")
    assert isinstance(build_llm_client("standin"), OfflineStandInLLM)


def test_package_imports_without_sdks():
    code = (
        "import sys\n"
        "sys.modules['openai'] = None\n"
        "sys.modules['anthropic'] = None\n"
        "import agent_runtime_framework.llm as llm\n"
        "assert llm.OfflineStandInLLM().is_offline_standin\n"
        "assert 'openai' not in [m for m in sys.modules if sys.modules[m] is not None]\n"
    )
    import subprocess

    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
