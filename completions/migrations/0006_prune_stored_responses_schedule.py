"""Schedule the daily pruning of stored Responses answers as a django-celery-beat row operators can edit."""

import json

from django.db import migrations
from django.utils import timezone

NAME = "Prune stored responses past RESPONSES_RETENTION_DAYS"
TASK = "completions.tasks.prune_stored_responses_task"


def forward(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTasks = apps.get_model("django_celery_beat", "PeriodicTasks")
    interval = IntervalSchedule.objects.filter(every=1, period="days").first()
    if interval is None:
        interval = IntervalSchedule.objects.create(every=1, period="days")
    PeriodicTask.objects.get_or_create(
        name=NAME,
        defaults={
            "task": TASK,
            "interval": interval,
            "kwargs": json.dumps({}),
            "expire_seconds": 3600,
            "enabled": True,
            "description": "Created by completions/migrations/0006; edit the interval or disable it here.",
        },
    )
    # Historical models send no signals: tell a running beat that the schedule changed.
    PeriodicTasks.objects.update_or_create(ident=1, defaults={"last_update": timezone.now()})


def backward(apps, schema_editor):
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTasks = apps.get_model("django_celery_beat", "PeriodicTasks")
    PeriodicTask.objects.filter(name=NAME).delete()
    PeriodicTasks.objects.update_or_create(ident=1, defaults={"last_update": timezone.now()})


class Migration(migrations.Migration):
    dependencies = [
        ("completions", "0005_stored_responses"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(forward, backward)]
