"""IG views of the audit trail and access log: read-only for everyone.

Nobody adds, changes or deletes a row here, superusers included (PostgreSQL refuses
it anyway). The lists filter by actor, action, dates, document and a patient looked
up by NHS number (governance.admin adds that search; the number itself never reaches
a URL, only a random token kept in the session), export what is filtered as CSV
(audited), and show how the hash chain stood at its last verification.
"""

from __future__ import annotations

import csv
import datetime
import json
import secrets
import time
import uuid
from collections.abc import Iterator
from typing import Any

from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponseRedirect, StreamingHttpResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.views.decorators.http import require_POST

from audit.models import AccessLog, AuditEvent
from audit.redaction import redact_nhs_numbers
from audit.selectors import audit_chain_status
from audit.services import audit_export_record

SUBJECTS_SESSION_KEY = "ig_subject_searches"


def ig_subject_remember(
    request: HttpRequest,
    *,
    document_ids: list[str],
    work_item_ids: list[str],
    subject_key: str,
) -> str:
    """Keep a search's result in the session under a random token for list filters.

    The token stands for the search in URLs; it says nothing about the patient and
    dies with the session or after DOCFLOW_IG_SEARCH_TTL_SECONDS.
    """
    ttl = getattr(settings, "DOCFLOW_IG_SEARCH_TTL_SECONDS", 1800)
    now = time.time()
    searches = {
        token: search
        for token, search in request.session.get(SUBJECTS_SESSION_KEY, {}).items()
        if search["expires"] > now
    }
    token = secrets.token_urlsafe(12)
    searches[token] = {
        "documents": document_ids,
        "work_items": work_item_ids,
        "key": subject_key,
        "expires": now + ttl,
    }
    request.session[SUBJECTS_SESSION_KEY] = searches
    return token


def _subject(request: HttpRequest, token: str) -> dict[str, Any] | None:
    search = request.session.get(SUBJECTS_SESSION_KEY, {}).get(token)
    if search is None or search["expires"] <= time.time():
        return None
    return search


class TextInputFilter(admin.SimpleListFilter):
    """A free-text box in the filter sidebar."""

    template = "admin/audit/input_filter.html"
    input_type = "text"

    def lookups(self, request, model_admin):
        return ((None, None),)

    def choices(self, changelist):
        yield {
            "selected": self.value() is None,
            "query_string": changelist.get_query_string(remove=[self.parameter_name]),
            "query_parts": [
                (key, value)
                for key, values in changelist.get_filters_params().items()
                if key != self.parameter_name
                for value in (values if isinstance(values, list) else [values])
            ],
            "input_type": self.input_type,
        }

    def value(self) -> str | None:
        value = super().value()
        return value.strip() or None if isinstance(value, str) else value


class ActorFilter(TextInputFilter):
    title = "actor (user name or id)"
    parameter_name = "actor"

    def queryset(self, request, queryset):
        if self.value():
            return queryset.filter(
                Q(actor_label__iexact=self.value()) | Q(actor_id=self.value())
            )
        return queryset


class ActionFilter(TextInputFilter):
    title = "action (or its start, e.g. document.)"
    parameter_name = "action"

    def queryset(self, request, queryset):
        if self.value():
            return queryset.filter(action__startswith=self.value())
        return queryset


def _day_start(value: str) -> datetime.datetime | None:
    try:
        day = datetime.date.fromisoformat(value)
    except ValueError:
        return None
    return timezone.make_aware(datetime.datetime.combine(day, datetime.time.min))


class OccurredFromFilter(TextInputFilter):
    title = "from date (inclusive)"
    parameter_name = "occurred_from"
    input_type = "date"

    def queryset(self, request, queryset):
        if self.value():
            start = _day_start(self.value())
            if start is None:
                return queryset.none()
            return queryset.filter(occurred_at__gte=start)
        return queryset


