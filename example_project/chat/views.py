"""The chat page view: the page is static; the conversation happens over the JSON API."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import get_script_prefix, reverse
from django.views.decorators.csrf import ensure_csrf_cookie
from django.views.decorators.http import require_safe

__all__ = ["chat_page"]


@require_safe
@ensure_csrf_cookie
def chat_page(request: HttpRequest) -> HttpResponse:
    """Render the page; the CSRF cookie is set so the page's script can post to the API."""
    prefix: str = getattr(settings, "CHAT_API_PREFIX", "api/")
    return render(
        request,
        "chat/index.html",
        {"api_base": get_script_prefix() + prefix, "admin_url": reverse("admin:index")},
    )
