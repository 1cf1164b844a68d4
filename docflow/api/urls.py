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
    # [\s\S], not ".": a path with an encoded line break (abc%0A) is unmatched too.
    re_path(r"^(?P<unmatched>[\s\S]*)$", views.api_not_found),
]
