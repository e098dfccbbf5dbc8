from __future__ import annotations

from django.apps import AppConfig


class DocsConfig(AppConfig):
    name = "docs"
    verbose_name = "Documentation site"
