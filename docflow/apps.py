from django.apps import AppConfig


class DocflowConfig(AppConfig):
    name = "docflow"
    verbose_name = "Documents"
    default_auto_field = "django.db.models.BigAutoField"
