"""ML Router: an OpenAI-compatible LLM API billed against a prepaid USD balance."""

from .celery import app as celery_app

__all__ = ("celery_app",)
