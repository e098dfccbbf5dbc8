"""The operator roles, made as groups by migration 0008: Support (read-only), Finance and Administrator."""

from __future__ import annotations

from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections

SUPPORT = "Support (read-only)"
FINANCE = "Finance"
ADMINISTRATOR = "Administrator"


def administrator_grant_all(*, using: str = DEFAULT_DB_ALIAS, **kwargs: Any) -> None:
    """Give Administrator the permissions added since it was made (a post_migrate receiver)."""
    from django.contrib.auth.models import Group, Permission

    # `migrate` of a single app may run before auth's tables exist.
    if Group._meta.db_table not in connections[using].introspection.table_names():
        return
    group = Group.objects.using(using).filter(name=ADMINISTRATOR).first()
    if group is not None:
        group.permissions.add(*Permission.objects.using(using).exclude(group=group))
