"""Staff pages for documents: parse, call a selector, render. Metadata only: no
patient identifier on any page, in any URL or title."""

from __future__ import annotations

import base64
import binascii
import json
import uuid

from django import forms
from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import render
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.views.decorators.http import require_GET

from docflow.assurance.accessibility import accessibility_results_read
from docflow.models import Document, DocumentStatus
from docflow.selectors import (
    DocumentFilters,
    document_get,
    document_list_page,
    document_recent_events,
)

PAGE_SIZE = 50
TIMELINE_ROWS = 50


def position_encode(created_at, pk: int) -> str:
    """The keyset position after one row of the list, opaque in the URL."""
    raw = json.dumps([created_at.isoformat(), pk]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def position_decode(value: str):
    """The keyset position, or None for anything that is not one of ours."""
    try:
        padded = value + "=" * (-len(value) % 4)
        created_at, pk = json.loads(base64.urlsafe_b64decode(padded.encode()))
        moment = parse_datetime(created_at)
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        return None
    if moment is None or timezone.is_naive(moment) or not isinstance(pk, int):
        return None
    return moment, pk


class DocumentFilterForm(forms.Form):
    """The documents list's filter, from the query string; a bad value is reported."""

    status = forms.ChoiceField(
        label="Status",
        required=False,
        choices=[("", "All"), *DocumentStatus.choices],
        error_messages={"invalid_choice": "Choose a status from the list."},
    )
    # Not typed by a person: one that is not ours means the first page.
    after = forms.CharField(required=False, max_length=200)

    def clean_after(self):
        value = self.cleaned_data["after"]
        return position_decode(value) if value else None


@require_GET
@login_required
def staff_home(request):
    """The documents of the organisations this person may see, newest first, by
    keyset pages; each row opens the document's page."""
    form = DocumentFilterForm(request.GET or None)
    data = {}
    if form.is_bound:
        form.is_valid()
        data = form.cleaned_data
    status = data.get("status") or None
    page = document_list_page(
        user=request.user,
        filters=DocumentFilters(status=status),
        size=PAGE_SIZE,
        after=data.get("after"),
    )
    next_query = first_query = None
    if page.next_after is not None:
        query = request.GET.copy()
        query["after"] = position_encode(*page.next_after)
        next_query = query.urlencode()
    if data.get("after"):
        query = request.GET.copy()
        query.pop("after", None)
        first_query = query.urlencode()
    return render(
        request,
        "docflow/home.html",
        {
            "form": form,
            "error_forms": [form],
            "page_has_errors": form.is_bound and bool(form.errors),
            "documents": page.documents,
            "statuses": DocumentStatus.choices,
            "status": status,
            "next_query": next_query,
            "first_query": first_query,
        },
    )


@require_GET
@login_required
def staff_document(request, public_id: uuid.UUID):
    """One visible document: its metadata, transmissions and timeline; not found
    alike when missing or not visible."""
    try:
        document = document_get(user=request.user, public_id=public_id)
    except Document.DoesNotExist:
        raise Http404("No such document.") from None
    events, more = document_recent_events(document=document, limit=TIMELINE_ROWS)
    return render(
        request,
        "docflow/document.html",
        {
            "document": document,
            "events": events,
            "more_events": more,
            "timeline_rows": TIMELINE_ROWS,
            "transmissions": list(document.transmissions.all())[-TIMELINE_ROWS:],
        },
    )


@require_GET
def accessibility_statement(request):
    """The accessibility statement (public sector bodies accessibility regulations
    2018), open to everyone: compliance as the last axe run of the browser suite
    found it."""
    return render(
        request,
        "docflow/accessibility.html",
        {
            "results": accessibility_results_read(),
            "operator": settings.DOCFLOW_SERVICE_OPERATOR,
            "contact": settings.DOCFLOW_ACCESSIBILITY_CONTACT,
        },
    )
