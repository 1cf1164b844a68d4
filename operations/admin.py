"""Operations admin: incidents and destination pauses; actions call services."""

from __future__ import annotations

import copy

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseNotAllowed, HttpResponseRedirect, QueryDict

from operations.models import (
    DestinationPause,
    Incident,
    IncidentNotification,
    IncidentState,
)
from operations.services.incidents import (
    IncidentTransitionRefused,
    incident_acknowledge,
    incident_resolve,
)
from transmissions.engine.controls import destination_pause_close


class IncidentNotificationInline(admin.TabularInline):
    model = IncidentNotification
    extra = 0
    can_delete = False
    fields = ("event", "created_at", "email_status", "webhook_status")
    readonly_fields = fields

    def has_add_permission(self, request, obj=None) -> bool:
        return False


class IncidentAcknowledgeForm(forms.Form):
    note = forms.CharField(
        label="Note (optional)",
        required=False,
        max_length=255,
        widget=forms.Textarea(attrs={"rows": 2, "cols": 60}),
        help_text="What you are doing about it, for the audit trail.",
    )


class IncidentResolveForm(forms.Form):
    resolution = forms.CharField(
        label="Why is it resolved?",
        max_length=255,
        widget=forms.Textarea(attrs={"rows": 2, "cols": 60}),
        help_text="Required: what cleared the problem, or why nothing more is done.",
        error_messages={"required": "Say why the incident is resolved."},
    )


@admin.register(Incident)
class IncidentAdmin(admin.ModelAdmin):
    """Incidents are read here and changed only by acknowledging or resolving them
    from their own page, each through its service; the page has no Save."""

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
    # Acknowledging and resolving happen on each incident's page, with a note or a
    # reason; list actions would skip both.
    actions = None
    change_form_template = "admin/operations/incident/change_form.html"

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def change_view(self, request, object_id, form_url="", extra_context=None):
        """GET: the incident, read-only, with its acknowledge and resolve forms.
        POST: one of those two, nothing else (no field of the incident is saved)."""
        incident = self.get_object(request, object_id)
        if incident is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        acknowledge_form = IncidentAcknowledgeForm(prefix="acknowledge")
        resolve_form = IncidentResolveForm(prefix="resolve")
        if request.method == "POST":
            if not self.has_change_permission(request, incident):
                raise PermissionDenied
            action = request.POST.get("incident_action")
            if action == "acknowledge":
                acknowledge_form = IncidentAcknowledgeForm(
                    request.POST, prefix="acknowledge"
                )
                if acknowledge_form.is_valid():
                    return self._act(
                        request,
                        incident,
                        lambda: incident_acknowledge(
                            incident=incident,
                            actor=request.user,
                            note=acknowledge_form.cleaned_data["note"],
                        ),
                        "acknowledged: it is yours, and reminders stop",
                    )
            elif action == "resolve":
                resolve_form = IncidentResolveForm(request.POST, prefix="resolve")
                if resolve_form.is_valid():
                    return self._act(
                        request,
                        incident,
                        lambda: incident_resolve(
                            incident=incident,
                            resolution=resolve_form.cleaned_data["resolution"],
                            actor=request.user,
                        ),
                        "resolved",
                    )
            else:
                return HttpResponseNotAllowed(["GET"])
            # A refused form: the page again, read-only, with the error shown.
            request = _as_get(request)
        can_act = self.has_change_permission(request, incident)
        context = {
            **(extra_context or {}),
            "show_save": False,
            "show_save_and_continue": False,
            "show_save_and_add_another": False,
            "show_delete": False,
            "can_acknowledge": can_act and incident.state == IncidentState.OPEN,
            "can_resolve": can_act and incident.state != IncidentState.RESOLVED,
            "acknowledge_form": acknowledge_form,
            "resolve_form": resolve_form,
        }
        return super().change_view(request, object_id, form_url, context)

    def _act(self, request, incident, call, done: str):
        try:
            call()
        except IncidentTransitionRefused as exc:
            self.message_user(request, str(exc), messages.ERROR)
        else:
            self.message_user(request, f"Incident {done}.", messages.SUCCESS)
        return HttpResponseRedirect(request.path)


def _as_get(request):
    """The request as a GET, to render the read-only page after a refused form
    (the admin would otherwise treat a POST as a save)."""
    copied = copy.copy(request)
    copied.method = "GET"
    copied.POST = QueryDict()
    return copied


@admin.register(DestinationPause)
class DestinationPauseAdmin(admin.ModelAdmin):
    list_display = ("destination_ods_code", "reason", "opened_at", "closed_at")
    list_filter = ("closed_at",)
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
            destination_pause_close(
                halt=pause,
                reason=f"Lifted by {request.user.get_username()}",
                actor=request.user,
            )
        self.message_user(request, "Pause lifted.")
