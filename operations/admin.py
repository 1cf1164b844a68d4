"""Operations admin: incidents and destination pauses; actions call services."""

from __future__ import annotations

from django.contrib import admin, messages

from operations.models import DestinationPause, Incident, IncidentNotification
from operations.services.health import destination_pause_lift
from operations.services.incidents import (
    IncidentTransitionRefused,
    incident_acknowledge,
    incident_resolve,
)


class IncidentNotificationInline(admin.TabularInline):
    model = IncidentNotification
    extra = 0
    can_delete = False
    fields = ("event", "created_at", "email_status", "webhook_status")
    readonly_fields = fields

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Incident)
class IncidentAdmin(admin.ModelAdmin):
    list_display = (
        "summary",
        "kind",
        "scope",
        "severity",
        "state",
        "owner",
        "opened_at",
        "resolved_at",
    )
    list_filter = ("state", "kind", "severity")
    search_fields = ("scope", "summary")
    date_hierarchy = "opened_at"
    readonly_fields = [f.name for f in Incident._meta.fields]
    inlines = [IncidentNotificationInline]
    actions = ["acknowledge", "resolve"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.action(
        description="Acknowledge (take ownership; reminders stop)",
        permissions=["change"],
    )
    def acknowledge(self, request, queryset):
        done = 0
        for incident in queryset:
            try:
                incident_acknowledge(incident=incident, actor=request.user)
            except IncidentTransitionRefused as exc:
                self.message_user(request, str(exc), messages.WARNING)
            else:
                done += 1
        self.message_user(request, f"{done} incident(s) acknowledged.")

    @admin.action(description="Resolve (closed by a person)", permissions=["change"])
    def resolve(self, request, queryset):
        for incident in queryset:
            incident_resolve(
                incident=incident,
                resolution=f"Resolved by {request.user.get_username()}",
                actor=request.user,
            )
        self.message_user(request, f"{queryset.count()} incident(s) resolved.")


@admin.register(DestinationPause)
class DestinationPauseAdmin(admin.ModelAdmin):
    list_display = ("destination_ods_code", "reason", "opened_at", "lifted_at")
    list_filter = ("lifted_at",)
    search_fields = ("destination_ods_code",)
    readonly_fields = [f.name for f in DestinationPause._meta.fields]
    actions = ["lift"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.action(
        description="Lift the pause (resume sending to the destination)",
        permissions=["change"],
    )
    def lift(self, request, queryset):
        for pause in queryset:
            destination_pause_lift(
                pause=pause,
                reason=f"Lifted by {request.user.get_username()}",
                actor=request.user,
            )
        self.message_user(request, "Pause lifted.")