class OccurredToFilter(TextInputFilter):
    title = "to date (inclusive)"
    parameter_name = "occurred_to"
    input_type = "date"

    def queryset(self, request, queryset):
        if self.value():
            start = _day_start(self.value())
            if start is None:
                return queryset.none()
            return queryset.filter(occurred_at__lt=start + datetime.timedelta(days=1))
        return queryset


class DocumentFilter(TextInputFilter):
    title = "document public id"
    parameter_name = "document"

    def document_q(self, public_id: str) -> Q:
        return Q(target_type="document", target_id=public_id)

    def queryset(self, request, queryset):
        if not self.value():
            return queryset
        try:
            public_id = str(uuid.UUID(self.value()))
        except ValueError:
            return queryset.none()
        return queryset.filter(self.document_q(public_id))


class AuditDocumentFilter(DocumentFilter):
    def document_q(self, public_id: str) -> Q:
        # Work item events name their document in their data.
        return super().document_q(public_id) | Q(
            target_type="work_item", data__document=public_id
        )


class SubjectFilter(admin.SimpleListFilter):
    """Rows about the patient of an NHS-number search, by the search's token."""

    title = "patient (NHS-number search)"
    parameter_name = "subject"
    template = "admin/audit/subject_filter.html"

    def lookups(self, request, model_admin):
        return ((None, None),)

    def choices(self, changelist):
        yield {
            "selected": self.value() is None,
            "query_string": changelist.get_query_string(remove=[self.parameter_name]),
        }

    def subject_q(self, search: dict[str, Any]) -> Q:
        return Q(target_type="document", target_id__in=search["documents"]) | Q(
            target_type="patient", target_id=search["key"]
        )

    def queryset(self, request, queryset):
        if not self.value():
            return queryset
        search = _subject(request, self.value())
        if search is None:
            return queryset.none()
        return queryset.filter(self.subject_q(search))


class AuditSubjectFilter(SubjectFilter):
    def subject_q(self, search: dict[str, Any]) -> Q:
        return super().subject_q(search) | Q(
            target_type="work_item", target_id__in=search["work_items"]
        )


