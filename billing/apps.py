from django.apps import AppConfig
from django.db.models.signals import post_migrate


class BillingConfig(AppConfig):
    name = "billing"
    verbose_name = "Billing"

    def ready(self) -> None:
        from billing.metrics import register

        from .roles import administrator_grant_all

        post_migrate.connect(administrator_grant_all, dispatch_uid="billing.roles.administrator_grant_all")

        register()
