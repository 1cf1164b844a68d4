from django.apps import AppConfig


class DocflowConfig(AppConfig):
    name = "docflow"
    verbose_name = "Documents"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Changes to keys, service accounts and organisations bump the API-key
        # stamp in every process that makes them (admin, shell, workers, web).
        from docflow.api_keys import api_keys_stamp_signals_connect

        api_keys_stamp_signals_connect()
