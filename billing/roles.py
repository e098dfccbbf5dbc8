"""The operator roles, made as groups by migration 0008: Support (read-only), Finance and Administrator."""

from __future__ import annotations

from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections

SUPPORT = "Support (read-only)"
FINANCE = "Finance"
ADMINISTRATOR = "Administrator"


def roles_grant_new(*, using: str = DEFAULT_DB_ALIAS, **kwargs: Any) -> None:
    """Give the roles what was added since they were made (a post_migrate receiver): Administrator every
    permission, Support and Finance every `view_` one, so a new admin page is readable by all roles."""
    from django.contrib.auth.models import Group, Permission

    # `migrate` of a single app may run before auth's tables exist.
    if Group._meta.db_table not in connections[using].introspection.table_names():
        return
    permissions = Permission.objects.using(using)
    for group in Group.objects.using(using).filter(name__in=(ADMINISTRATOR, SUPPORT, FINANCE)):
        wanted = permissions if group.name == ADMINISTRATOR else permissions.filter(codename__startswith="view_")
        group.permissions.add(*wanted.exclude(group=group))
