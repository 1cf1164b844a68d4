"""Every work item write. Each service is keyword-only, atomic and audited."""

from casework.services.disclosure import (
    VIEW_PATIENT_IDENTITY,
    PatientIdentity,
    work_item_patient_reveal,
)
from casework.services.lifecycle import (
    SEND_FAILURE_REASONS,
    work_item_assign,
    work_item_category_for,
    work_item_open_for_cancel_after_sending,
    work_item_reopen,
    work_item_sync_for_document,
    work_item_unassign,
)
from casework.services.resolutions import (
    RerouteConfirmation,
    work_item_cancel_document,
    work_item_resolve_corrected_version,
    work_item_resolve_no_further_action,
    work_item_resolve_other_route,
    work_item_resolve_reroute,
    work_item_resolve_resend,
)

__all__ = [
    "SEND_FAILURE_REASONS",
    "VIEW_PATIENT_IDENTITY",
    "PatientIdentity",
    "RerouteConfirmation",
    "work_item_assign",
    "work_item_cancel_document",
    "work_item_category_for",
    "work_item_open_for_cancel_after_sending",
    "work_item_patient_reveal",
    "work_item_reopen",
    "work_item_resolve_corrected_version",
    "work_item_resolve_no_further_action",
    "work_item_resolve_other_route",
    "work_item_resolve_reroute",
    "work_item_resolve_resend",
    "work_item_sync_for_document",
    "work_item_unassign",
]
