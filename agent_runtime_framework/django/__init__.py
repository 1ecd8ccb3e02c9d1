"""The Django app: journeys, messages and events in the database, admin, HTTP host.

Add ``"agent_runtime_framework.django"`` to ``INSTALLED_APPS`` (app label
``agent_runtime``). Nothing here is imported by the core.
"""
