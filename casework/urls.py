"""Casework staff pages, under /work/. Items by public UUID only."""

from django.urls import path

from casework import queue_views, trace_views, views

app_name = "casework"

urlpatterns = [
    path("", queue_views.queue, name="queue"),
    path("assign/", queue_views.bulk_assign, name="bulk-assign"),
    path("items/<uuid:public_id>/", views.item_detail, name="item"),
    path(
        "items/<uuid:public_id>/document/",
        views.document_content,
        name="item-document",
    ),
    path("items/<uuid:public_id>/trace/", trace_views.item_trace, name="item-trace"),
    path(
        "items/<uuid:public_id>/reroute/",
        views.item_reroute,
        name="item-reroute",
    ),
    path(
        "items/<uuid:public_id>/patient/",
        views.item_patient,
        name="item-patient",
    ),
    path(
        "items/<uuid:public_id>/<slug:action>/",
        views.item_action,
        name="item-action",
    ),
]
