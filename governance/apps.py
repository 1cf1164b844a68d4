from django.apps import AppConfig


class GovernanceConfig(AppConfig):
    """Information governance over every other app: the IG timeline, subject access
    exports and payload retention. Top of the layers, so it may import them all."""

    name = "governance"
    verbose_name = "Information governance"
    default_auto_field = "django.db.models.BigAutoField"
