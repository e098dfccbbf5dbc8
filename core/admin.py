"""The pieces every ML Router admin module shares: links, money cells, a bounded paginator with honest
counts, read-only and search mixins.

Only Django and `core` here: each app's admin builds on these, and none of them on another app's admin.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from django.contrib.admin.views.main import ChangeList
from django.core.paginator import Paginator
from django.db import connections
from django.db.models import Q, QuerySet
from django.urls import reverse
from django.utils.functional import cached_property
from django.utils.html import format_html

from .usd import usd_exact, usd_short

if TYPE_CHECKING:
    from django.http import HttpRequest

_NUMBER = re.compile(r"-?\d{1,18}")


def search_number(term: str) -> int | None:
    """The number a search term is (`12`, `#12`), or None."""
    number = term.strip().lstrip("#")
    return int(number) if _NUMBER.fullmatch(number) else None


def looks_like_id(term: str) -> bool:
    """One token with a digit or a colon (`gen-…`, `telegram:…`, `42`): looked up exactly, never as words."""
    term = term.strip()
    return bool(term) and not any(c.isspace() for c in term) and any(c.isdigit() or c == ":" for c in term)


def admin_link(obj: Any, text: str | None = None) -> str:
    """Return a link to an object's admin change page."""
    if obj is None:
        return "—"
    url = reverse(f"admin:{obj._meta.app_label}_{obj._meta.model_name}_change", args=[obj.pk])
    return format_html('<a href="{}">{}</a>', url, text if text is not None else str(obj))


def usd_cell(value: Decimal | None) -> str:
    """A list cell: the amount to six places at most, every digit in its tooltip."""
    if value is None:
        return "—"
    return format_html('<span title="{}">{}</span>', usd_exact(value), usd_short(value))


class BoundedCountPaginator(Paginator):
    """Counts at most `cap` rows, so a changelist never runs COUNT(*) over a table of millions.

    PostgreSQL's estimate comes first (`pg_class.reltuples` for the whole table, the planner's row
    estimate for a filtered list): when it is `cap` or more, that is the total and nothing is counted,
    and the list says "about 1.2M" (`count_text`). Only a list expected to be short is counted, up to
    `cap` rows. Counting even `cap` rows of a value one row in fifty has reads half a million rows.
    """

    cap = 10_000
    # A list that fits on one page, read while counting it: `BoundedChangeList` shows these rows.
    only_page: list | None = None

    @cached_property
    def count(self) -> int:
        estimate = rows_estimate(self.object_list)
        if estimate is not None and estimate >= self.cap:
            return estimate
        # Expected short: read its first page. A rare value's rows are found by the same walk whether they
        # are then counted or listed, so a list that fits on a page is walked once, not twice.
        first = list(self.object_list[: self.per_page + 1])
        if len(first) <= self.per_page:
            self.only_page = first
            return len(first)
        exact = self.object_list.order_by()[: self.cap].count()
        if exact < self.cap:
            return exact
        return max(self.cap, estimate or self.cap)

    @property
    def count_capped(self) -> bool:
        return self.count >= self.cap

    @property
    def count_text(self) -> str:
        return f"about {count_short(self.count)}" if self.count_capped else f"{self.count:,}"


class BoundedChangeList(ChangeList):
    """Shows the rows BoundedCountPaginator read while counting a list that fits on one page.

    Django's own reads such a list again, without a limit, after counting it.
    """

    def get_results(self, request: HttpRequest) -> None:
        super().get_results(request)
        only_page = getattr(self.paginator, "only_page", None)
        if only_page is not None and not self.multi_page:
            self.result_list = only_page


class BoundedListMixin:
    """For a list of millions of rows: counts bounded by BoundedCountPaginator, no unbounded full count."""

    paginator = BoundedCountPaginator
    show_full_result_count = False

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return BoundedChangeList


def count_short(n: int) -> str:
    """`950`, `12K`, `1.2M`: an estimate's few meaningful digits."""
    for size, suffix in ((1_000_000_000, "B"), (1_000_000, "M"), (1_000, "K")):
        if n >= size:
            value = n / size
            return f"{value:.1f}".removesuffix(".0") + suffix if value < 10 else f"{value:.0f}{suffix}"
    return str(n)


def rows_estimate(queryset: QuerySet) -> int | None:
    """PostgreSQL's estimate of a queryset's rows, without counting them; None elsewhere."""
    if connections[queryset.db].vendor != "postgresql":
        return None
    with connections[queryset.db].cursor() as cursor:
        if not queryset.query.where:
            cursor.execute(
                "SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass", [queryset.model._meta.db_table]
            )
            row = cursor.fetchone()
            # -1: never analyzed
            if row and row[0] >= 0:
                return int(row[0])
        sql, params = queryset.order_by().query.sql_with_params()
        cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
        plan = cursor.fetchone()[0]
        plan = json.loads(plan) if isinstance(plan, str) else plan
        return int(plan[0]["Plan"]["Plan Rows"])


class ReadOnlyMixin:
    """For records that only services write (the ledger, holds, generations): nobody edits them here."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class IdSearchMixin:
    """Lets a search for a number match integer columns exactly, through their indexes.

    Django's own `=id` search casts every row's id to text and cannot use an index.
    """

    search_id_fields: tuple[str, ...] = ()

    def get_search_results(self, request: HttpRequest, queryset: QuerySet, search_term: str) -> tuple[QuerySet, bool]:
        results, may_have_duplicates = super().get_search_results(request, queryset, search_term)  # type: ignore[misc]
        term = search_term.strip().lstrip("#")
        if self.search_id_fields and _NUMBER.fullmatch(term):
            by_id = Q.create([(field, int(term)) for field in self.search_id_fields], connector=Q.OR)
            results = results | queryset.filter(by_id)
        return results, may_have_duplicates


class ExactSearchMixin:
    """Search for tables of millions of rows: each term is an index lookup, never a substring scan.

    A term matches `search_exact_fields` (indexed text columns) exactly, a number `search_id_fields`, and
    whatever `search_q` adds (accounts.admin.AccountSearchMixin: the accounts and keys a term names).
    Django's own search would OR every field's `LIKE '%term%'` and read the whole table.
    """

    search_exact_fields: tuple[str, ...] = ()
    search_id_fields: tuple[str, ...] = ()

    def search_q(self, term: str) -> Q:
        """What else a term matches; nothing here."""
        return Q(pk__in=[])

    def get_search_results(self, request: HttpRequest, queryset: QuerySet, search_term: str) -> tuple[QuerySet, bool]:
        term = search_term.strip()
        if not term:
            return queryset, False
        q = Q.create([(field, term) for field in self.search_exact_fields], connector=Q.OR)
        number = search_number(term)
        if self.search_id_fields and number is not None:
            q |= Q.create([(field, number) for field in self.search_id_fields], connector=Q.OR)
        return queryset.filter(q | self.search_q(term)), False


# Registers the audit page (Django's LogEntry), which builds on the mixins above.
from . import audit  # noqa: E402, F401
