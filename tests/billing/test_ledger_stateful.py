"""Whatever sequence of money operations runs, the books stay true."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from accounts.models import Account
from billing.models import Hold
from billing.selectors import ledger_sum, open_holds_sum
from billing.services import (
    BillingError,
    hold_place,
    hold_release,
    hold_settle,
    ledger_adjust,
    ledger_credit,
    ledger_refund,
)
from tests.factories import AccountFactory

amounts = st.decimals(min_value=Decimal("0.0000000001"), max_value=Decimal("50"), places=10)


class LedgerMachine(RuleBasedStateMachine):
    @initialize()
    def create_account(self) -> None:
        self.account = AccountFactory()
        self.expected = Decimal(0)
        self.keys: list[str] = []
        self.open: list[str] = []
        self.n = 0

    def _next(self, prefix: str) -> str:
        self.n += 1
        return f"{prefix}:{self.account.pk}:{self.n}"

    @rule(amount=amounts)
    def credit(self, amount: Decimal) -> None:
        key = self._next("credit")
        ledger_credit(account=self.account, amount=amount, idempotency_key=key)
        self.keys.append(key)
        self.expected += amount

    @precondition(lambda self: self.keys)
    @rule(data=st.data())
    def replay_credit(self, data) -> None:
        key = data.draw(st.sampled_from(self.keys))
        entry = ledger_credit(account=self.account, amount=self._amount_of(key), idempotency_key=key)
        assert entry.replayed

    def _amount_of(self, key: str) -> Decimal:
        return self.account.ledger_entries.get(idempotency_key=key).amount

    @rule(amount=amounts, sign=st.sampled_from([1, -1]))
    def adjust(self, amount: Decimal, sign: int) -> None:
        try:
            ledger_adjust(account=self.account, amount=sign * amount, idempotency_key=self._next("adj"), memo="fix")
            self.expected += sign * amount
        except BillingError:
            pass

    @rule(amount=amounts)
    def refund_payment(self, amount: Decimal) -> None:
        try:
            ledger_refund(account=self.account, amount=-amount, idempotency_key=self._next("refund"))
            self.expected -= amount
        except BillingError:
            pass

    @rule(amount=amounts)
    def place(self, amount: Decimal) -> None:
        reference = self._next("gen")
        try:
            hold_place(account_id=self.account.pk, amount=amount, reference=reference)
            self.open.append(reference)
        except BillingError:
            pass

    @precondition(lambda self: self.open)
    @rule(data=st.data(), cost=amounts)
    def settle(self, data, cost: Decimal) -> None:
        reference = data.draw(st.sampled_from(self.open))
        entry = hold_settle(reference=reference, cost=cost)
        self.open.remove(reference)
        self.expected += entry.amount
        assert -entry.amount <= Hold.objects.get(reference=reference).amount

    @precondition(lambda self: self.open)
    @rule(data=st.data())
    def release(self, data) -> None:
        reference = data.draw(st.sampled_from(self.open))
        assert hold_release(reference=reference, reason="test")
        self.open.remove(reference)

    @invariant()
    def books_are_true(self) -> None:
        account = Account.objects.get(pk=self.account.pk)
        assert account.balance == ledger_sum(account) == self.expected
        assert account.held == open_holds_sum(account)
        assert account.available >= 0


@pytest.mark.django_db
@pytest.mark.usefixtures("money_path")
def test_balance_equals_ledger_sum_and_available_never_negative():
    run_state_machine_as_test(
        LedgerMachine,
        settings=settings(
            max_examples=25, stateful_step_count=25, deadline=None, suppress_health_check=list(HealthCheck)
        ),
    )
