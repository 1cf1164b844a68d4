"""IG screens for transmissions: read-only rows, and admin actions that call the
engine's services (halts) and the MESH quarantine's (resolving a kept answer)."""

import uuid

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.views.decorators.cache import never_cache

from audit.configuration_changes import ConfigurationChangeAuditMixin
from docflow.admin import SendingOrganisationAdmin, SendingOrganisationScopedMixin
from docflow.models import Channel, SendingOrganisation
from transmissions.channels.mesh.conformance.quarantine import (
    QuarantineNotApplicable,
    QuarantineStateError,
    mesh_quarantined_answer_apply,
    mesh_quarantined_answer_close,
)
from transmissions.engine.controls import (
    outbound_halt_close,
    outbound_pause,
    outbound_resume,
)
from transmissions.models import (
    HaltKind,
    MeshEndpointLookup,
    MeshInboxMessage,
    MeshMailbox,
    MeshQuarantinedAnswer,
    MeshQuarantineStatus,
    OutboundHalt,
    Transmission,
)


class RouteReasonFilter(admin.SimpleListFilter):
    """Why the channel was chosen; a blank reason is named (the profile's default),
    so no choice is a link without text."""

    title = "route reason"
    parameter_name = "route_reason"
    DEFAULT = "(default)"

    def lookups(self, request, model_admin):
        reasons = (
            model_admin.get_queryset(request)
            .order_by("route_reason")
            .values_list("route_reason", flat=True)
            .distinct()
        )
        return [
            (reason or self.DEFAULT, reason or "Destination profile's default")
            for reason in reasons
        ]

    def queryset(self, request, queryset):
        if self.value() is None:
            return queryset
        if self.value() == self.DEFAULT:
            return queryset.filter(route_reason="")
        return queryset.filter(route_reason=self.value())


@admin.register(Transmission)
class TransmissionAdmin(SendingOrganisationScopedMixin, admin.ModelAdmin):
    """Sends of the granted sending organisations, read-only."""

    list_display = [
        "public_id",
        "channel",
        "destination_ods_code",
        "state",
        "status_code",
        "mesh_status",
        "attempts",
    ]
    list_filter = ["channel", "state", "status_code", RouteReasonFilter]
    readonly_fields = [f.name for f in Transmission._meta.fields]
    show_full_result_count = False

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        # Viewing only (superusers included): no Save on a page nothing can change.
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class PauseForm(forms.ModelForm):
    class Meta:
        model = OutboundHalt
        fields = ["sending_organisation", "reason"]


@admin.register(OutboundHalt)
class OutboundHaltAdmin(admin.ModelAdmin):
    """The kill switch: adding a halt pauses outbound; the action lifts halts."""

    form = PauseForm
    list_display = [
        "__str__",
        "reason",
        "opened_at",
        "opened_by",
        "closed_at",
        "closed_by",
    ]
    list_filter = ["kind", ("closed_at", admin.EmptyFieldListFilter)]
    actions = ["lift_selected"]

    def get_readonly_fields(self, request, obj=None):
        if obj is not None:
            return [f.name for f in OutboundHalt._meta.fields]
        return []

    def save_model(self, request, obj, form, change):
        if change:
            return
        halt = outbound_pause(
            reason=form.cleaned_data["reason"],
            actor=request.user,
            sending_organisation=form.cleaned_data["sending_organisation"],
        )
        obj.pk = halt.pk

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.action(
        description="Lift the selected halts (resume outbound)", permissions=["change"]
    )
    def lift_selected(self, request, queryset):
        closed = [
            outbound_halt_close(
                halt=halt, reason="Lifted in the admin", actor=request.user
            )
            for halt in queryset.filter(closed_at__isnull=True)
        ]
        self.message_user(
            request, f"{len(closed)} halt(s) lifted.", level=messages.SUCCESS
        )


admin.site.unregister(SendingOrganisation)


