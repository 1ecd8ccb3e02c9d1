"""ASGI application of the test project (uvicorn tests.asgi:application).

The framework's handler: Django's chain, with the known middleware hooks on the event loop.
"""

import os

from agent_runtime_framework.django.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")

application = get_asgi_application()
