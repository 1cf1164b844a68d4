from django.apps import AppConfig


class OperationsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "operations"
    verbose_name = "Operations"

    def ready(self) -> None:
        # casework sits below operations and cannot import it: it announces an item
        # opened with an unknown reason, and operations raises the incident.
        from casework.classification import needs_classifying
        from casework.models import WorkItem
        from operations.services.incidents import (
            incident_raise_for_unclassified_reason,
        )

        def raise_incident(sender, *, work_item, category, reason_code, actor, **_):
            incident_raise_for_unclassified_reason(
                work_item=work_item,
                category=category,
                reason_code=reason_code,
                actor=actor,
            )

        needs_classifying.connect(
            raise_incident,
            sender=WorkItem,
            dispatch_uid="operations.incident_for_unclassified_reason",
            weak=False,
        )

        # transmissions sits below operations too: it announces an answer from a
        # mailbox a document was not sent to, and operations raises the incident.
        from operations.services.incidents import incident_raise_for_suspicious_answer
        from transmissions.channels.mesh.conformance.signals import (
            suspicious_answer_received,
        )
        from transmissions.models import MeshQuarantinedAnswer

        def raise_suspicious(sender, *, quarantined, actor=None, **_):
            incident_raise_for_suspicious_answer(quarantined=quarantined, actor=actor)

        suspicious_answer_received.connect(
            raise_suspicious,
            sender=MeshQuarantinedAnswer,
            dispatch_uid="operations.incident_for_suspicious_mesh_answer",
            weak=False,
        )
