"""Every admin action and custom admin view refuses a staff user who may only view, and its own permission allows it.

The walks introspect `admin.site._registry`, each ModelAdmin's actions and extra URLs, and the site's own
extra URLs, so a new action or view is covered the day it is added: it must refuse the view-only user, or be
listed here as read-only.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.contrib import admin
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.auth.models import Permission
from django.contrib.messages.storage.fallback import FallbackStorage
from django.contrib.sessions.backends.cache import SessionStore
from django.core.exceptions import PermissionDenied
from django.urls import reverse
from django.urls.converters import IntConverter
from django.utils import timezone
from django_celery_beat.models import ClockedSchedule, CrontabSchedule, PeriodicTask, SolarSchedule
from django_celery_results.models import GroupResult, TaskResult

from accounts.models import Account, ApiKey
from billing.models import Hold, LedgerEntry, LowBalanceAlert, ReconciliationFinding, ReconciliationRun
from billing.reconciliation import BALANCE_MISMATCH
from bot.models import BotSettings
from tests.factories import UserFactory
from tests.jobs.conftest import eager_celery  # noqa: F401  (a fixture)

from .helpers import admin_url, run_action

pytestmark = pytest.mark.django_db

# Actions that change something, each with the one permission that offers it (besides Django's
# "delete selected", which asks for the model's delete permission).
ACTION_PERMISSIONS = {
    ("accounts.Account", "suspend_selected"): "accounts.suspend_account",
    ("accounts.Account", "reactivate_selected"): "accounts.suspend_account",
    ("accounts.Account", "topup_selected"): "billing.topup_account",
    ("accounts.Account", "adjust_selected"): "billing.adjust_balance",
    ("accounts.ApiKey", "revoke_selected"): "accounts.revoke_apikey",
    ("billing.Hold", "release_selected"): "billing.release_hold",
    ("billing.TopUp", "refund_topups_action"): "billing.refund_topup",
    ("billing.ReconciliationRun", "run_reconciliation_now"): "billing.run_reconciliation",
    ("billing.ReconciliationFinding", "repair_findings"): "billing.repair_finding",
    ("billing.LowBalanceAlert", "retry_failed_alerts"): "billing.retry_lowbalancealert",
    ("django_celery_beat.PeriodicTask", "enable_tasks"): "django_celery_beat.change_periodictask",
    ("django_celery_beat.PeriodicTask", "disable_tasks"): "django_celery_beat.change_periodictask",
    ("django_celery_beat.PeriodicTask", "toggle_tasks"): "django_celery_beat.change_periodictask",
    ("django_celery_beat.PeriodicTask", "run_tasks"): "django_celery_beat.run_periodictask",
}

# Custom admin views (beyond list, add, change, history, delete) that only read, so a view-only user may
# open them; they are still checked to change nothing. Every other custom view must answer 403.
READ_ONLY_VIEWS: set[str] = set()

_STANDARD_VIEWS = ("_changelist", "_add", "_history", "_delete", "_change")
_SITE_VIEWS = {"index", "login", "logout", "password_change", "password_change_done", "autocomplete", "jsi18n"}
_SITE_VIEWS |= {"view_on_site", "app_list"}


def _grant(user, *labels: str) -> None:
    for label in labels:
        app_label, codename = label.split(".")
        user.user_permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))


@pytest.fixture
def viewer(db):
    """Staff with every view permission and nothing else."""
    user = UserFactory(username="viewer", is_superuser=False)
    user.user_permissions.set(Permission.objects.filter(codename__startswith="view_"))
    return user


@pytest.fixture
def every_model_has_a_row(one_of_everything, operator):
    """A row in each registered table the fixture leaves empty, so every action has something to act on."""
    now = timezone.now()
    ClockedSchedule.objects.create(clocked_time=now)
    CrontabSchedule.objects.get_or_create(minute="7", hour="3")
    SolarSchedule.objects.create(event="sunrise", latitude=Decimal("52.5"), longitude=Decimal("13.4"))
    TaskResult.objects.create(task_id="task-everything")
    GroupResult.objects.create(group_id="group-everything")
    BotSettings.load()
    account = one_of_everything["account"]
    LogEntry.objects.log_actions(operator.pk, [account], CHANGE, change_message="noted")
    LowBalanceAlert.objects.update(status=LowBalanceAlert.Status.FAILED)
    return one_of_everything


def _request(rf, user, **data):
    request = rf.post("/admin/", data)
    request.user = user
    request.session = SessionStore()
    request._messages = FallbackStorage(request)
    return request


def _snapshot() -> dict[str, list[dict]]:
    """Every row of every table the admin shows (the admin log included)."""
    return {model._meta.label: list(model._default_manager.order_by("pk").values()) for model in admin.site._registry}


def _all_actions(rf, superuser):
    """(model, its ModelAdmin, action name, action function) for every action offered to a superuser."""
    request = _request(rf, superuser)
    for model, model_admin in admin.site._registry.items():
        for name, (func, _, _) in model_admin.get_actions(request).items():
            yield model, model_admin, name, func


def test_every_action_is_refused_to_a_view_only_user(client, rf, viewer, operator, every_model_has_a_row):
    client.force_login(viewer)
    before = _snapshot()
    walked = set()
    for model, model_admin, name, func in _all_actions(rf, operator):
        label = model._meta.label
        walked.add((label, name))
        rows = list(model._default_manager.order_by("pk")[:3])
        assert rows, f"{label} has no row to act on: add one to `every_model_has_a_row`"
        # Not offered, and Django's action form refuses a crafted POST of it.
        assert name not in model_admin.get_actions(_request(rf, viewer)), (label, name)
        data = {"action": name, "index": 0, "_selected_action": [row.pk for row in rows], "post": "yes"}
        response = client.post(admin_url(model, "changelist"), {**data, "reason": "walk"})
        assert response.status_code in (200, 302, 403), (label, name, response.status_code)
        # Called directly, past the form, the action checks the permission itself. Django's own "delete
        # selected" raises too, or, when related rows protect the selection, only shows what blocks it.
        try:
            func(model_admin, _request(rf, viewer, **data, reason="walk"), model._default_manager.all())
        except PermissionDenied:
            pass
        else:
            assert name == "delete_selected", (label, name)
        assert _snapshot() == before, (label, name)
    assert {key for key in walked if key[1] != "delete_selected"} == set(ACTION_PERMISSIONS)


def _custom_views(first_pk):
    """(url name, URL) of every extra view a registered ModelAdmin adds to the admin."""
    for model, model_admin in admin.site._registry.items():
        for pattern in model_admin.get_urls():
            if not pattern.name or pattern.name.endswith(_STANDARD_VIEWS):
                continue
            yield pattern.name, reverse(f"admin:{pattern.name}", kwargs=_arguments(pattern, lambda: first_pk(model)))
    for pattern in admin.site.get_urls():
        name = getattr(pattern, "name", None)
        if name and name not in _SITE_VIEWS:
            yield name, reverse(f"admin:{name}", kwargs=_arguments(pattern, lambda: 1))


def _arguments(pattern, object_id) -> dict[str, object]:
    """A real row's id for `object_id`; any other argument gets a stand-in (the view must refuse first)."""
    return {
        name: object_id() if name == "object_id" else (0 if isinstance(converter, IntConverter) else "walk")
        for name, converter in pattern.pattern.converters.items()
    }


