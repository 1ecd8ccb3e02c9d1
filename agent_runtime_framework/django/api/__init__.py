"""The HTTP API, declared once with django-ninja: schemas, validation, errors, OpenAPI.

``endpoints.api`` is the ``NinjaAPI``; ``urls.py`` includes its patterns under the
``agent_runtime`` namespace; ``openapi.json`` is generated from the same declarations.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ERROR_CODES", "ApiError", "api", "openapi_document", "url_patterns"]


def __getattr__(name: str) -> Any:
    # Lazy: agui.py imports this package's errors and access modules, and the endpoints
    # import agui.py.
    if name in ("api", "openapi_document", "url_patterns"):
        from . import endpoints

        return getattr(endpoints, name)
    if name in ("ERROR_CODES", "ApiError"):
        from . import errors

        return getattr(errors, name)
    raise AttributeError(name)