@admin.register(SendingOrganisation)
class SendingOrganisationWithOutboundAdmin(SendingOrganisationAdmin):
    """The kill switch per organisation, offered to whoever may open and lift halts
    (viewing the organisations is not enough)."""

    actions = ["pause_outbound", "resume_outbound"]

    def has_pause_outbound_permission(self, request) -> bool:
        return request.user.has_perm("transmissions.add_outboundhalt")

    def has_resume_outbound_permission(self, request) -> bool:
        return request.user.has_perm("transmissions.change_outboundhalt")

    @admin.action(
        description="Pause outbound sending (kill switch)",
        permissions=["pause_outbound"],
    )
    def pause_outbound(self, request, queryset):
        for organisation in queryset:
            outbound_pause(
                reason="Paused in the admin",
                actor=request.user,
                sending_organisation=organisation,
            )
        self.message_user(request, f"Outbound paused for {queryset.count()}.")

    @admin.action(
        description="Resume outbound sending (lift every halt)",
        permissions=["resume_outbound"],
    )
    def resume_outbound(self, request, queryset):
        lifted = 0
        for organisation in queryset:
            lifted += len(
                outbound_resume(
                    reason="Resumed in the admin",
                    actor=request.user,
                    sending_organisation=organisation,
                    kinds=tuple(HaltKind.values),
                )
            )
        self.message_user(request, f"{lifted} halt(s) lifted.")


@admin.register(MeshMailbox)
class MeshMailboxAdmin(
    ConfigurationChangeAuditMixin, SendingOrganisationScopedMixin, admin.ModelAdmin
):
    """Mailboxes name their secrets; the secrets themselves live in the environment."""

    list_display = [
        "mailbox_id",
        "sending_organisation",
        "default_workflow_id",
        "is_active",
        "last_handshake_at",
        "last_handshake_error",
    ]
    list_filter = ["is_active"]
    readonly_fields = ["last_handshake_at", "last_handshake_error", "created_at"]


@admin.register(MeshEndpointLookup)
class MeshEndpointLookupAdmin(admin.ModelAdmin):
    list_display = ["ods_code", "workflow_id", "mailbox_id", "looked_up_at"]
    search_fields = ["ods_code", "mailbox_id"]
    readonly_fields = ["ods_code", "workflow_id", "mailbox_id", "looked_up_at"]

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(MeshInboxMessage)
class MeshInboxMessageAdmin(SendingOrganisationScopedMixin, admin.ModelAdmin):
    sending_organisation_lookup = "mailbox__sending_organisation"

    list_display = [
        "message_id",
        "message_type",
        "workflow_id",
        "status_code",
        "response_code",
        "outcome",
        "received_at",
        "acknowledged_at",
    ]
    list_filter = ["message_type", "outcome"]
    readonly_fields = [f.name for f in MeshInboxMessage._meta.fields]
    show_full_result_count = False

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class QuarantineResolveForm(forms.Form):
    """What a person decided about one kept MESH answer."""

    APPLY = "apply"
    RECORD = "record"
    DISMISS = "dismiss"
    decision = forms.ChoiceField(
        choices=[
            (APPLY, "Apply it to our send named below"),
            (RECORD, "Record which send it was about, without applying it"),
            (DISMISS, "Dismiss it: nothing to apply"),
        ],
        widget=forms.RadioSelect,
    )
    send = forms.CharField(
        label="Our send",
        required=False,
        max_length=64,
        help_text=(
            "The MESH message id of our send, or the id of its transmission or "
            "document. Not needed to dismiss."
        ),
    )
    reason = forms.CharField(
        max_length=255,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="What you established, and how (recorded in the audit trail).",
    )

    def clean(self):
        cleaned = super().clean()
        if (
            cleaned.get("decision") in (self.APPLY, self.RECORD)
            and not cleaned.get("send", "").strip()
        ):
            self.add_error("send", "Name the send this answer is about.")
        return cleaned


