"""LLM providers: the client protocol, OpenAI/Azure/compatible and Anthropic clients, the
retry policy, the offline stand-in and client resolution.

Importing this package never imports a provider SDK: ``OpenAIClient`` and
``AnthropicClient`` import theirs when constructed, so the core works without them.
"""

from __future__ import annotations

from .anthropic_client import AnthropicClient
from .base import (
    LLMAuthenticationError,
    LLMBadRequestError,
    LLMClient,
    LLMConnectionError,
    LLMError,
    LLMRateLimitError,
    LLMResponse,
    LLMServerError,
    LLMStreamEvent,
    LLMStreamInterruptedError,
    LLMTimeoutError,
    MissingLLMDependencyError,
    NoLLMConfiguredError,
    StreamingLLMClient,
    normalize_usage,
)
from .openai_client import OpenAIClient
from .resolve import build_llm_client, get_llm_client, get_llm_client_or_standin
from .retry import RetryPolicy, parse_retry_after
from .standin import OfflineStandInLLM

__all__ = [
    "AnthropicClient",
    "LLMAuthenticationError",
    "LLMBadRequestError",
    "LLMClient",
    "LLMConnectionError",
    "LLMError",
    "LLMRateLimitError",
    "LLMResponse",
    "LLMServerError",
    "LLMStreamEvent",
    "LLMStreamInterruptedError",
    "LLMTimeoutError",
    "MissingLLMDependencyError",
    "NoLLMConfiguredError",
    "OfflineStandInLLM",
    "OpenAIClient",
    "RetryPolicy",
    "StreamingLLMClient",
    "build_llm_client",
    "get_llm_client",
    "get_llm_client_or_standin",
    "normalize_usage",
    "parse_retry_after",
]
