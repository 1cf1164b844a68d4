"""Admin: classification reference data is edited here (buckets, due rules, reasons,
teams and their guardian grants), every save and delete audited through the
reference-data services; work items are read-only, changed by services."""

from __future__ import annotations

from django.contrib import admin
from guardian.admin import GuardedModelAdmin
from simple_history.admin import SimpleHistoryAdmin

from casework.models import Team, WorkItem, WorkItemBucket, WorkItemReason
from casework.services.reference_data import (
    team_delete,
    team_save,
    work_item_bucket_delete,
    work_item_bucket_save,
    work_item_reason_delete,
    work_item_reason_save,
)
from docflow.admin import (
    ObjectPermissionsBySuperusersMixin,
    SendingOrganisationScopedHistoryMixin,
)


class AuditedSaveMixin:
    """Saves and deletes go through a reference-data service (one audit event
    each), from the change form, the list's editable columns and bulk delete."""

    save_service = None
    delete_service = None
    service_argument = ""

    def save_model(self, request, obj, form, change):
        type(self).save_service(**{self.service_argument: obj}, actor=request.user)

    def delete_model(self, request, obj):
        type(self).delete_service(**{self.service_argument: obj}, actor=request.user)

    def delete_queryset(self, request, queryset):
        for obj in queryset:
            self.delete_model(request, obj)


@admin.register(Team)
class TeamAdmin(
    AuditedSaveMixin, ObjectPermissionsBySuperusersMixin, GuardedModelAdmin
):
    list_display = ["name", "is_active"]
    list_filter = ["is_active"]
    search_fields = ["name"]
    save_service, delete_service, service_argument = team_save, team_delete, "team"


class WorkItemReasonInline(admin.TabularInline):
    model = WorkItemReason
    fields = [
        "code",
        "match_prefix",
        "category",
        "title",
        "action_class",
        "is_clinical",
    ]
    extra = 0
    show_change_link = True


@admin.register(WorkItemBucket)
class WorkItemBucketAdmin(AuditedSaveMixin, admin.ModelAdmin):
    list_display = ["name", "key", "default_team", "due_within_hours", "position"]
    list_editable = ["default_team", "due_within_hours", "position"]
    list_select_related = ["default_team"]
    inlines = [WorkItemReasonInline]
    save_service, delete_service = work_item_bucket_save, work_item_bucket_delete
    service_argument = "bucket"

    def save_formset(self, request, form, formset, change):
        """The bucket's reasons, edited inline, saved and deleted one audited
        service call each."""
        rows = formset.save(commit=False)
        for reason in formset.deleted_objects:
            work_item_reason_delete(reason=reason, actor=request.user)
        for reason in rows:
            work_item_reason_save(reason=reason, actor=request.user)
        formset.save_m2m()


@admin.register(WorkItemReason)
class WorkItemReasonAdmin(AuditedSaveMixin, admin.ModelAdmin):
    list_display = [
        "code",
        "match_prefix",
        "category",
        "title",
        "bucket",
        "action_class",
        "is_clinical",
    ]
    list_filter = ["bucket", "action_class", "is_clinical", "match_prefix"]
    list_select_related = ["bucket"]
    search_fields = ["code", "title"]
    save_service, delete_service = work_item_reason_save, work_item_reason_delete
    service_argument = "reason"


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
