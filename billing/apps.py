from django.apps import AppConfig
from django.db.models.signals import post_migrate


class BillingConfig(AppConfig):
    name = "billing"
    verbose_name = "Billing"

    def ready(self) -> None:
        from billing.metrics import register

        from .roles import roles_grant_new

        post_migrate.connect(roles_grant_new, dispatch_uid="billing.roles.roles_grant_new")

        register()