def test_every_custom_admin_view_is_refused_to_a_view_only_user(client, viewer, every_model_has_a_row):
    client.force_login(viewer)
    before = _snapshot()
    account = every_model_has_a_row["account"]
    money = {"amount": "-0.01", "memo": "walk", "idempotency_key": "admin-adjust:walk", "reason": "walk"}
    walked = []
    for name, url in _custom_views(lambda model: model._default_manager.order_by("pk").first().pk):
        walked.append(name)
        for response in (client.get(url), client.post(url, money)):
            if name in READ_ONLY_VIEWS:
                assert response.status_code == 200, name
            else:
                assert response.status_code == 403, (name, response.status_code)
        assert _snapshot() == before, name
    assert {"accounts_account_topup", "accounts_account_adjust", "billing_reconciliationrun_run_now"} <= set(walked)
    assert {"billing_ledgerentry_export", "completions_generation_export"} <= set(walked)
    assert not LedgerEntry.objects.filter(account=account, memo="walk").exists()


@pytest.mark.parametrize(("model_action", "perm"), sorted(ACTION_PERMISSIONS.items()))
def test_each_action_is_offered_exactly_with_its_permission(rf, viewer, model_action, perm):
    label, name = model_action
    model_admin = next(ma for model, ma in admin.site._registry.items() if model._meta.label == label)
    assert name not in model_admin.get_actions(_request(rf, viewer))
    _grant(viewer, perm)
    viewer = type(viewer).objects.get(pk=viewer.pk)  # a fresh permission cache
    assert name in model_admin.get_actions(_request(rf, viewer))


def test_the_topup_and_adjust_permissions_move_money(client, viewer):
    account = Account.objects.create(name="Acme")
    _grant(viewer, "billing.topup_account")
    client.force_login(viewer)
    form = client.get(admin_url(account, "topup", account.pk)).context["form"]
    key = form.initial["idempotency_key"]
    response = client.post(
        admin_url(account, "topup", account.pk), {"amount": "5", "memo": "wire", "idempotency_key": key}
    )
    assert response.status_code == 302
    assert LedgerEntry.objects.get(account=account).created_by == viewer
    assert client.post(admin_url(account, "adjust", account.pk), {"amount": "-1", "memo": "x"}).status_code == 403


