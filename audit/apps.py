from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "audit"
    verbose_name = "Audit and access log"

    def ready(self) -> None:
        from audit.redaction import install_log_record_redaction

        install_log_record_redaction()
