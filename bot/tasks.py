"""Celery tasks of the bot: thin, call a service."""

from __future__ import annotations

from celery import shared_task

from .services import processed_updates_prune


@shared_task(ignore_result=False)
def prune_processed_updates_task() -> int:
    """Forget handled update ids past the duplicate window, so the table stays small."""
    return processed_updates_prune()
