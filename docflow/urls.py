from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from docflow import views

urlpatterns = [
    path("", views.staff_home, name="staff-home"),
    path(
        "accounts/login/",
        auth_views.LoginView.as_view(template_name="docflow/login.html"),
        name="login",
    ),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("work/", include("casework.urls")),
    path("api/v1/", include("docflow.api.urls")),
    path("admin/", admin.site.urls),
]
