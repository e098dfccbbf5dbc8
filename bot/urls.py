"""Mounted at /telegram/ by the project's URL map."""

from __future__ import annotations

from django.urls import path

from . import views

app_name = "bot"

urlpatterns = [
    path("webhook/", views.webhook, name="webhook"),
]
