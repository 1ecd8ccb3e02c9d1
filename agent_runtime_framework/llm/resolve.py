"""Find the LLM client to use when none was passed explicitly.

Order, first match wins: the explicit client; Django settings
(``AGENT_RUNTIME_FRAMEWORK["LLM"]``) when Django is configured; the environment
(``AGENT_RUNTIME_LLM``, then ``OPENAI_API_KEY``, then ``ANTHROPIC_API_KEY``); finally
``agent_runtime_core.llm.get_llm_client`` when that optional package is installed. If all
of that comes up empty, ``NoLLMConfiguredError`` says exactly how to configure one.
"""

from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Mapping
from typing import Any

from .base import LLMClient, NoLLMConfiguredError
from .retry import RetryPolicy
from .standin import OfflineStandInLLM

__all__ = [
    "DEFAULT_ANTHROPIC_MODEL",
    "DEFAULT_OPENAI_MODEL",
    "HOW_TO_CONFIGURE",
    "build_llm_client",
    "get_llm_client",
    "get_llm_client_or_standin",
]

DEFAULT_OPENAI_MODEL = "gpt-4o-mini"
DEFAULT_ANTHROPIC_MODEL = "claude-sonnet-4-5"
_OLLAMA_BASE_URL = "http://localhost:11434/v1"

logger = logging.getLogger("agent_runtime_framework.llm")

_PROVIDER_ALIASES = {
    "openai": "openai",
    "openai-compatible": "openai",
    "ollama": "ollama",
    "vllm": "openai",
    "azure": "azure",
    "azure-openai": "azure",
    "anthropic": "anthropic",
    "claude": "anthropic",
    "standin": "standin",
    "stand-in": "standin",
    "offline": "standin",
}

#: One line on purpose: the HTTP API's 503 body (``llm_not_configured``) carries the first
#: line of the error, so everything a newcomer needs to act on has to be on it.
HOW_TO_CONFIGURE = (
    "No LLM client is configured. Configure one of these: "
    '(1) pass it explicitly, e.g. MyAgent(llm_client=OpenAIClient("gpt-4o-mini")); '
    '(2) Django settings: AGENT_RUNTIME_FRAMEWORK = {"LLM": {"PROVIDER": "openai", '
    '"MODEL": "gpt-4o-mini", "API_KEY": "sk-...", "BASE_URL": None, "OPTIONS": '
    '{"timeout": 60}}} (PROVIDER: "openai", "azure", "anthropic", "ollama" or "standin"); '
    "(3) environment: OPENAI_API_KEY=sk-... (optional OPENAI_MODEL, default gpt-4o-mini; "
    "OPENAI_BASE_URL for Ollama/vLLM/other compatible servers), or "
    "ANTHROPIC_API_KEY=sk-ant-... (optional ANTHROPIC_MODEL), or "
    'AGENT_RUNTIME_LLM="openai:gpt-4o-mini" / "anthropic:claude-sonnet-4-5" / '
    '"ollama:llama3.1" / "standin"; '
    "(4) no model at all: OfflineStandInLLM() or AGENT_RUNTIME_LLM=standin (a rule-based "
    "stand-in for demos and tests; it is not an AI). "
    "The provider SDKs are optional: pip install agent-runtime-framework[openai] or "
    "[anthropic]."
)


def _not_configured(reason: str | None = None) -> NoLLMConfiguredError:
    """The error, on one line (see ``HOW_TO_CONFIGURE``); ``.reason`` is the specific cause."""
    message = HOW_TO_CONFIGURE if reason is None else f"{reason} {HOW_TO_CONFIGURE}"
    error = NoLLMConfiguredError(message)
    error.reason = reason  # type: ignore[attr-defined]
    return error


def _retry_option(options: dict[str, Any]) -> None:
    """Accept ``"retry": {"max_retries": 5, ...}`` in settings as a ``RetryPolicy``."""
    retry = options.get("retry")
    if isinstance(retry, Mapping):
        options["retry"] = RetryPolicy(**{str(key).lower(): value for key, value in retry.items()})


