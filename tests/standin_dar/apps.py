from django.apps import AppConfig


class StandinAgentRuntimeConfig(AppConfig):
    name = "tests.standin_dar"
    label = "django_agent_runtime"
    verbose_name = "django_agent_runtime (stand-in)"
    default_auto_field = "django.db.models.BigAutoField"
