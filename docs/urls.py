"""/docs/ (Russian) and /docs/en/ (English)."""

from __future__ import annotations

from django.urls import path

from . import views

app_name = "docs"

urlpatterns = [
    path("", views.page, {"lang": "ru"}, name="index"),
    path("en/", views.page, {"lang": "en"}, name="index-en"),
    path("en/<slug:slug>/", views.page, {"lang": "en"}, name="page-en"),
    path("<slug:slug>/", views.page, {"lang": "ru"}, name="page"),
]