def build_llm_client(
    provider: str,
    model: str | None = None,
    *,
    api_key: str | None = None,
    base_url: str | None = None,
    **options: Any,
) -> LLMClient:
    """A client for ``provider`` ("openai", "azure", "anthropic", "ollama", "standin").

    ``options`` go to the client's constructor (``timeout``, ``default_params``,
    ``max_tokens``, ``retry``, Azure's ``azure_endpoint``/``api_version``...).
    """
    kind = _PROVIDER_ALIASES.get(provider.strip().lower())
    if kind is None:
        raise NoLLMConfiguredError(
            f"Unknown LLM provider {provider!r}; use one of: openai, azure, anthropic, "
            "ollama, standin."
        )
    options = dict(options)
    _retry_option(options)
    if kind == "standin":
        return OfflineStandInLLM(latency=float(options.get("latency") or 0.0))
    if kind == "anthropic":
        from .anthropic_client import AnthropicClient

        return AnthropicClient(
            model or DEFAULT_ANTHROPIC_MODEL, api_key=api_key, base_url=base_url, **options
        )
    from .openai_client import OpenAIClient

    if kind == "azure":
        deployment = model or options.pop("deployment", None)
        if not deployment:
            raise _not_configured("The azure provider needs MODEL (the deployment name).")
        azure_endpoint = options.pop("azure_endpoint", None) or base_url
        return OpenAIClient.azure(
            deployment, azure_endpoint=azure_endpoint, api_key=api_key, **options
        )
    if kind == "ollama":
        base_url = base_url or os.environ.get("OLLAMA_BASE_URL") or _OLLAMA_BASE_URL
        api_key = api_key or "ollama"  # Ollama ignores the key; the SDK insists on one.
    elif api_key is None and base_url is not None:
        api_key = os.environ.get("OPENAI_API_KEY") or "not-needed"
    if not model:
        raise _not_configured(f"The {provider} provider needs a model name.")
    return OpenAIClient(model, api_key=api_key, base_url=base_url, **options)


def _from_selector(selector: str) -> LLMClient:
    """A client from ``"provider:model"`` with keys and URLs from the usual variables."""
    provider, _, model_text = selector.strip().partition(":")
    kind = _PROVIDER_ALIASES.get(provider.strip().lower())
    model = model_text.strip() or None
    env = os.environ
    if kind == "openai":
        api_key = env.get("OPENAI_API_KEY")
        base_url = env.get("OPENAI_BASE_URL")
        if not api_key and not base_url:
            raise _not_configured(
                f"AGENT_RUNTIME_LLM={selector!r} selects OpenAI but OPENAI_API_KEY is not set."
            )
        return build_llm_client(
            "openai",
            model or env.get("OPENAI_MODEL") or DEFAULT_OPENAI_MODEL,
            api_key=api_key,
            base_url=base_url,
        )
    if kind == "anthropic":
        api_key = env.get("ANTHROPIC_API_KEY")
        if not api_key:
            raise _not_configured(
                f"AGENT_RUNTIME_LLM={selector!r} selects Anthropic but ANTHROPIC_API_KEY is "
                "not set."
            )
        return build_llm_client(
            "anthropic",
            model or env.get("ANTHROPIC_MODEL") or DEFAULT_ANTHROPIC_MODEL,
            api_key=api_key,
            base_url=env.get("ANTHROPIC_BASE_URL"),
        )
    if kind == "azure":
        return build_llm_client(
            "azure",
            model or env.get("AZURE_OPENAI_DEPLOYMENT"),
            api_key=env.get("AZURE_OPENAI_API_KEY"),
            azure_endpoint=env.get("AZURE_OPENAI_ENDPOINT"),
            api_version=env.get("OPENAI_API_VERSION") or env.get("AZURE_OPENAI_API_VERSION"),
        )
    if kind == "ollama":
        return build_llm_client("ollama", model or env.get("OLLAMA_MODEL") or "llama3.1")
    if kind == "standin":
        # AGENT_RUNTIME_STANDIN_LATENCY: seconds per call, to load-test without a provider.
        return OfflineStandInLLM(latency=float(env.get("AGENT_RUNTIME_STANDIN_LATENCY") or 0))
    raise _not_configured(f"AGENT_RUNTIME_LLM={selector!r}: unknown provider {provider!r}.")