@admin.register(MeshQuarantinedAnswer)
class MeshQuarantinedAnswerAdmin(SendingOrganisationScopedMixin, admin.ModelAdmin):
    """Answers from our MESH inbox that changed nothing, for a person to match by
    hand (identifiers only here; the kept content is encrypted in the store).
    Integration operators resolve an open one on its own page: apply it to the
    send it is about, record the send without applying it, or dismiss it."""

    sending_organisation_lookup = "mailbox__sending_organisation"
    change_form_template = "admin/transmissions/meshquarantinedanswer/change_form.html"

    list_display = [
        "message_id",
        "kind",
        "status",
        "sender_mailbox",
        "workflow_id",
        "referenced_id",
        "response_code",
        "received_at",
    ]
    list_filter = ["kind", "status"]
    search_fields = ["message_id", "sender_mailbox", "referenced_id", "local_id"]
    readonly_fields = [f.name for f in MeshQuarantinedAnswer._meta.fields]
    show_full_result_count = False

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def may_resolve(self, request) -> bool:
        return request.user.has_perm("transmissions.resolve_meshquarantinedanswer")

    def get_urls(self):
        return [
            path(
                "<path:object_id>/resolve/",
                self.admin_site.admin_view(never_cache(self.resolve_view)),
                name="transmissions_meshquarantinedanswer_resolve",
            ),
            *super().get_urls(),
        ]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = dict(extra_context or {})
        obj = self.get_object(request, object_id)
        if (
            obj is not None
            and obj.status == MeshQuarantineStatus.OPEN
            and self.may_resolve(request)
        ):
            extra_context["resolve_url"] = reverse(
                "admin:transmissions_meshquarantinedanswer_resolve", args=[obj.pk]
            )
        return super().change_view(request, object_id, form_url, extra_context)

    def send_for(self, answer: MeshQuarantinedAnswer, text: str) -> Transmission:
        """The MESH send of the answer's own organisation that ``text`` names: its
        MESH message id, its transmission id, or its document's id (latest send)."""
        text = text.strip()
        sends = Transmission.objects.select_related("document").filter(
            channel=Channel.MESH,
            document__sending_organisation_id=answer.mailbox.sending_organisation_id,
        )
        # A MESH message id is 32 hex digits, which also parses as a UUID.
        found = sends.filter(external_id=text).first()
        try:
            key = uuid.UUID(text)
        except ValueError:
            key = None
        if found is None and key is not None:
            found = (
                sends.filter(public_id=key).first()
                or sends.filter(document__public_id=key).order_by("-id").first()
            )
        if found is None:
            raise QuarantineNotApplicable(
                "No MESH send of this mailbox's organisation has that id."
            )
        return found

    def resolve_view(self, request: HttpRequest, object_id: str):
        """Apply, record or dismiss one open kept answer, with a reason."""
        if not self.may_resolve(request):
            raise PermissionDenied
        answer = self.get_object(request, object_id)
        if answer is None:
            raise Http404("No such answer.")
        change_url = reverse(
            "admin:transmissions_meshquarantinedanswer_change", args=[answer.pk]
        )
        initial = {}
        if answer.transmission_id:
            initial["send"] = str(answer.transmission.public_id)
        form = QuarantineResolveForm(request.POST or None, initial=initial)
        if request.method == "POST" and form.is_valid():
            try:
                self.resolve(request, answer, form.cleaned_data)
            except QuarantineNotApplicable as exc:
                form.add_error("send", str(exc))
            except QuarantineStateError as exc:
                messages.error(request, str(exc))
                return HttpResponseRedirect(change_url)
            else:
                return HttpResponseRedirect(change_url)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Resolve a kept MESH answer",
            "answer": answer,
            "form": form,
            "change_url": change_url,
        }
        return TemplateResponse(
            request, "admin/transmissions/meshquarantinedanswer/resolve.html", context
        )

    def resolve(self, request, answer: MeshQuarantinedAnswer, cleaned: dict) -> None:
        """Carry out one decision through the quarantine's services."""
        decision, reason = cleaned["decision"], cleaned["reason"]
        if decision == QuarantineResolveForm.DISMISS:
            mesh_quarantined_answer_close(
                quarantined=answer,
                status=MeshQuarantineStatus.DISMISSED,
                reason=reason,
                actor=request.user,
            )
            messages.success(request, "The answer was dismissed.")
            return
        send = self.send_for(answer, cleaned["send"])
        if decision == QuarantineResolveForm.RECORD:
            mesh_quarantined_answer_close(
                quarantined=answer,
                status=MeshQuarantineStatus.MATCHED,
                reason=reason,
                actor=request.user,
                transmission=send,
            )
            messages.success(request, "The send was recorded.")
            return
        applied = mesh_quarantined_answer_apply(
            quarantined=answer, transmission=send, reason=reason, actor=request.user
        )
        messages.success(
            request,
            f"ITK3 {applied.itk3_code} was applied to the send."
            if applied.changed
            else f"ITK3 {applied.itk3_code} was recorded; the send was already "
            "past it, so nothing moved.",
        )
