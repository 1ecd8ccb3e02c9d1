"""AppConfig of the example chat page."""

from django.apps import AppConfig


class ChatConfig(AppConfig):
    name = "example_project.chat"
    label = "example_chat"
    verbose_name = "Example chat page"
