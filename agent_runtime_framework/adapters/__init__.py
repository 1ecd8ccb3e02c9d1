"""Adapters that run journeys on other hosts (django_agent_runtime).

Importing this package does not import Django: the adapter loads the Django parts when a
run starts.
"""

from .django_runtime import (
    DjangoRuntimeAdapter,
    DjangoStateStore,
    RunErrorInfo,
    RunResult,
    create_django_runtime,
    register_with_agent_runtime_core,
)

__all__ = [
    "DjangoRuntimeAdapter",
    "DjangoStateStore",
    "RunErrorInfo",
    "RunResult",
    "create_django_runtime",
    "register_with_agent_runtime_core",
]
