"""URLs of the HTTP API; include them under a prefix of your choice:

path("api/", include("agent_runtime_framework.django.urls"))

The API is declared with django-ninja in ``api/`` (schemas, validation, errors and the
``openapi.json`` document come from the same declarations).
"""

from __future__ import annotations

from .api.endpoints import url_patterns

__all__ = ["app_name", "urlpatterns"]

app_name = "agent_runtime"

urlpatterns = list(url_patterns())
