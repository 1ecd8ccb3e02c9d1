"""The chat page at the project's root."""

from django.urls import path

from . import views

app_name = "example_chat"

urlpatterns = [path("", views.chat_page, name="chat")]
