"""The example project: three insurance journeys, a front desk and a chat page.

Run it with ``python manage.py migrate`` then ``uvicorn example_project.asgi:application``
(or ``python3 run.py demo``, which does both).
"""
