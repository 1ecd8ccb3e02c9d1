"""ASGI entry point: ``uvicorn example_project.asgi:application``.

The example serves its own static files (the chat page's CSS/JS and the admin's) through
Django's ``ASGIStaticFilesHandler``, so one uvicorn command is all a newcomer runs. In a
real deployment, collect static files and let a web server or CDN serve them: set
``SERVE_STATIC=0``.
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "example_project.settings")

application = get_asgi_application()

if os.environ.get("SERVE_STATIC", "1").strip().lower() not in ("0", "false", "no", "off"):
    from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler

    application = ASGIStaticFilesHandler(application)
