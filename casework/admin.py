"""Admin: classification reference data is edited here (buckets, due rules, reasons,
teams and their guardian grants); work items are read-only, changed by services."""

from __future__ import annotations

from django.contrib import admin
from guardian.admin import GuardedModelAdmin
from simple_history.admin import SimpleHistoryAdmin

from casework.models import Team, WorkItem, WorkItemBucket, WorkItemReason
from docflow.admin import (
    ObjectPermissionsBySuperusersMixin,
    SendingOrganisationScopedHistoryMixin,
)


@admin.register(Team)
class TeamAdmin(ObjectPermissionsBySuperusersMixin, GuardedModelAdmin):
    list_display = ["name", "is_active"]
    list_filter = ["is_active"]
    search_fields = ["name"]


class WorkItemReasonInline(admin.TabularInline):
    model = WorkItemReason
    fields = ["code", "match_prefix", "category", "title", "is_clinical"]
    extra = 0
    show_change_link = True


@admin.register(WorkItemBucket)
class WorkItemBucketAdmin(admin.ModelAdmin):
    list_display = ["name", "key", "default_team", "due_within_hours", "position"]
    list_editable = ["default_team", "due_within_hours", "position"]
    list_select_related = ["default_team"]
    inlines = [WorkItemReasonInline]


@admin.register(WorkItemReason)
class WorkItemReasonAdmin(admin.ModelAdmin):
    list_display = [
        "code",
        "match_prefix",
        "category",
        "title",
        "bucket",
        "is_clinical",
    ]
    list_filter = ["bucket", "is_clinical", "match_prefix"]
    list_select_related = ["bucket"]
    search_fields = ["code", "title"]


@admin.register(WorkItem)
class WorkItemAdmin(SendingOrganisationScopedHistoryMixin, SimpleHistoryAdmin):
    """Items of the granted sending organisations, read-only."""

    list_display = [
        "public_id",
        "category",
        "reason_code",
        "bucket",
        "team",
        "assignee",
        "status",
        "due_at",
        "opened_at",
    ]
    list_filter = ["status", "category", "bucket", "team", "is_clinical"]
    list_select_related = ["bucket", "team", "assignee"]
    readonly_fields = [f.name for f in WorkItem._meta.fields]
    show_full_result_count = False

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        # Viewing only: every change goes through a service (audit and history).
        return False

    def has_delete_permission(self, request, obj=None):
        return False
