"""Staff pages for documents: parse, call a selector, render. Metadata only."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.shortcuts import render

from docflow.models import DocumentStatus
from docflow.selectors import DocumentFilters, document_list

PAGE_SIZE = 50


@login_required
def staff_home(request):
    """The newest documents of the organisations this person may see."""
    status = request.GET.get("status") or None
    if status not in DocumentStatus.values:
        status = None
    documents = document_list(user=request.user, filters=DocumentFilters(status=status))
    return render(
        request,
        "docflow/home.html",
        {
            "documents": documents[:PAGE_SIZE],
            "statuses": DocumentStatus.choices,
            "status": status,
        },
    )
