"""The bot's URLs where the project mounts them, for tests that do not depend on mlrouter/urls.py."""

from django.urls import include, path

urlpatterns = [path("telegram/", include("bot.urls"))]
