"""CSV exports of an admin list, with the list's filters and search, streamed row by row.

The rows come from the changelist's own queryset through a server-side cursor (`iterator`), and each
line is sent as soon as it is written, so a million rows never sit in memory at once.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from django.contrib.admin.options import IncorrectLookupParameters
from django.http import HttpResponseRedirect, StreamingHttpResponse
from django.urls import path
from django.utils import timezone

from .admin_guard import permission_required

if TYPE_CHECKING:
    from django.db.models import QuerySet
    from django.http import HttpRequest, HttpResponse
    from django.urls import URLPattern

# Rows fetched per round trip of the server-side cursor.
EXPORT_CHUNK_ROWS = 2000
# A cell starting with one of these is a formula to a spreadsheet; it is exported with a leading quote.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


class _Echo:
    """A file that hands back what is written to it, so csv.writer produces strings to stream."""

    def write(self, value: str) -> str:
        return value


def csv_cell(value: Any) -> Any:
    """Money as its exact decimal digits (never `0E-10`), times in ISO 8601, text safe from formulas."""
    if value is None:
        return ""
    if isinstance(value, Decimal):
        return f"{value:f}"
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return f"'{value}"
    return value


def csv_lines(queryset: QuerySet, columns: tuple[tuple[str, str], ...], chunk_size: int) -> Iterator[str]:
    """Yield the header and one CSV line per row of `queryset` (`columns`: header, field lookup)."""
    writer = csv.writer(_Echo())
    yield writer.writerow([header for header, _ in columns])
    rows = queryset.values_list(*(lookup for _, lookup in columns)).iterator(chunk_size=chunk_size)
    for row in rows:
        yield writer.writerow([csv_cell(value) for value in row])


class CsvExportMixin:
    """Adds `export/` to a ModelAdmin: its list as CSV, filtered and searched as on screen.

    Needs the `<app>.export_<model>` permission, declared in the model's Meta.
    """

    export_columns: tuple[tuple[str, str], ...] = ()
    export_chunk_rows = EXPORT_CHUNK_ROWS
    change_list_template = "admin/export_change_list.html"

    def has_export_permission(self, request: HttpRequest) -> bool:
        opts = self.opts  # type: ignore[attr-defined]
        return request.user.has_perm(f"{opts.app_label}.export_{opts.model_name}")

    def get_urls(self) -> list[URLPattern]:
        opts = self.opts  # type: ignore[attr-defined]
        export = self.admin_site.admin_view(self.export_view)  # type: ignore[attr-defined]
        name = f"{opts.app_label}_{opts.model_name}_export"
        return [path("export/", export, name=name), *super().get_urls()]  # type: ignore[misc]

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        extra_context = {**(extra_context or {}), "can_export": self.has_export_permission(request)}
        return super().changelist_view(request, extra_context)  # type: ignore[misc]

    def export_view(self, request: HttpRequest) -> HttpResponse:
        """The list as CSV: the changelist's queryset, so its filters, search and ordering apply."""
        opts = self.opts  # type: ignore[attr-defined]
        permission_required(request, f"{opts.app_label}.view_{opts.model_name}")
        permission_required(request, f"{opts.app_label}.export_{opts.model_name}")
        try:
            changelist = self.get_changelist_instance(request)  # type: ignore[attr-defined]
        except IncorrectLookupParameters:
            return HttpResponseRedirect(f"{request.path.removesuffix('export/')}?e=1")
        lines = csv_lines(changelist.queryset, self.export_columns, self.export_chunk_rows)
        stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
        filename = f"{opts.model_name}-{stamp}.csv"
        return StreamingHttpResponse(
            lines,
            content_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{filename}"'},
        )
