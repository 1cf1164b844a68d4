"""Preparation (DESIGN §4 step 2): fit a submitted document to its destination.

Resolve the destination and its profile, check the type by the bytes, convert HTML
and images to PDF, prove the PDF opens, and shift oversize left: optimise, else
split into parts, else hold. Every payload made here is a new encrypted
PayloadVersion with its SHA-256, and every outcome is one audited transition to
``ready`` or ``held``. Work items and sends are the caller's (``transmissions``).

The modules, by responsibility: ``run`` (one preparation's state, ready and
held), ``checks`` (the bytes, their type, the conversion's outcome, the PDF),
``shift_left`` (optimise, split), ``batch`` (one document or a batch under row
locks; content to convert is handed on, never converted there) and
``converting`` (the isolated, bounded conversion step and its slots).
"""

from docflow.preparation.batch import (
    PreparedBatch,
    document_prepare_locked,
    documents_prepare,
    waiting_for_preparation,
)
from docflow.preparation.converting import (
    ConversionClaim,
    conversion_claim,
    conversion_execute,
    conversion_slot_release,
    conversion_slots_free,
    conversions_waiting,
    document_convert,
    document_has_conversion,
    document_prepare,
    document_prepare_converted,
)
from docflow.preparation.run import HoldReason, Prepared
from docflow.preparation.shift_left import part_description

__all__ = [
    "ConversionClaim",
    "HoldReason",
    "Prepared",
    "PreparedBatch",
    "conversion_claim",
    "conversion_execute",
    "conversion_slot_release",
    "conversion_slots_free",
    "conversions_waiting",
    "document_convert",
    "document_has_conversion",
    "document_prepare",
    "document_prepare_converted",
    "document_prepare_locked",
    "documents_prepare",
    "part_description",
    "waiting_for_preparation",
]
