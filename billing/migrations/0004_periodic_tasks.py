"""Schedule the billing jobs as django-celery-beat rows, so operators edit, disable or run them in admin."""

import json

from django.db import migrations
from django.utils import timezone

# name -> (task, every N minutes, kwargs, expire_seconds: a run queued longer than this is dropped)
SCHEDULES = {
    "Reconcile usage": (
        "billing.tasks.reconcile_task",
        5,
        {"trigger": "schedule", "lookback_hours": 48},
        5 * 60,
    ),
    "Low-balance alert sweep": ("billing.tasks.low_balance_sweep_task", 10, {}, 10 * 60),
}


def forward(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTasks = apps.get_model("django_celery_beat", "PeriodicTasks")
    for name, (task, minutes, kwargs, expire_seconds) in SCHEDULES.items():
        interval = IntervalSchedule.objects.filter(every=minutes, period="minutes").first()
        if interval is None:
            interval = IntervalSchedule.objects.create(every=minutes, period="minutes")
        PeriodicTask.objects.get_or_create(
            name=name,
            defaults={
                "task": task,
                "interval": interval,
                "kwargs": json.dumps(kwargs),
                "expire_seconds": expire_seconds,
                "enabled": True,
                "description": "Created by billing/migrations/0004; edit the interval or disable it here.",
            },
        )
    # Historical models send no signals: tell a running beat that the schedule changed.
    PeriodicTasks.objects.update_or_create(ident=1, defaults={"last_update": timezone.now()})


def backward(apps, schema_editor):
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTasks = apps.get_model("django_celery_beat", "PeriodicTasks")
    PeriodicTask.objects.filter(name__in=SCHEDULES).delete()
    PeriodicTasks.objects.update_or_create(ident=1, defaults={"last_update": timezone.now()})


class Migration(migrations.Migration):
    dependencies = [
        ("billing", "0003_ledger_append_only"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(forward, backward)]
