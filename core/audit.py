"""The audit page: every operator action recorded in Django's admin log, read-only, in one list."""

from __future__ import annotations

from django.contrib import admin
from django.contrib.admin.models import LogEntry
from django.utils.html import format_html
from django.utils.text import Truncator

from .admin import BoundedListMixin, ReadOnlyMixin


@admin.register(LogEntry)
class OperatorActionAdmin(ReadOnlyMixin, BoundedListMixin, admin.ModelAdmin[LogEntry]):
    """Who did what to which object, with the reason they gave; written by the admin, never edited."""

    list_display = ("action_time", "user", "action_flag", "content_type", "object_link", "message")
    list_filter = ("action_flag", "user", "content_type", "action_time")
    search_fields = ("object_repr", "change_message", "object_id__exact")
    list_select_related = ("user", "content_type")
    date_hierarchy = "action_time"
    fields = ("action_time", "user", "action_flag", "content_type", "object_id", "object_link", "message_full")
    readonly_fields = fields

    @admin.display(description="object", ordering="object_repr")
    def object_link(self, obj: LogEntry) -> str:
        url = obj.get_admin_url()
        if not url or obj.is_deletion():
            return obj.object_repr
        return format_html('<a href="{}">{}</a>', url, obj.object_repr)

    @admin.display(description="what was done")
    def message(self, obj: LogEntry) -> str:
        return Truncator(obj.get_change_message()).chars(200)

    @admin.display(description="what was done")
    def message_full(self, obj: LogEntry) -> str:
        return obj.get_change_message()