def test_the_suspend_permission_suspends_after_a_confirmation_with_a_reason(client, viewer):
    account = Account.objects.create(name="Acme")
    _grant(viewer, "accounts.suspend_account")
    client.force_login(viewer)
    page = run_action(client, Account, "suspend_selected", [account])
    assert page.status_code == 200
    assert "Acme" in page.content.decode()
    no_reason = run_action(client, Account, "suspend_selected", [account], post="yes", reason=" ")
    assert no_reason.context["form"].errors == {"reason": ["Say why."]}
    account.refresh_from_db()
    assert account.status == Account.Status.ACTIVE

    run_action(client, Account, "suspend_selected", [account], post="yes", reason="fraud report")

    account.refresh_from_db()
    assert account.status == Account.Status.SUSPENDED
    assert LogEntry.objects.get(user=viewer).get_change_message() == "Suspended the account: fraud report"


def test_the_revoke_permission_revokes_after_a_confirmation(client, viewer, one_of_everything):
    api_key = one_of_everything["api_key"]
    _grant(viewer, "accounts.revoke_apikey")
    client.force_login(viewer)
    assert run_action(client, ApiKey, "revoke_selected", [api_key]).status_code == 200
    api_key.refresh_from_db()
    assert api_key.revoked_at is None
    run_action(client, ApiKey, "revoke_selected", [api_key], post="yes", reason="leaked in a repo")
    api_key.refresh_from_db()
    assert api_key.revoked_at is not None


def test_the_release_permission_releases_a_hold(client, viewer, one_of_everything):
    hold = one_of_everything["hold"]
    _grant(viewer, "billing.release_hold")
    client.force_login(viewer)
    run_action(client, Hold, "release_selected", [hold], post="yes", reason="stuck")
    hold.refresh_from_db()
    assert hold.status == Hold.Status.RELEASED


def test_the_run_permission_runs_reconciliation(client, viewer, eager_celery):  # noqa: F811
    _grant(viewer, "billing.run_reconciliation")
    client.force_login(viewer)
    page = client.get(admin_url(ReconciliationRun, "changelist")).content.decode()
    assert "Run reconciliation now" in page
    response = client.post(reverse("admin:billing_reconciliationrun_run_now"))
    assert response.status_code == 302
    assert ReconciliationRun.objects.get().trigger == "admin"


def test_the_repair_permission_repairs_a_finding(rf, viewer):
    account = Account.objects.create(name="Acme")
    run = ReconciliationRun.objects.create(status=ReconciliationRun.Status.FINDINGS)
    Account.objects.filter(pk=account.pk).update(balance=Decimal("3"))  # off its (empty) ledger
    finding = ReconciliationFinding.objects.create(
        run=run, kind=BALANCE_MISMATCH, account=account, detail="balance off its ledger", amount=Decimal("3")
    )
    model_admin = admin.site._registry[ReconciliationFinding]
    _grant(viewer, "billing.repair_finding")
    viewer = type(viewer).objects.get(pk=viewer.pk)
    action = model_admin.get_actions(_request(rf, viewer))["repair_findings"][0]
    request = _request(rf, viewer, post="yes", reason="cache drifted")
    action(model_admin, request, ReconciliationFinding.objects.filter(pk=finding.pk))
    account.refresh_from_db()
    assert account.balance == 0
    log = LogEntry.objects.get(user=viewer, object_id=str(finding.pk))
    assert log.get_change_message().endswith("Reason: cache drifted")


def test_the_periodic_task_permissions_guard_the_schedules(client, viewer):
    task = PeriodicTask.objects.filter(task="billing.tasks.reconcile_task").order_by("pk").first()
    client.force_login(viewer)
    run_action(client, PeriodicTask, "disable_tasks", [task])
    task.refresh_from_db()
    assert task.enabled

    _grant(viewer, "django_celery_beat.change_periodictask")
    client.force_login(viewer)
    run_action(client, PeriodicTask, "disable_tasks", [task])
    task.refresh_from_db()
    assert not task.enabled
    changelist = client.get(admin_url(PeriodicTask, "changelist"))
    assert "run_tasks" not in dict(changelist.context["action_form"].fields["action"].choices)


def test_no_add_change_or_delete_page_lets_a_view_only_user_write(client, viewer, every_model_has_a_row):
    """Issuing a key, a price or a schedule is an add; editing one is a change: Django's own checks hold."""
    client.force_login(viewer)
    before = _snapshot()
    for model in admin.site._registry:
        row = model._default_manager.order_by("pk").first()
        if model is not BotSettings:  # a singleton: its list opens its change page
            assert client.post(admin_url(model, "add"), {"name": "walk"}).status_code == 403, model
        if row is None:  # no row to change (e.g. rollups no test fills): its add page was tried above
            continue
        assert client.post(admin_url(model, "change", row.pk), {"name": "walk"}).status_code == 403, model
        assert client.post(admin_url(model, "delete", row.pk), {"post": "yes"}).status_code == 403, model
    assert _snapshot() == before
