"""Admin for money: accounts (where operators top up and adjust), prices, the ledger, holds and the rest.

Every change of a balance here goes through billing.services and is written to the admin history.
One module per thing operators manage; importing them here registers every ModelAdmin.
"""

from .accounts import AccountAdmin, LowBalanceFilter
from .jobs import LowBalanceAlertAdmin, ReconciliationFindingAdmin, ReconciliationRunAdmin
from .ledger import ExpiredOpenFilter, HoldAdmin, LedgerEntryAdmin
from .payments import RedemptionAdmin, RedemptionCodeAdmin, RedemptionInline, TopUpAdmin, refund_topups_action
from .prices import PriceAdmin, RouteCostAdmin

__all__ = [
    "AccountAdmin",
    "ExpiredOpenFilter",
    "HoldAdmin",
    "LedgerEntryAdmin",
    "LowBalanceAlertAdmin",
    "LowBalanceFilter",
    "PriceAdmin",
    "ReconciliationFindingAdmin",
    "ReconciliationRunAdmin",
    "RedemptionAdmin",
    "RedemptionCodeAdmin",
    "RedemptionInline",
    "RouteCostAdmin",
    "TopUpAdmin",
    "refund_topups_action",
]
