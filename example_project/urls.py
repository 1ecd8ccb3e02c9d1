"""URLs: the chat page at ``/``, the JSON API under ``/api/``, the admin under ``/admin/``."""

from django.conf import settings
from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    # The chat page's script calls the API under this prefix (settings.CHAT_API_PREFIX).
    path(settings.CHAT_API_PREFIX, include("agent_runtime_framework.django.urls")),
    path("admin/", admin.site.urls),
    path("", include("example_project.chat.urls")),
]
