"""IG views of the audit trail and access log: read-only for everyone."""

from __future__ import annotations

from django.contrib import admin

from audit.models import AccessLog, AuditEvent


class ReadOnlyAdmin(admin.ModelAdmin):
    show_full_result_count = False

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = [
        "sequence",
        "occurred_at",
        "actor_label",
        "action",
        "target_type",
        "target_id",
    ]
    list_filter = ["action", "actor_kind"]
    search_fields = ["=target_id", "=actor_id"]
    date_hierarchy = "occurred_at"


@admin.register(AccessLog)
class AccessLogAdmin(ReadOnlyAdmin):
    list_display = [
        "occurred_at",
        "actor_label",
        "channel",
        "action",
        "target_id",
        "reason",
    ]
    list_filter = ["channel", "action", "actor_kind"]
    search_fields = ["=target_id", "=actor_id"]
    date_hierarchy = "occurred_at"
