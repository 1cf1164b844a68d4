"""Reasons for the direct MESH channel: MESH's own error codes (``MESH-<code>``,
``NDR`` is seeded already) and the ITK3 response codes practices send back
(``ITK-<code>``), each in the bucket of the people who can act on it. Editable in
the admin afterwards."""

from django.db import migrations

CHECK_MESH = (
    "Ask an integration operator to check the MESH mailbox, its workflows and "
    "the MESH service status."
)
RESEND_WHEN_FIXED = "Resend the document unchanged once the fault is fixed."
REROUTE = (
    "Confirm the patient's registered practice (PDS or the Summary Care Record) "
    "and reroute the document."
)

# (code, prefix?, bucket, title, steps, clinical?)
REASONS = [
    # Routing: MESH cannot find where the document should go.
    (
        "MESH-NO-MAILBOX",
        False,
        "routing",
        "No MESH mailbox receives documents for this practice",
        [
            "Check the practice's ODS code and whether it receives this document "
            "type (workflow) over MESH.",
            "Ask an integration operator to send it through Docman Connect instead, "
            "or send it by another route and record how.",
        ],
        False,
    ),
    (
        "MESH-12",
        False,
        "routing",
        "MESH does not know the recipient mailbox",
        [REROUTE, CHECK_MESH],
        False,
    ),
    (
        "MESH-EPL-15",
        True,
        "routing",
        "MESH could not find the patient's registered practice",
        [
            "Compare the NHS number, name and date of birth with PDS.",
            REROUTE,
        ],
        False,
    ),
    (
        "ITK-20001",
        False,
        "routing",
        "The practice does not recognise the recipient person",
        [REROUTE],
        False,
    ),
    (
        "ITK-20002",
        False,
        "routing",
        "The practice does not recognise itself as the recipient",
        [REROUTE],
        False,
    ),
    (
        "ITK-20010",
        False,
        "routing",
        "The practice does not recognise the recipient organisation",
        [REROUTE],
        False,
    ),
    (
        "ITK-20011",
        False,
        "routing",
        "The practice does not recognise the recipient person",
        [REROUTE],
        False,
    ),
    # Clinical workflow: the practice's answer about the patient.
    (
        "ITK-30002",
        False,
        "clinical",
        "Patient not known at this practice",
        [
            "Check the patient's registered practice in PDS, and the practice the "
            "source system holds for them.",
            "Reroute the document to the right practice.",
            "Tell the ward or clinic so the source system's record is corrected.",
        ],
        True,
    ),
    (
        "ITK-30003",
        False,
        "clinical",
        "Patient no longer registered at this practice",
        [
            "Check the patient's current registered practice (PDS or the Summary "
            "Care Record).",
            "Reroute the document to the new practice.",
            "If the patient has no registered practice, send the document to the "
            "patient by another route and record how.",
        ],
        True,
    ),
    (
        "ITK-20007",
        False,
        "clinical",
        "Duplicate message",
        [
            "Check whether the practice already has this document from an earlier "
            "send.",
            "If it is a true duplicate, close with no further action and say why.",
            "If it is a newer version, send it as a corrected version.",
        ],
        True,
    ),
    (
        "ITK-20008",
        False,
        "clinical",
        "Duplicate document",
        [
            "Check whether the practice already has this document from an earlier "
            "send.",
            "If it is a true duplicate, close with no further action and say why.",
            "If it is a newer version, send it as a corrected version.",
        ],
        True,
    ),
    # Content: the practice's system cannot take the document as it is.
    (
        "ITK-20004",
        False,
        "content",
        "File type not approved by the practice's system",
        [
            "Ask the author's team for the document as a PDF that opens.",
            "Send the corrected version.",
        ],
        False,
    ),
    (
        "ITK-20005",
        False,
        "content",
        "File type not supported by the practice's system",
        [
            "Ask the author's team for the document as a PDF that opens.",
            "Send the corrected version.",
        ],
        False,
    ),
    (
        "ITK-20009",
        False,
        "content",
        "The practice's system could not validate the document",
        [
            "Ask an integration operator to read the practice's diagnostics.",
            "Send a corrected version once the cause is known.",
        ],
        False,
    ),
    # Infrastructure: MESH or the message itself.
    (
        "MESH-NOT-CONFIGURED",
        False,
        "infrastructure",
        "No usable MESH mailbox for this sender",
        [
            "Ask an integration operator to set up the sending organisation's MESH "
            "mailbox and its secrets.",
            RESEND_WHEN_FIXED,
        ],
        False,
    ),
    (
        "MESH-",
        True,
        "infrastructure",
        "MESH reported an error",
        [CHECK_MESH, RESEND_WHEN_FIXED],
        False,
    ),
    (
        "ITK-1",
        True,
        "infrastructure",
        "The practice's system could not read our message",
        [
            "Ask an integration operator: the message we sent was refused before "
            "the practice saw it.",
            RESEND_WHEN_FIXED,
        ],
        False,
    ),
    (
        "ITK-",
        True,
        "infrastructure",
        "The practice's system refused the message",
        [
            "Ask an integration operator to read the practice system's response.",
            "Phone the practice if the reason is unclear.",
        ],
        False,
    ),
]


def seed(apps, schema_editor):
    bucket_model = apps.get_model("casework", "WorkItemBucket")
    reason_model = apps.get_model("casework", "WorkItemReason")
    buckets = {bucket.key: bucket for bucket in bucket_model.objects.all()}
    for code, prefix, bucket, title, steps, clinical in REASONS:
        if bucket not in buckets:
            continue  # reference data edited away; the admin can add it back
        reason_model.objects.update_or_create(
            code=code,
            category="",
            defaults={
                "match_prefix": prefix,
                "bucket": buckets[bucket],
                "title": title,
                "suggested_actions": steps,
                "is_clinical": clinical,
            },
        )


def unseed(apps, schema_editor):
    reason_model = apps.get_model("casework", "WorkItemReason")
    reason_model.objects.filter(code__in=[row[0] for row in REASONS]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("casework", "0007_work_item_sending_organisation_required"),
    ]

    operations = [migrations.RunPython(seed, unseed)]
