from django.urls import path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from docflow.api import views

urlpatterns = [
    path("documents", views.DocumentCollectionView.as_view(), name="api-documents"),
    path(
        "documents/<uuid:public_id>",
        views.DocumentDetailView.as_view(),
        name="api-document-detail",
    ),
    path(
        "documents/<uuid:public_id>/content",
        views.DocumentContentView.as_view(),
        name="api-document-content",
    ),
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path(
        "docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"
    ),
    # Last: malformed ids and unknown paths answer in the API's own error format.
    # A path this cannot match (one with an encoded line break: "." stops there)
    # reaches handler404, which answers problem+json under /api/ as well.
    re_path(r"^(?P<unmatched>.*)$", views.api_not_found),
]