def _spreadsheet_safe(value: Any) -> str:
    text = "" if value is None else str(value)
    # A cell starting like a formula would run in a spreadsheet.
    if text[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + text
    return text


class _Echo:
    def write(self, value: str) -> str:
        return value


class ReadOnlyAdmin(admin.ModelAdmin):
    """Viewing only, for everyone: the audit tables are append-only."""

    show_full_result_count = False
    # Counting every filter's matches would read the whole table.
    show_facets = admin.ShowFacets.NEVER
    change_list_template = "admin/audit/change_list.html"
    export_columns: tuple[str, ...] = ()
    export_name = "export"
    actions = None

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    # -- links the IG screens (governance.admin) fill in --------------------------

    def timeline_url(self, public_id: str) -> str | None:
        """The IG timeline of a document, where one is installed."""
        return None

    def ig_links(self, request: HttpRequest) -> list[tuple[str, str]]:
        """IG tools offered above the list (label, URL)."""
        return []

    def document_id_of(self, obj) -> str | None:
        if obj.target_type == "document":
            return obj.target_id
        return None

    @admin.display(description="timeline")
    def timeline(self, obj) -> str:
        public_id = self.document_id_of(obj)
        url = self.timeline_url(public_id) if public_id else None
        if url is None:
            return "-"
        return format_html('<a href="{}">timeline</a>', url)

    # -- the list -----------------------------------------------------------------

    def get_urls(self):
        info = self.opts.app_label, self.opts.model_name
        return [
            path(
                "export/",
                self.admin_site.admin_view(require_POST(self.export_view)),
                name="{}_{}_export".format(*info),
            ),
            *super().get_urls(),
        ]

    def _identifier_in_query(self, request: HttpRequest) -> bool:
        return any(
            redact_nhs_numbers(value) != value
            for values in request.GET.lists()
            for value in values[1]
        )

    def _refuse_identifier(self, request: HttpRequest) -> HttpResponseRedirect:
        # The number is already in this request's URL; it must go no further.
        messages.error(
            request,
            "NHS numbers never go in a web address. Use the NHS number search.",
        )
        info = self.opts.app_label, self.opts.model_name
        return HttpResponseRedirect(reverse("admin:{}_{}_changelist".format(*info)))

    def changelist_view(self, request, extra_context=None):
        if self._identifier_in_query(request):
            return self._refuse_identifier(request)
        limit = getattr(settings, "DOCFLOW_AUDIT_ADMIN_VERIFY_LIMIT", 5000)
        context = {
            "chain_status": audit_chain_status(max_unverified=limit),
            "ig_links": self.ig_links(request),
            "export_url": reverse(
                f"admin:{self.opts.app_label}_{self.opts.model_name}_export"
            ),
            **(extra_context or {}),
        }
        return super().changelist_view(request, extra_context=context)

    def export_view(self, request: HttpRequest):
        """The filtered list as CSV; the export is an audit event of its own."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        if self._identifier_in_query(request):
            return self._refuse_identifier(request)
        changelist = self.get_changelist_instance(request)
        queryset: QuerySet = changelist.queryset
        rows = queryset.count()
        audit_export_record(
            actor=request.user,
            kind=self.opts.model_name,
            filters={key: request.GET.get(key) for key in sorted(request.GET)},
            rows=rows,
        )
        writer = csv.writer(_Echo())

        def lines() -> Iterator[str]:
            yield writer.writerow(self.export_columns)
            for obj in queryset.iterator(chunk_size=2000):
                yield writer.writerow(
                    [
                        _spreadsheet_safe(self.export_value(obj, column))
                        for column in self.export_columns
                    ]
                )

        response = StreamingHttpResponse(lines(), content_type="text/csv")
        stamp = timezone.now().strftime("%Y%m%dT%H%M%SZ")
        response["Content-Disposition"] = (
            f'attachment; filename="{self.export_name}-{stamp}.csv"'
        )
        response["Cache-Control"] = "no-store"
        return response

    def export_value(self, obj, column: str) -> Any:
        value = getattr(obj, column)
        if isinstance(value, datetime.datetime):
            return value.astimezone(datetime.UTC).isoformat()
        if isinstance(value, dict | list):
            return json.dumps(value, sort_keys=True)
        return value


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = [
        "sequence",
        "occurred_at",
        "actor_label",
        "action",
        "target_type",
        "target_id",
        "timeline",
    ]
    list_filter = [
        AuditSubjectFilter,
        ActorFilter,
        ActionFilter,
        OccurredFromFilter,
        OccurredToFilter,
        AuditDocumentFilter,
        "actor_kind",
    ]
    search_fields = ["=target_id", "=actor_id"]
    export_name = "audit-events"
    export_columns = (
        "sequence",
        "occurred_at",
        "actor_kind",
        "actor_id",
        "actor_label",
        "action",
        "target_type",
        "target_id",
        "data",
        "prev_hash",
        "hash",
    )

    def document_id_of(self, obj) -> str | None:
        if obj.target_type == "work_item":
            return obj.data.get("document")
        return super().document_id_of(obj)


@admin.register(AccessLog)
class AccessLogAdmin(ReadOnlyAdmin):
    list_display = [
        "occurred_at",
        "actor_label",
        "channel",
        "action",
        "target_type",
        "target_id",
        "reason",
        "timeline",
    ]
    list_filter = [
        SubjectFilter,
        ActorFilter,
        ActionFilter,
        OccurredFromFilter,
        OccurredToFilter,
        DocumentFilter,
        "channel",
        "actor_kind",
    ]
    search_fields = ["=target_id", "=actor_id"]
    export_name = "access-log"
    export_columns = (
        "occurred_at",
        "actor_kind",
        "actor_id",
        "actor_label",
        "channel",
        "action",
        "target_type",
        "target_id",
        "reason",
    )
