"""The overview at the top of an account's admin page: money, spend, usage, keys, recent requests, alerts, payments.

Spend, usage and each key's spend against its limit come from the rollups; the last request and the
recent generations are one index lookup on the account's own generations.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from accounts.models import Account, ApiKey
from billing.models import LedgerEntry, LowBalanceAlert, TopUp
from billing.money import ZERO
from completions.models import Generation
from completions.settlement import spend_period_start

from .rollups import day_floor
from .selectors import account_credits, account_spend, account_top_models, keys_spend

if TYPE_CHECKING:
    from django.http import HttpRequest

RECENT_ROWS = 10
SHOWN_KEYS = 20


@dataclass(frozen=True)
class KeySpend:
    key: ApiKey
    spent: Decimal
    share: Decimal | None  # of the limit, 0..1+; None without a limit


def key_spends(account: Account, now: datetime) -> list[KeySpend]:
    """Each live key's spend in its current period, from the rollups: finished requests, up to a minute late.

    The limit itself also counts requests in flight at their hold (`completions.settlement.key_spent`);
    that exact figure scans the key's generations, which a busy key's page cannot afford.
    """
    keys = list(ApiKey.objects.filter(account=account, revoked_at__isnull=True).order_by("-id")[:SHOWN_KEYS])
    starts = {key.pk: spend_period_start(key.spend_period, now) for key in keys}
    spent: dict[int, Decimal] = {}
    for start in set(starts.values()):
        spent |= keys_spend(account.pk, [pk for pk, s in starts.items() if s == start], start)
    result = []
    for key in keys:
        amount = spent.get(key.pk, ZERO)
        share = amount / key.spend_limit if key.spend_limit else None
        result.append(KeySpend(key=key, spent=amount, share=share))
    return result


def account_overview(request: HttpRequest, account: Account) -> str:
    """Render the account's overview panel."""
    now = timezone.now()
    user = request.user
    credits = account_credits(account.pk)
    generations = Generation.objects.filter(account=account).select_related("model").order_by("-started_at")
    recent = list(generations[:RECENT_ROWS])
    context = {
        "account": account,
        "spend": {
            "today (UTC)": account_spend(account.pk, day_floor(now)),
            "7 days": account_spend(account.pk, now - timedelta(days=7)),
            "30 days": account_spend(account.pk, now - timedelta(days=30)),
        },
        "topups": credits.get(LedgerEntry.Kind.TOPUP, ZERO),
        "refunds": credits.get(LedgerEntry.Kind.REFUND, ZERO),
        "promos": credits.get(LedgerEntry.Kind.PROMO, ZERO),
        "last_request": recent[0] if recent else None,
        "top_models": account_top_models(account.pk, now - timedelta(days=30)),
        "keys": key_spends(account, now),
        "recent": recent,
        "alerts": LowBalanceAlert.objects.filter(account=account).order_by("-id")[:5],
        "payments": TopUp.objects.filter(account=account).order_by("-id")[:5],
        "links": {
            "generations": f"{reverse('admin:completions_generation_changelist')}?account__id__exact={account.pk}",
            "analytics": f"{reverse('admin:analytics_hourlyusage_changelist')}?range=30d&account={account.pk}",
            "alerts": f"{reverse('admin:billing_lowbalancealert_changelist')}?account__id__exact={account.pk}",
            "payments": f"{reverse('admin:billing_topup_changelist')}?account__id__exact={account.pk}",
            "issue_key": f"{reverse('admin:accounts_apikey_add')}?account={account.pk}",
            "changelist": reverse("admin:accounts_account_changelist"),
        },
        "can": {
            "move_money": user.has_perm("billing.add_ledgerentry"),
            "issue_key": user.has_perm("accounts.add_apikey"),
            "change": user.has_perm("accounts.change_account"),
        },
        "action_checkbox_name": ACTION_CHECKBOX_NAME,
        "suspend_action": "reactivate_selected" if account.status == Account.Status.SUSPENDED else "suspend_selected",
    }
    return render_to_string("admin/analytics/account_overview.html", context, request=request)
