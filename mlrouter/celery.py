"""The Celery app: Redis as the broker when REDIS_URL is set, eager tasks otherwise."""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mlrouter.settings")

app = Celery("mlrouter")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
