"""The operator roles, made as groups by migration 0008: Support (read-only), Finance and Administrator."""

from __future__ import annotations

from typing import Any

SUPPORT = "Support (read-only)"
FINANCE = "Finance"
ADMINISTRATOR = "Administrator"


def administrator_grant_all(**kwargs: Any) -> None:
    """Give Administrator the permissions added since it was made (a post_migrate receiver)."""
    from django.contrib.auth.models import Group, Permission

    group = Group.objects.filter(name=ADMINISTRATOR).first()
    if group is not None:
        group.permissions.add(*Permission.objects.exclude(group=group))
