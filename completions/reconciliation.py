"""Reconciliation of generations: holds left open by dead workers, one charge per generation, upstream cost.

billing.reconciliation discovers this module and runs its checks in the order registered at the bottom:
expired holds first, because settling them creates charges the charge check then sees. An incremental
run checks only the generations charged or held since its checkpoint (`references_changed`); the
expired holds are found through their partial index whatever the run.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import requests
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import DatabaseError, transaction
from django.db.models import (
    Count,
    Exists,
    ExpressionWrapper,
    F,
    IntegerField,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Value,
)
from django.db.models.functions import Coalesce
from django.utils import timezone

from accounts.models import Account
from billing.models import Hold, LedgerEntry, ReconciliationFinding, ReconciliationRun
from billing.money import ZERO, Usage, cost_for, usd
from billing.reconciliation import (
    MONEY,
    finding_record,
    references_changed,
    register_check,
    register_fixer,
    subquery_sum,
)
from billing.services import BillingError, hold_release, hold_settle, ledger_adjust

from .models import Generation, Provider
from .spool import spooled_references

log = logging.getLogger(__name__)

EXPIRED_HOLD_SETTLED = "expired_hold_settled"
EXPIRED_HOLD_RELEASED = "expired_hold_released"
EXPIRED_HOLD_UNRESOLVED = "expired_hold_unresolved"
CHARGE_MISSING = "charge_missing"
CHARGE_DUPLICATED = "charge_duplicated"
CHARGE_MISMATCH = "charge_mismatch"
CHARGE_KINDS = (CHARGE_MISSING, CHARGE_DUPLICATED, CHARGE_MISMATCH)
LOW_MARGIN = "low_margin"

FINISHED = (Generation.Status.COMPLETED, Generation.Status.CANCELLED, Generation.Status.FAILED)
# Providers publish a generation's cost a few seconds after it ends; ask only once it has had time.
LOOKUP_DELAY = timedelta(seconds=30)
LOOKUP_READ_TIMEOUT_S = 10.0


def in_scope(run: ReconciliationRun, generations: QuerySet[Generation], since: datetime | None) -> QuerySet[Generation]:
    """The run's share of `generations`: those changed since its checkpoint, else those started since `since`.

    An incremental run also looks again at every generation with an unrepaired charge finding, so that it
    is reported by each run until it is repaired, as a full run would. Charge findings are rare.
    """
    if not hasattr(run, "references"):  # read once per run, shared by the checks
        unrepaired = ReconciliationFinding.objects.filter(kind__in=CHARGE_KINDS, fix_entry__isnull=True)
        run.references = references_changed(run, also=unrepaired.order_by().values_list("reference", flat=True))
    if run.references is not None:
        return generations.filter(pk__in=run.references)
    return generations if since is None else generations.filter(started_at__gte=since)


def _has_usage(generation: Generation) -> bool:
    return generation.prompt_tokens > 0 or generation.completion_tokens > 0 or generation.cost > ZERO


@transaction.atomic
def expired_hold_resolve(*, run: ReconciliationRun, hold_id: int) -> ReconciliationFinding | None:
    """Settle an expired open hold from the usage its generation recorded, else release it; None if closed.

    The hold's row lock (taken first, as the request path does) makes this safe to run twice at once:
    the second caller finds the hold closed and does nothing.
    """
    hold = Hold.objects.select_for_update().filter(pk=hold_id, status=Hold.Status.OPEN).first()
    if hold is None:
        return None
    generation = Generation.objects.select_related("price").filter(pk=hold.reference).first()
    now = timezone.now()
    if generation is None or not _has_usage(generation):
        reason = f"reconciliation run {run.pk}: expired, nothing known"
        hold_release(reference=hold.reference, reason=reason)
        if generation is not None:
            Generation.objects.filter(pk=generation.pk, status=Generation.Status.PENDING).update(
                status=Generation.Status.FAILED, finished_at=now, error=f"{reason}; not charged"
            )
        return finding_record(
            run=run,
            kind=EXPIRED_HOLD_RELEASED,
            account_id=hold.account_id,
            reference=hold.reference,
            amount=hold.amount,
            detail=f"hold of {hold.amount} USD expired at {hold.expires_at:%Y-%m-%d %H:%M:%S} UTC with no usage "
            f"recorded ({'no generation' if generation is None else generation.status}); released, nothing charged",
        )
    usage = Usage(
        generation.prompt_tokens, generation.completion_tokens, generation.cached_tokens, generation.cache_write_tokens
    )
    cost = generation.cost or cost_for(usage, generation.price).total
    finding = finding_record(
        run=run,
        kind=EXPIRED_HOLD_SETTLED,
        account_id=hold.account_id,
        reference=hold.reference,
        detail=f"hold of {hold.amount} USD expired at {hold.expires_at:%Y-%m-%d %H:%M:%S} UTC; generation "
        f"{generation.status} with {usage.prompt_tokens}+{usage.completion_tokens} tokens, cost {cost} USD",
    )
    entry = hold_settle(
        reference=hold.reference,
        cost=cost,
        memo=f"reconciliation {run.pk}: expired hold {hold.reference} settled from recorded usage "
        f"(finding #{finding.pk})",
        reason=f"reconciliation run {run.pk}: expired, settled from recorded usage",
    )
    finding.amount = -entry.amount
    finding.fix_entry = entry
    finding.save(update_fields=["amount", "fix_entry"])
    Generation.objects.filter(pk=generation.pk, status=Generation.Status.PENDING).update(
        status=Generation.Status.FAILED,
        cost=-entry.amount,
        finished_at=now,
        error=f"the request never finished (its worker was lost); reconciliation run {run.pk} charged the "
        "usage recorded so far",
    )
    return finding


def expired_holds_check(run: ReconciliationRun, since: datetime | None) -> dict[str, int]:
    """Settle or release every open hold past its expiry (whatever `since` says: they are all overdue).

    A hold whose settlement waits in the spool (PostgreSQL was unreachable when it ended) is pending, not
    dead: the spool's replay writes it, so it is left alone and counted as spooled.
    """
    counts = {
        "expired_holds_settled": 0,
        "expired_holds_released": 0,
        "expired_holds_unresolved": 0,
        "expired_holds_spooled": 0,
    }
    overdue = Hold.objects.filter(status=Hold.Status.OPEN, expires_at__lt=timezone.now()).order_by("expires_at")
    spooled = spooled_references()
    for hold_id, reference, account_id in list(overdue.values_list("pk", "reference", "account_id")):
        if reference in spooled:
            counts["expired_holds_spooled"] += 1
            continue
        try:
            finding = expired_hold_resolve(run=run, hold_id=hold_id)
        except (BillingError, DatabaseError) as exc:
            # Its transaction rolled back; one hold that cannot be closed must not keep the others open.
            counts["expired_holds_unresolved"] += 1
            finding_record(
                run=run,
                kind=EXPIRED_HOLD_UNRESOLVED,
                account_id=account_id,
                reference=reference,
                detail=f"expired hold could not be settled or released: {exc!r}",
            )
            continue
        if finding is not None:
            counts["expired_holds_settled" if finding.fix_entry_id else "expired_holds_released"] += 1
    return counts


def _charges_of(reference: Any) -> QuerySet[LedgerEntry]:
    return LedgerEntry.objects.filter(kind=LedgerEntry.Kind.CHARGE, reference=reference).order_by().values("reference")


def mischarged(generations: QuerySet[Generation]) -> list[Generation]:
    """Return those of `generations` whose charges do not come to their cost, with the sums annotated.

    Without repairs, a generation needs exactly one charge of `-cost` (none at all when it cost nothing).
    Repairs are adjustments recorded on earlier findings; once there are any, only the net counts.
    `shortfall` = cost + charges + repairs: zero when the books agree.
    """
    ref = OuterRef("pk")
    # One statement over the (indexed) charges, so a settlement committing meanwhile is seen whole or not at all.
    suspects = list(
        generations.annotate(
            charge_count=Coalesce(
                Subquery(_charges_of(ref).annotate(n=Count("pk")).values("n")), 0, output_field=IntegerField()
            ),
            charged=subquery_sum(_charges_of(ref), "amount"),
        )
        .annotate(shortfall=ExpressionWrapper(F("cost") + F("charged"), output_field=MONEY))
        .filter(~Q(shortfall=ZERO) | Q(charge_count__gt=1))
        .order_by("started_at")
    )
    # Repairs are rare, so they are summed for the suspects only rather than joined to every generation.
    repairs = ReconciliationFinding.objects.filter(
        reference__in=[g.pk for g in suspects], kind__in=CHARGE_KINDS, fix_entry__isnull=False
    )
    repaired = dict(
        repairs.order_by().values("reference").annotate(s=Sum("fix_entry__amount")).values_list("reference", "s")
    )
    found = []
    for generation in suspects:
        generation.repaired = repaired.get(generation.pk, ZERO)
        generation.shortfall += generation.repaired
        if not (generation.repaired and generation.shortfall == ZERO):
            found.append(generation)
    return found


def generations_mischarged(*, since: datetime | None = None) -> list[Generation]:
    """Return the finished generations (started since `since`, if given) whose charges do not add up."""
    generations = Generation.objects.filter(status__in=FINISHED)
    return mischarged(generations if since is None else generations.filter(started_at__gte=since))


def _charge_kind(generation: Generation) -> str:
    if generation.charge_count == 0:
        return CHARGE_MISSING
    return CHARGE_DUPLICATED if generation.charge_count > 1 else CHARGE_MISMATCH


def generation_charges_check(run: ReconciliationRun, since: datetime | None) -> dict[str, int]:
    """Record a finding for every finished generation (of the run's scope) without exactly one charge of its cost."""
    found = 0
    finished = in_scope(run, Generation.objects.filter(status__in=FINISHED), since)
    for generation in mischarged(finished):
        found += 1
        finding_record(
            run=run,
            kind=_charge_kind(generation),
            account_id=generation.account_id,
            reference=generation.pk,
            amount=-generation.shortfall,
            detail=f"{generation.status} generation cost {generation.cost} USD; {generation.charge_count} charge(s) "
            f"totalling {generation.charged} USD, repairs {generation.repaired} USD; a fix would be "
            f"{-generation.shortfall:+} USD",
        )
    return {"generations_checked": finished.count(), "charge_findings": found}


@transaction.atomic
def generation_charge_repair(*, finding: ReconciliationFinding, by: AbstractBaseUser | None = None) -> str:
    """Post the adjustment that makes a generation's charges come to its cost, memo naming the finding.

    The amount is recomputed now, under the account's lock, not taken from the finding: a later finding
    about the same generation, or a second click, then finds nothing left to repair.
    """
    if finding.kind not in CHARGE_KINDS:
        raise ValueError(f"finding #{finding.pk} is not about a generation's charge")
    if finding.fix_entry_id:
        return f"finding #{finding.pk} was already repaired by ledger entry #{finding.fix_entry_id}"
    generation = Generation.objects.get(pk=finding.reference)
    account = Account.objects.select_for_update().get(pk=generation.account_id)
    current = next(iter(mischarged(Generation.objects.filter(pk=generation.pk))), None)
    if current is None:
        return f"generation {generation.pk} is already charged correctly; nothing to repair"
    entry = ledger_adjust(
        account=account,
        amount=-current.shortfall,
        idempotency_key=f"reconciliation-fix:{finding.pk}",
        memo=f"reconciliation finding #{finding.pk} (run {finding.run_id}, {finding.kind}): generation "
        f"{generation.pk} cost {generation.cost} USD but was charged {current.charged} USD",
        created_by=by,
    )
    finding.fix_entry = entry
    finding.save(update_fields=["fix_entry"])
    return f"generation {generation.pk}: adjustment of {entry.amount:+} USD posted as ledger entry #{entry.pk}"


def _lookup_providers() -> dict[int, Provider]:
    # OpenRouter answers GET {base_url}/generation?id=...; other gateways with that endpoint are named in settings.
    named = set(getattr(settings, "RECONCILE_COST_LOOKUP_PROVIDERS", ()))
    providers = Provider.objects.all()
    return {p.pk: p for p in providers if p.name in named or urlsplit(p.base_url).hostname == "openrouter.ai"}


def upstream_cost_lookup(session: requests.Session, provider: Provider, upstream_id: str) -> Decimal | None:
    """Ask a provider what it charged for one generation (OpenRouter's `/generation`); None if not known yet."""
    response = session.get(
        f"{provider.base_url.rstrip('/')}/generation",
        params={"id": upstream_id},
        headers={**provider.extra_headers, "Authorization": f"Bearer {provider.resolved_api_key()}"},
        timeout=(float(provider.connect_timeout_s), LOOKUP_READ_TIMEOUT_S),
    )
    if response.status_code == 404:
        return None  # not published yet: a later run asks again
    response.raise_for_status()
    data = response.json(parse_float=Decimal).get("data") or {}
    value = data.get("total_cost", data.get("cost"))
    if value is None or isinstance(value, bool):
        return None
    return usd(Decimal(str(value)))


# What the provider's own lookup may still tell: no upstream cost yet, or one computed from the route's cost.
_upstream_cost_unreported = Q(upstream_cost__isnull=True) | Q(
    upstream_cost_source=Generation.UpstreamCostSource.COMPUTED
)


def upstream_costs_fetch(*, now: datetime) -> tuple[int, int]:
    """Record the upstream cost of recent generations whose provider reports it on request; (recorded, failed)."""
    providers = _lookup_providers()
    if not providers:
        return 0, 0
    window = timedelta(hours=float(getattr(settings, "RECONCILE_COST_LOOKUP_HOURS", 24)))
    limit = int(getattr(settings, "RECONCILE_COST_LOOKUPS_PER_RUN", 200))
    due = (
        Generation.objects.filter(
            _upstream_cost_unreported,
            provider_id__in=providers,
            status__in=FINISHED,
            finished_at__gte=now - window,
            finished_at__lte=now - LOOKUP_DELAY,
        )
        .exclude(upstream_id="")
        .order_by("finished_at")
        .values_list("pk", "provider_id", "upstream_id")[:limit]
    )
    recorded = failed = 0
    with requests.Session() as session:
        for pk, provider_id, upstream_id in due:
            try:
                cost = upstream_cost_lookup(session, providers[provider_id], upstream_id)
            except (requests.RequestException, ValueError, ArithmeticError, AttributeError) as exc:
                failed += 1
                log.warning("upstream cost lookup for %s at %s failed: %r", pk, providers[provider_id], exc)
                continue
            if cost is not None:
                recorded += Generation.objects.filter(_upstream_cost_unreported, pk=pk).update(
                    upstream_cost=cost,
                    upstream_cost_source=Generation.UpstreamCostSource.REPORTED,
                    margin=F("cost") - cost,
                )
    return recorded, failed


def _margin_pct() -> Decimal:
    return Decimal(str(getattr(settings, "RECONCILE_MARGIN_ALERT_PCT", "5")))


def generations_below_margin(
    *, since: datetime | None = None, run: ReconciliationRun | None = None
) -> QuerySet[Generation]:
    """Return finished generations (of the run's scope) with an upstream cost whose margin is below the threshold."""
    ratio = _margin_pct() / Decimal(100)
    generations = Generation.objects.filter(status__in=FINISHED, upstream_cost__isnull=False)
    if run is not None:
        generations = in_scope(run, generations, since)
    elif since is not None:
        generations = generations.filter(started_at__gte=since)
    # margin < cost * pct / 100, also true for a free generation that cost us something upstream.
    return (
        generations.annotate(
            # Computed, not the stored `margin`: an upstream cost may be recorded without one.
            margin_now=ExpressionWrapper(F("cost") - F("upstream_cost"), output_field=MONEY),
            floor=ExpressionWrapper(F("cost") * Value(ratio, output_field=MONEY), output_field=MONEY),
        )
        .filter(margin_now__lt=F("floor"))
        .select_related("provider")
        .order_by("started_at")
    )


def _upstream_by_provider(run: ReconciliationRun, since: datetime | None) -> dict[str, dict[str, str | int]]:
    generations = in_scope(run, Generation.objects.filter(status__in=FINISHED, upstream_cost__isnull=False), since)
    rows = generations.values("provider__name").annotate(n=Count("pk"), cost=Sum("cost"), upstream=Sum("upstream_cost"))
    summary: dict[str, dict[str, str | int]] = {}
    for row in rows.order_by("provider__name"):
        margin = row["cost"] - row["upstream"]
        pct = (margin * 100 / row["cost"]).quantize(Decimal("0.01")) if row["cost"] else None
        summary[row["provider__name"] or "-"] = {
            "generations": row["n"],
            "cost": str(row["cost"]),
            "upstream_cost": str(row["upstream"]),
            "margin_pct": str(pct) if pct is not None else "-",
        }
    return summary


def upstream_costs_check(run: ReconciliationRun, since: datetime | None) -> dict[str, Any]:
    """Record upstream costs that providers report on request, and flag each thin margin once."""
    recorded, failed = upstream_costs_fetch(now=timezone.now())
    already = ReconciliationFinding.objects.filter(kind=LOW_MARGIN, reference=OuterRef("pk"))
    flagged = 0
    pct = _margin_pct()
    for generation in generations_below_margin(since=since, run=run).exclude(Exists(already)):
        flagged += 1
        finding_record(
            run=run,
            kind=LOW_MARGIN,
            account_id=generation.account_id,
            reference=generation.pk,
            amount=generation.margin_now,
            detail=f"{generation.provider or 'unknown provider'} charged {generation.upstream_cost} USD upstream for "
            f"a generation we sold for {generation.cost} USD: margin {generation.margin_now} USD, below {pct}%",
        )
    return {
        "upstream_costs_recorded": recorded,
        "upstream_cost_lookups_failed": failed,
        "low_margins": flagged,
        "upstream_by_provider": _upstream_by_provider(run, since),
    }


register_check("expired_holds", expired_holds_check)
register_check("generation_charges", generation_charges_check)
register_check("upstream_costs", upstream_costs_check)
for _kind in CHARGE_KINDS:
    register_fixer(_kind, generation_charge_repair)
