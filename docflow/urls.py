from django.conf import settings
from django.contrib import admin
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth import views as auth_views
from django.urls import include, path
from django_otp.admin import OTPAdminAuthenticationForm, OTPAdminSite

from docflow import views


class DocflowAdminSite(admin.AdminSite):
    """The admin, asking for a one-time code (django-otp) while
    DOCFLOW_ADMIN_REQUIRE_MFA is on: only people verified by a confirmed device
    get in. Read per request, so the setting can be switched without re-imports."""

    site_header = "docflow administration"
    site_title = "docflow administration"
    index_title = "docflow administration"

    @property
    def login_form(self):
        if settings.DOCFLOW_ADMIN_REQUIRE_MFA:
            return OTPAdminAuthenticationForm
        return AdminAuthenticationForm

    @property
    def login_template(self):
        if settings.DOCFLOW_ADMIN_REQUIRE_MFA:
            return OTPAdminSite.login_template
        return None

    def has_permission(self, request):
        if not super().has_permission(request):
            return False
        return not settings.DOCFLOW_ADMIN_REQUIRE_MFA or request.user.is_verified()


# Every app registers its ModelAdmins on admin.site; the documented way to give that
# instance another class (as django-otp does for OTPAdminSite).
admin.site.__class__ = DocflowAdminSite

urlpatterns = [
    path("", views.staff_home, name="staff-home"),
    path("documents/<uuid:public_id>/", views.staff_document, name="staff-document"),
    path("accessibility/", views.accessibility_statement, name="accessibility"),
    path(
        "accounts/login/",
        auth_views.LoginView.as_view(template_name="docflow/login.html"),
        name="login",
    ),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("work/", include("casework.urls")),
    path("ops/", include("operations.urls")),
    path("", include("operations.probe_urls")),
    path("api/v1/", include("docflow.api.urls")),
    path("fhir/R4/", include("docflow.api.fhir.urls")),
    path("admin/", admin.site.urls),
]

handler400 = "docflow.api.error_pages.bad_request"
handler403 = "docflow.api.error_pages.permission_denied"
handler404 = "docflow.api.error_pages.page_not_found"
handler500 = "docflow.api.error_pages.server_error"
