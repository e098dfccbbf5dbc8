"""Reconciliation runs incrementally every 5 minutes (no lookback window), and audits everything daily."""

import json

from django.db import migrations
from django.utils import timezone

AUDIT = "Reconciliation full audit"
AUDIT_KWARGS = {"trigger": "audit", "full": True}
INCREMENTAL = "Reconcile usage"
OLD_KWARGS = {"trigger": "schedule", "lookback_hours": 48}
NEW_KWARGS = {"trigger": "schedule"}


def forward(apps, schema_editor):
    CrontabSchedule = apps.get_model("django_celery_beat", "CrontabSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTasks = apps.get_model("django_celery_beat", "PeriodicTasks")
    # Only a schedule still as 0004 made it: an operator's own kwargs stay.
    for task in PeriodicTask.objects.filter(name=INCREMENTAL):
        if json.loads(task.kwargs or "{}") == OLD_KWARGS:
            task.kwargs = json.dumps(NEW_KWARGS)
            task.save(update_fields=["kwargs"])
    crontab, _ = CrontabSchedule.objects.get_or_create(
        minute="30", hour="3", day_of_week="*", day_of_month="*", month_of_year="*", timezone="UTC"
    )
    PeriodicTask.objects.get_or_create(
        name=AUDIT,
        defaults={
            "task": "billing.tasks.reconcile_task",
            "crontab": crontab,
            "kwargs": json.dumps(AUDIT_KWARGS),
            "expire_seconds": 6 * 3600,
            "enabled": True,
            "description": "Created by billing/migrations/0008: sums the whole ledger and checks every generation.",
        },
    )
    PeriodicTasks.objects.update_or_create(ident=1, defaults={"last_update": timezone.now()})


def backward(apps, schema_editor):
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTasks = apps.get_model("django_celery_beat", "PeriodicTasks")
    PeriodicTask.objects.filter(name=AUDIT).delete()
    for task in PeriodicTask.objects.filter(name=INCREMENTAL):
        if json.loads(task.kwargs or "{}") == NEW_KWARGS:
            task.kwargs = json.dumps(OLD_KWARGS)
            task.save(update_fields=["kwargs"])
    PeriodicTasks.objects.update_or_create(ident=1, defaults={"last_update": timezone.now()})


class Migration(migrations.Migration):
    dependencies = [
        ("billing", "0009_reconciliation_checkpoint"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(forward, backward)]
