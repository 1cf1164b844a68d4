"""Health probes and metrics, served at the site root (included by docflow.urls):
``/healthz/live`` (the process), ``/healthz/ready`` (database and broker; Connect
reachability as a warning), ``/healthz`` (= ready) and ``/metrics``."""

from django.urls import path

from operations import views

urlpatterns = [
    path("healthz", views.healthz_ready, name="healthz"),
    path("healthz/live", views.healthz_live, name="healthz-live"),
    path("healthz/ready", views.healthz_ready, name="healthz-ready"),
    path("metrics", views.metrics, name="metrics"),
]
