"""URL patterns of the emulator's Django adapter; the project include()s them under /emulator/."""

from __future__ import annotations

from django.urls import path

from emulator import views

app_name = "emulator"

urlpatterns = [
    path("v1/chat/completions", views.chat_completions, name="chat_completions"),
    path("v1/embeddings", views.embeddings, name="embeddings"),
    path("v1/responses", views.responses, name="responses"),
    path("v1/models", views.models, name="models"),
    path("fail/<str:fail_mode>/v1/chat/completions", views.chat_completions, name="fail_chat_completions"),
    path("fail/<str:fail_mode>/v1/embeddings", views.embeddings, name="fail_embeddings"),
    path("fail/<str:fail_mode>/v1/responses", views.responses, name="fail_responses"),
    path("v1/messages", views.messages, name="messages"),
    path("fail/<str:fail_mode>/v1/messages", views.messages, name="fail_messages"),
    path("fail/<str:fail_mode>/v1/models", views.models, name="fail_models"),
]