def _django_llm_setting() -> Any:
    """``settings.AGENT_RUNTIME_FRAMEWORK["LLM"]`` if Django is installed and configured."""
    try:
        from django.conf import settings
    except ImportError:
        return None
    if not settings.configured and not os.environ.get("DJANGO_SETTINGS_MODULE"):
        return None
    try:
        config = getattr(settings, "AGENT_RUNTIME_FRAMEWORK", None)
    except Exception:  # ImproperlyConfigured, or a settings module that fails to import
        return None
    if not isinstance(config, Mapping):
        return None
    return config.get("LLM")


def _from_setting(value: Any) -> LLMClient | None:
    """A client from the settings value: a dict, a selector string, a dotted path or a client."""
    if value is None:
        return None
    if isinstance(value, Mapping):
        provider = value.get("PROVIDER")
        if not provider:
            raise _not_configured('AGENT_RUNTIME_FRAMEWORK["LLM"] has no "PROVIDER".')
        options = dict(value.get("OPTIONS") or {})
        return build_llm_client(
            str(provider),
            value.get("MODEL"),
            api_key=value.get("API_KEY"),
            base_url=value.get("BASE_URL"),
            **options,
        )
    if isinstance(value, str):
        head = value.partition(":")[0].strip().lower()
        if ":" in value or head in _PROVIDER_ALIASES:
            return _from_selector(value)
        module_name, _, attribute = value.rpartition(".")
        target = getattr(importlib.import_module(module_name), attribute)
        if isinstance(target, type) or (callable(target) and not hasattr(target, "generate")):
            return target()  # a client class or a factory function
        return target  # a client instance
    if hasattr(value, "generate"):
        return value
    raise _not_configured(f'AGENT_RUNTIME_FRAMEWORK["LLM"] has an unsupported value: {value!r}')


def _from_environment() -> LLMClient | None:
    env = os.environ
    selector = env.get("AGENT_RUNTIME_LLM")
    if selector:
        return _from_selector(selector)
    if env.get("OPENAI_API_KEY"):
        return build_llm_client(
            "openai",
            env.get("OPENAI_MODEL") or DEFAULT_OPENAI_MODEL,
            api_key=env["OPENAI_API_KEY"],
            base_url=env.get("OPENAI_BASE_URL"),
        )
    if env.get("ANTHROPIC_API_KEY"):
        return build_llm_client(
            "anthropic",
            env.get("ANTHROPIC_MODEL") or DEFAULT_ANTHROPIC_MODEL,
            api_key=env["ANTHROPIC_API_KEY"],
            base_url=env.get("ANTHROPIC_BASE_URL"),
        )
    return None


def _from_agent_runtime_core() -> tuple[LLMClient | None, str | None]:
    """agent_runtime_core's client if that optional package is installed and configured."""
    try:
        core_llm = importlib.import_module("agent_runtime_core.llm")
    except ImportError:
        return None, None
    factory = getattr(core_llm, "get_llm_client", None)
    if factory is None:
        return None, None
    try:
        return factory(), None
    except Exception as exc:  # its own "not configured" error: report it, do not crash
        return None, f"agent_runtime_core.llm.get_llm_client() failed: {exc}"


def get_llm_client(explicit: Any = None) -> LLMClient:
    """The client to use: ``explicit`` if given, else settings, environment, agent_runtime_core.

    Raises ``NoLLMConfiguredError`` (with configuration instructions) if none is found,
    and ``MissingLLMDependencyError`` (naming the pip extra) if the chosen provider's SDK
    is not installed.
    """
    if explicit is not None:
        return explicit
    client = _from_setting(_django_llm_setting())
    if client is not None:
        return client
    client = _from_environment()
    if client is not None:
        return client
    client, problem = _from_agent_runtime_core()
    if client is not None:
        return client
    raise _not_configured(problem)


def get_llm_client_or_standin(explicit: Any = None) -> LLMClient:
    """Like ``get_llm_client`` but falls back to ``OfflineStandInLLM`` when none is configured.

    For the example project and demos: check ``client.is_offline_standin`` to tell users
    that answers come from rules, not a model.
    """
    try:
        return get_llm_client(explicit)
    except NoLLMConfiguredError as exc:
        reason = getattr(exc, "reason", None) or "none is configured"
        logger.warning(
            "No usable LLM client (%s); using OfflineStandInLLM, a rule-based stand-in "
            "that is not an AI.",
            reason,
        )
        return OfflineStandInLLM()
