"""IG screens in the admin: a document's timeline, search by NHS number, subject
access export. Registered over the audit app's read-only admins, which cannot import
the document domain (governance is installed after audit, so this module's
registrations replace audit's).

Only IG officers (the "IG officer" group) and superusers use these screens, and an IG
officer sees the documents of the sending organisations granted to them (guardian
``docflow.access_documents``), like every other user; superusers see all. The NHS
number only ever travels in a POST body: results are reached through a random token.
"""

from __future__ import annotations

import uuid

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.http import urlencode
from django.views.decorators.cache import never_cache

from audit.admin import AccessLogAdmin, AuditEventAdmin, ig_subject_remember
from audit.models import AccessLog, AuditEvent
from docflow.ig_roles import (
    check_reason,
    ig_document_get,
    is_ig_officer,
    may_export_subject_access,
    may_search_nhs_number,
)
from docflow.models import Document
from docflow.validation import validate_nhs_number
from governance.ig import (
    ig_document_timeline,
    ig_subject_access_export,
    ig_subject_search,
)

SCOPE_HELP = (
    "Only IG officers and superusers may use this. You see the documents of the "
    "sending organisations you are granted; superusers see all of them."
)


class SubjectForm(forms.Form):
    nhs_number = forms.CharField(
        label="NHS number",
        max_length=12,
        validators=[validate_nhs_number],
        widget=forms.TextInput(attrs={"autocomplete": "off", "inputmode": "numeric"}),
    )
    reason = forms.CharField(
        label="Reason",
        max_length=500,
        help_text="Recorded in the access log, with your name and the time.",
        widget=forms.Textarea(attrs={"rows": 2}),
    )

    def clean_reason(self) -> str:
        reason = self.cleaned_data["reason"]
        try:
            check_reason(reason)
        except ValueError as error:
            raise ValidationError(str(error)) from None
        return reason


def _require(allowed: bool) -> None:
    if not allowed:
        raise PermissionDenied


def _no_store(response: HttpResponse) -> HttpResponse:
    response["Cache-Control"] = "no-store"
    return response


class IgLinks:
    """Links from the audit lists to the IG screens."""

    def timeline_url(self, public_id: str) -> str | None:
        try:
            public_id = uuid.UUID(public_id)
        except ValueError:
            return None
        return reverse("admin:audit_auditevent_timeline", args=[public_id])

    def ig_links(self, request):
        links = []
        if may_search_nhs_number(request.user):
            url = reverse("admin:audit_auditevent_nhs_number_search")
            links.append(("Search by NHS number", url))
        if may_export_subject_access(request.user):
            url = reverse("admin:audit_accesslog_subject_access")
            links.append(("Subject access request", url))
        return links


class IgAuditEventAdmin(IgLinks, AuditEventAdmin):
    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path(
                "nhs-number-search/",
                view(never_cache(self.nhs_number_search_view)),
                name="audit_auditevent_nhs_number_search",
            ),
            path(
                "timeline/<uuid:public_id>/",
                view(self.timeline_view),
                name="audit_auditevent_timeline",
            ),
            *super().get_urls(),
        ]

    def nhs_number_search_view(self, request: HttpRequest):
        """POST only carries the number; the result links use a session token."""
        _require(may_search_nhs_number(request.user))
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Search by NHS number",
            "scope_help": SCOPE_HELP,
        }
        form = SubjectForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            search = ig_subject_search(
                user=request.user,
                nhs_number=form.cleaned_data["nhs_number"],
                reason=form.cleaned_data["reason"],
            )
            token = ig_subject_remember(
                request,
                document_ids=[str(d.public_id) for d in search.documents],
                work_item_ids=search.work_item_ids,
                subject_key=search.subject_key,
            )
            query = "?" + urlencode({"subject": token})
            context.update(
                documents=[
                    (
                        document,
                        reverse(
                            "admin:audit_auditevent_timeline", args=[document.public_id]
                        ),
                    )
                    for document in search.documents
                ],
                searched=True,
                audit_url=reverse("admin:audit_auditevent_changelist") + query,
                access_url=reverse("admin:audit_accesslog_changelist") + query,
            )
            form = SubjectForm()
        context["form"] = form
        return _no_store(
            TemplateResponse(request, "admin/audit/nhs_number_search.html", context)
        )

    def timeline_view(self, request: HttpRequest, public_id: uuid.UUID):
        """Everything about one document, in order; metadata only."""
        _require(is_ig_officer(request.user))
        try:
            document = ig_document_get(user=request.user, public_id=public_id)
        except Document.DoesNotExist:
            raise Http404("No such document.") from None
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": f"Timeline of document {document.public_id}",
            "document": document,
            "entries": ig_document_timeline(document=document),
            "audit_url": reverse("admin:audit_auditevent_changelist")
            + "?"
            + urlencode({"document": str(document.public_id)}),
            "access_url": reverse("admin:audit_accesslog_changelist")
            + "?"
            + urlencode({"document": str(document.public_id)}),
            "scope_help": SCOPE_HELP,
        }
        return _no_store(
            TemplateResponse(request, "admin/audit/document_timeline.html", context)
        )


class IgAccessLogAdmin(IgLinks, AccessLogAdmin):
    def get_urls(self):
        return [
            path(
                "subject-access/",
                self.admin_site.admin_view(never_cache(self.subject_access_view)),
                name="audit_accesslog_subject_access",
            ),
            *super().get_urls(),
        ]

    def subject_access_view(self, request: HttpRequest):
        """Everything held about one NHS number, as a JSON download (audited)."""
        _require(may_export_subject_access(request.user))
        form = SubjectForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                export = ig_subject_access_export(
                    user=request.user,
                    nhs_number=form.cleaned_data["nhs_number"],
                    reason=form.cleaned_data["reason"],
                )
            except ValidationError as error:  # pragma: no cover - form validated
                messages.error(request, error.messages[0])
            else:
                response = HttpResponse(export.content, content_type="application/json")
                response["Content-Disposition"] = (
                    f'attachment; filename="{export.filename}"'
                )
                return _no_store(response)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Subject access request",
            "form": form,
            "scope_help": SCOPE_HELP,
        }
        return _no_store(
            TemplateResponse(request, "admin/audit/subject_access.html", context)
        )


admin.site.unregister(AuditEvent)
admin.site.register(AuditEvent, IgAuditEventAdmin)
admin.site.unregister(AccessLog)
admin.site.register(AccessLog, IgAccessLogAdmin)
