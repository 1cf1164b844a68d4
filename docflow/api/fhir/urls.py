from django.urls import path, re_path

from docflow.api.fhir import views

urlpatterns = [
    path("metadata", views.CapabilityStatementView.as_view(), name="fhir-metadata"),
    path(
        "DocumentReference",
        views.DocumentReferenceCreateView.as_view(),
        name="fhir-document-references",
    ),
    path(
        "DocumentReference/<uuid:public_id>",
        views.DocumentReferenceReadView.as_view(),
        name="fhir-document-reference",
    ),
    # Last: unknown paths and malformed ids answer with an OperationOutcome.
    re_path(r"^(?P<unmatched>.*)$", views.fhir_not_found),
]
