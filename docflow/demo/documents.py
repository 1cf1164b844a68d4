"""Demo documents: one per practice behaviour of the Connect simulator's demo
scenario, each about a fictitious patient in the never-issued 999 range. They go in
through the real intake service; the running engine (qcluster and the simulators
started by ``make run``) prepares, sends and tracks each to the outcome its practice
gives, so their audit trail is production's. Only the cancellation is a person's act,
taken here before anything is sent.
"""

from __future__ import annotations

import datetime
from collections import Counter

from django.utils import timezone

from audit.selectors import audit_chain_verify
from docflow.demo.accounts import DEMO_PASSWORD, USERS
from docflow.demo.context import DemoContext
from docflow.models import Document, DocumentStatus
from docflow.sample_pdf import text_pdf
from docflow.services import DocumentSubmission, document_cancel, document_submit

CANCEL_REASON = "Letter filed against the wrong patient record; reissued."
CLINICAL_ADMIN_FOR = {"RX1": "clinical.admin", "RY2": "clinical.admin.ry2"}

RETRACE = "rejected"
# Only demo-006 (the urgent REJ01 at the top of the work queue) is urgent.
URGENT_DOCUMENTS = frozenset({6})
# (sender, destination, document type, description, what happens to it)
DOCUMENTS = [
    ("RX1", "A81001", "discharge_summary", "Discharge summary, ward 4", "accepted"),
    ("RX1", "A81002", "clinic_letter", "Cardiology clinic letter", "accepted"),
    ("RX1", "A81006", "discharge_summary", "Discharge summary, surgery", "held"),
    ("RX1", "A81001", "result", "Haematology result", "accepted"),
    ("RX1", "A81003", "ed_attendance", "Emergency department visit", "delivered"),
    ("RX1", "A81005", "clinic_letter", "Respiratory clinic letter", "rejected"),
    ("RX1", "A81002", "clinic_letter", "Orthopaedic clinic letter", "cancelled"),
    ("RX1", "A81004", "discharge_summary", "Discharge summary, maternity", "delivered"),
    ("RY2", "A81010", "result", "Community phlebotomy result", "accepted"),
    ("RY2", "A81002", "referral", "Referral to community nursing", "accepted"),
    ("RY2", "A81008", "clinic_letter", "Podiatry clinic letter", "system_error"),
    ("RY2", "A81009", "clinic_letter", "Physiotherapy letter", "system_error"),
    ("RY2", "A81012", "discharge_summary", "Discharge summary", "delivered"),
    ("RY2", "A81007", "clinic_letter", "Dental referral letter", "held"),
    ("RY2", "A81011", "result", "Radiology report", "accepted"),
    ("RX1", "X26", "clinic_letter", "Diabetes clinic letter (MESH)", "accepted"),
    # Rejections to re-trace on PDS: the PDS simulator's demo patients
    # (transmissions/pds/demo-patients.json) answer for these NHS numbers. demo-006
    # above (urgent REJ01) has moved to A81002; these are deceased, restricted,
    # superseded (now at A81001) and PDS unavailable.
    ("RX1", "A81005", "clinic_letter", "Cardiology outpatient letter", RETRACE),
    ("RX1", "A81014", "clinic_letter", "Dermatology clinic letter", RETRACE),
    ("RY2", "A81014", "discharge_summary", "Discharge summary, ward 9", RETRACE),
    ("RX1", "A81005", "result", "Biochemistry result", RETRACE),
]
# Fictitious patients, one per document: (family name, given name, date of birth).
PATIENTS = [
    ("Smith", "Alex", datetime.date(1948, 5, 12)),
    ("Jones", "Sam", datetime.date(1962, 11, 3)),
    ("Patel", "Priya", datetime.date(1975, 2, 28)),
    ("Brown", "Jamie", datetime.date(1990, 7, 19)),
    ("Wilson", "Morgan", datetime.date(2001, 9, 9)),
    ("Taylor", "Chris", datetime.date(1955, 1, 30)),
    ("Evans", "Jordan", datetime.date(1983, 4, 14)),
    ("Thomas", "Riley", datetime.date(1994, 12, 1)),
    ("Roberts", "Avery", datetime.date(1939, 6, 6)),
    ("Walker", "Quinn", datetime.date(1946, 8, 21)),
    ("Wright", "Harper", datetime.date(1958, 3, 17)),
    ("Hughes", "Rowan", datetime.date(1969, 10, 10)),
    ("Green", "Emerson", datetime.date(1951, 1, 2)),
    ("Baker", "Sage", datetime.date(1972, 5, 25)),
    ("Clarke", "Reese", datetime.date(1987, 9, 13)),
    ("Evans", "Rowan", datetime.date(1983, 4, 14)),
    ("Ellis", "Dana", datetime.date(1931, 3, 8)),
    ("Fox", "Kit", datetime.date(1999, 7, 7)),
    ("Moss", "Lee", datetime.date(1968, 12, 24)),
    ("Nash", "Pat", datetime.date(1972, 2, 2)),
]


