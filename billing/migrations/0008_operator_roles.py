"""Create the operator roles as groups: "Support (read-only)", "Finance" and "Administrator".

Support sees everything and changes nothing. Finance also moves money: top-ups, adjustments, refunds,
hold releases, reconciliation runs and repairs, alert retries, redemption codes and the CSV exports.
Administrator holds every permission; `billing.roles.roles_grant_new` keeps it so after later
migrations add permissions.
"""

from django.contrib.auth.management import create_permissions
from django.contrib.contenttypes.management import create_contenttypes
from django.db import migrations

SUPPORT = "Support (read-only)"
FINANCE = "Finance"
ADMINISTRATOR = "Administrator"

FINANCE_PERMISSIONS = [
    "accounts.export_account",
    "billing.topup_account",
    "billing.adjust_balance",
    "billing.export_ledgerentry",
    "billing.release_hold",
    "billing.refund_topup",
    "billing.export_topup",
    "billing.run_reconciliation",
    "billing.repair_finding",
    "billing.retry_lowbalancealert",
    "billing.add_redemptioncode",
    "billing.change_redemptioncode",
    "completions.export_generation",
]


def _permissions_create(apps):
    # Permissions are made after `migrate` ends; this migration needs the new ones now.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_contenttypes(app_config, apps=apps, verbosity=0)
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    ContentType = apps.get_model("contenttypes", "ContentType")
    Permission = apps.get_model("auth", "Permission")
    periodic_task = ContentType.objects.get(app_label="django_celery_beat", model="periodictask")
    # django-celery-beat declares no permission for "Run selected tasks"; our admin asks for this one.
    Permission.objects.get_or_create(
        content_type=periodic_task, codename="run_periodictask", defaults={"name": "Can run a periodic task now"}
    )


def forward(apps, schema_editor):
    _permissions_create(apps)
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    view = Permission.objects.filter(codename__startswith="view_")
    support, _ = Group.objects.get_or_create(name=SUPPORT)
    support.permissions.set(view)
    finance, _ = Group.objects.get_or_create(name=FINANCE)
    finance_extra = [
        Permission.objects.get(content_type__app_label=label.split(".")[0], codename=label.split(".")[1])
        for label in FINANCE_PERMISSIONS
    ]
    finance.permissions.set([*view, *finance_extra])
    administrator, _ = Group.objects.get_or_create(name=ADMINISTRATOR)
    administrator.permissions.set(Permission.objects.all())


def backward(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name__in=[SUPPORT, FINANCE, ADMINISTRATOR]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("billing", "0007_operator_permissions"),
        ("accounts", "0002_operator_permissions"),
        ("completions", "0007_export_permission"),
        ("admin", "0003_logentry_add_action_flag_choices"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
        ("django_celery_results", "0014_alter_taskresult_status"),
    ]

    operations = [migrations.RunPython(forward, backward)]
