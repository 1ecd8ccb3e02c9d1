"""ASGI entry point: ``uvicorn example_project.asgi:application``.

The example serves its own static files (the chat page's CSS/JS and the admin's) through
Django's ``ASGIStaticFilesHandler``, so one uvicorn command is all a newcomer runs. In a
real deployment, collect static files and let a web server or CDN serve them: set
``SERVE_STATIC=0``.

``agent_runtime_framework.django.asgi.get_asgi_application`` is Django's own, except that
the session, CSRF, authentication, messages and security middleware hooks run on the event
loop when they do no blocking work, instead of one thread hop each.
"""

import os

from agent_runtime_framework.django.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "example_project.settings")

application = get_asgi_application()

if os.environ.get("SERVE_STATIC", "1").strip().lower() not in ("0", "false", "no", "off"):
    from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler

    application = ASGIStaticFilesHandler(application)
