"""URLs of the HTTP API; include them under a prefix of your choice:

path("api/", include("agent_runtime_framework.django.urls"))
"""

from __future__ import annotations

from django.urls import path

from . import agui, people_views, views

__all__ = ["app_name", "urlpatterns"]

app_name = "agent_runtime"

urlpatterns = [
    path("agents", views.agents_view, name="agents"),
    path("conversations", views.conversations_view, name="conversations"),
    path(
        "conversations/<str:conversation_id>",
        views.conversation_detail_view,
        name="conversation",
    ),
    path(
        "conversations/<str:conversation_id>/messages",
        views.messages_view,
        name="messages",
    ),
    path(
        "conversations/<str:conversation_id>/handoff",
        people_views.handoff_view,
        name="handoff",
    ),
    path(
        "conversations/<str:conversation_id>/approvals/<str:approval_id>",
        people_views.approval_view,
        name="approval",
    ),
    path(
        "conversations/<str:conversation_id>/events",
        views.events_view,
        name="events",
    ),
    path(
        "conversations/<str:conversation_id>/runs/<str:run_id>",
        views.run_view,
        name="run",
    ),
    path("openapi.json", views.openapi_view, name="openapi"),
    # AG-UI protocol (agui.py): any AG-UI front end drives the agent's journey.
    path("ag-ui/<str:agent_key>", agui.agui_view, name="ag-ui"),
]