def demo_nhs_number(index: int) -> str:
    """The index-th number in the never-issued 999 range with a valid check digit."""
    candidate = 999_000_000 + index * 7
    while True:
        digits = [int(d) for d in f"{candidate:09d}"]
        remainder = sum(d * (10 - i) for i, d in enumerate(digits)) % 11
        check = 11 - remainder
        if check == 11:
            check = 0
        if check != 10:
            return f"{candidate:09d}{check}"
        candidate += 1


def letter_pdf(lines: list[str]) -> bytes:
    """A small, valid one-page A4 PDF letter; the same lines give the same bytes."""
    return text_pdf(lines, page_size=(595, 842), font_size=11)


def demo_documents_seed(context: DemoContext) -> None:
    """Submit each demo document once; the engine takes it from there."""
    today = timezone.localdate()
    for index, (sender_code, destination, kind, description, outcome) in enumerate(
        DOCUMENTS, start=1
    ):
        source_system = f"demo:{sender_code}"
        idempotency_key = f"demo-{index:03d}"
        if Document.objects.filter(
            source_system=source_system, idempotency_key=idempotency_key
        ).exists():
            continue
        family, given, born = PATIENTS[index - 1]
        sender = context.senders[sender_code]
        nhs_number = demo_nhs_number(index)
        event_date = today - datetime.timedelta(days=index % 7)
        content = letter_pdf(
            [
                sender.name,
                "",
                description,
                f"Patient: {given} {family}   NHS number: {nhs_number}",
                f"Born: {born:%d %B %Y}   Event date: {event_date:%d %B %Y}",
                "",
                "Dear Doctor,",
                "This is demonstration content about a fictitious patient.",
                "No action is needed.",
            ]
        )
        document, created = document_submit(
            sending_organisation=sender,
            source_system=source_system,
            idempotency_key=idempotency_key,
            submission=DocumentSubmission(
                nhs_number=nhs_number,
                patient_family_name=family,
                patient_given_names=given,
                patient_birth_date=born,
                document_type=kind,
                description=description,
                event_date=event_date,
                destination_ods_code=destination,
                content=content,
                declared_extension="pdf",
                sender_department="Demo department",
                sender_person="Dr A Consultant",
                source_reference=f"DEMO-{index:03d}",
                urgent=index in URGENT_DOCUMENTS,
            ),
            actor=context.api_keys[sender_code][0],
        )
        if not created:
            continue
        if outcome == "cancelled":
            document = document_cancel(
                document=document,
                reason=CANCEL_REASON,
                actor=context.users[CLINICAL_ADMIN_FOR[sender_code]],
            )
        context.documents_created += 1
        context.say(f"  document demo-{index:03d}: {document.status}, for {outcome}")


def demo_summary(context: DemoContext) -> None:
    """Print what the demo holds: documents by status, the audit chain's verdict,
    the logins and the API keys."""
    say = context.say
    counts = Counter(
        Document.objects.filter(source_system__startswith="demo:").values_list(
            "status", flat=True
        )
    )
    verdict = audit_chain_verify()
    labels = dict(DocumentStatus.choices)
    say("")
    say(context.style.SUCCESS("Demo data ready."))
    say(
        f"Documents: {sum(counts.values())} demo documents "
        f"({context.documents_created} created now)"
    )
    for status, count in sorted(counts.items()):
        say(f"  {labels.get(status, status):<22} {count}")
    say(
        f"Audit chain: {'OK' if verdict.ok else 'BROKEN'}, "
        f"{verdict.checked} events verified"
    )
    say("")
    say(f"Demo logins (password for all: {DEMO_PASSWORD})")
    say("  admin                  superuser")
    for spec in USERS:
        scope = ", ".join(spec.organisations) or "-"
        say(f"  {spec.username:<22} {spec.role:<22} documents of: {scope}")
    say("")
    say(f"API keys (also in {context.keys_path}, mode 0600)")
    for ods_code, (_, raw) in context.api_keys.items():
        say(f"  {ods_code}: Authorization: Api-Key {raw}")
    say("")
