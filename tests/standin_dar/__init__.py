"""A stand-in for django_agent_runtime's Django app: its label and its table names.

Only what a collision could come from: the app label ``django_agent_runtime``, the tables it
creates (``agent_runtime_*``, ``agent_step_*``), the ``db_index`` columns whose index names
Django derives from those table names, and its ``user.agent_conversations`` reverse accessor.
Installed next to ``agent_runtime_framework.django`` by ``settings`` here; used by
``tests/django_app/test_dj_table_names.py`` in a subprocess, never by the main test settings.
"""
