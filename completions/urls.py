"""The /v1 URL map."""

from __future__ import annotations

from django.urls import path, re_path
from drf_spectacular.views import SpectacularJSONAPIView, SpectacularRedocView

from . import apis
from .pipeline import VIEWS, messages_count_tokens
from .surfaces import SURFACES

urlpatterns = [
    *(path(s.path, VIEWS[s.path], name=s.path.replace("/", "-")) for s in SURFACES),
    path("messages/count_tokens", messages_count_tokens, name="messages-count-tokens"),
    path("responses/<str:response_id>", apis.ResponseView.as_view(), name="response"),
    path("responses/<str:response_id>/input_items", apis.ResponseInputItemsView.as_view(), name="response-input-items"),
    path("models", apis.ModelsView.as_view(), name="models"),
    path("models/<path:model_id>", apis.ModelDetailView.as_view(), name="model-detail"),
    path("prices", apis.PricesView.as_view(), name="prices"),
    path("generation", apis.GenerationView.as_view(), name="generation"),
    path("key", apis.KeyView.as_view(), name="key"),
    path("credits", apis.CreditsView.as_view(), name="credits"),
    path("openapi.json", SpectacularJSONAPIView.as_view(), name="openapi"),
    path("docs/", SpectacularRedocView.as_view(url_name="openapi"), name="api-docs"),
    re_path(r"^.*$", apis.api_not_found),
]
