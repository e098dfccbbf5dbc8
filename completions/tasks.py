"""Celery tasks of completions: thin, call a service."""

from __future__ import annotations

from celery import shared_task

from .stored_responses import stored_responses_prune


@shared_task(ignore_result=False)
def prune_stored_responses_task() -> int:
    """Forget stored Responses answers older than RESPONSES_RETENTION_DAYS."""
    return stored_responses_prune()
