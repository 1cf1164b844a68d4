"""Every reason gets an action class (re-trace, resend, reroute, another route, no
further action); the rest of Connect's codes (REJ08, CONNECT3) and the system
reasons seen in real Connect traffic (matched by prefix, as they arrive as text)
are seeded; the engine's own refusal codes get rows; and a "needs classifying"
bucket takes items whose reason matches no row. Editable in the admin afterwards.

Sources: the codes and texts, and the action each calls for, follow NHS England's
Weight Management Hub Docman client (mlcsu-digitalinnovations/wms,
GpDocumentProxyOptions in Tests/WmsHub.Tests.Helper/TestConfiguration.cs). The
wording of REJ08 and CONNECT3 is not published: their titles say so."""

from django.db import migrations, models

RETRACE, RESEND, REROUTE, OTHER_ROUTE, NFA = (
    "retrace",
    "resend",
    "reroute",
    "other_route",
    "no_further_action",
)

NEEDS_CLASSIFYING = "needs_classifying"
CLINICAL_ADMIN = "Clinical admin"

PHONE_PRACTICE = "Phone the practice to check whether they have the document."
OTHER_ROUTE_STEP = "Send the document by another route and record how."
RESEND_STEP = "Resend the document unchanged."
CHECK_PDS = (
    "Check the patient's current registered practice (PDS or the Summary Care Record)."
)

# (code, prefix?, bucket, title, steps, clinical?, action class)
REASONS = [
    (
        "REJ08",
        False,
        "clinical",
        "Rejected by the practice (REJ08; Connect does not publish its wording)",
        [
            "Read the practice's rejection reason in Connect.",
            "Phone the practice to agree where the document should go.",
            OTHER_ROUTE_STEP,
        ],
        True,
        OTHER_ROUTE,
    ),
    (
        "CONNECT3",
        False,
        "infrastructure",
        "Connect could not deliver it (CONNECT3; Connect does not publish its wording)",
        [
            "Ask an integration operator to look the document up in Connect.",
            PHONE_PRACTICE,
            OTHER_ROUTE_STEP,
        ],
        False,
        OTHER_ROUTE,
    ),
    (
        "No Acknowledge received from MESH after 5 days",
        True,
        "delivery",
        "No acknowledgement from the practice's MESH mailbox after 5 days",
        [PHONE_PRACTICE, OTHER_ROUTE_STEP],
        False,
        OTHER_ROUTE,
    ),
    (
        "No acknowledgement received from Mesh after 5 days",
        True,
        "delivery",
        "No acknowledgement from the practice's MESH mailbox after 5 days",
        [PHONE_PRACTICE, OTHER_ROUTE_STEP],
        False,
        OTHER_ROUTE,
    ),
    (
        "No Acknowledge received from Emis",
        True,
        "delivery",
        "No acknowledgement from the practice's EMIS system",
        [PHONE_PRACTICE, OTHER_ROUTE_STEP],
        False,
        OTHER_ROUTE,
    ),
    (
        "Not acknowledged by EMIS",
        True,
        "delivery",
        "No acknowledgement from the practice's EMIS system",
        [PHONE_PRACTICE, OTHER_ROUTE_STEP],
        False,
        OTHER_ROUTE,
    ),
    (
        "Tif Conversion Failed. File size too big",
        True,
        "content",
        "Too large for the practice's system to convert",
        [
            "Ask the author's team for a smaller version (fewer scanned pages, lower "
            "image resolution).",
            "Send it as a corrected version, or send it by another route.",
        ],
        False,
        RESEND,
    ),
    (
        "No live SystmOne unit for ODS code",
        True,
        "routing",
        "The practice has no live SystmOne unit",
        [
            "Check the practice in the ODS directory: closed, merged or moved to "
            "another system.",
            CHECK_PDS,
            "Reroute the document, or send it by another route and record how.",
        ],
        False,
        REROUTE,
    ),
    (
        "Recalled by Sender",
        True,
        "delivery",
        "Recalled by the sender",
        [
            "Check with the author's team why it was recalled.",
            "If it should not go, close with no further action and say why; a "
            "replacement comes as a corrected version.",
        ],
        False,
        NFA,
    ),
    (
        "Failed to Retrieve File (7006)",
        True,
        "infrastructure",
        "The practice's system could not retrieve the file (7006)",
        [RESEND_STEP, "If it fails again, ask an integration operator."],
        False,
        RESEND,
    ),
    (
        "Failed to Retrieve File (7007)",
        True,
        "infrastructure",
        "The practice's system could not retrieve the file (7007)",
        [RESEND_STEP, "If it fails again, ask an integration operator."],
        False,
        RESEND,
    ),
    (
        "MESH acknowledgement not at correct HTTP status",
        True,
        "infrastructure",
        "MESH acknowledgement in error",
        [RESEND_STEP, "If it fails again, ask an integration operator."],
        False,
        RESEND,
    ),
    # The engine's own: Connect refused a send with no code of its own (the
    # error class is recorded instead).
    (
        "ConnectRefused",
        False,
        "infrastructure",
        "Connect refused the send",
        [
            "Ask an integration operator to read the transmission's error.",
            "Resend the document unchanged once the cause is fixed.",
        ],
        False,
        RESEND,
    ),
    (
        "ConnectConflict",
        False,
        "infrastructure",
        "Connect reported a conflict",
        [
            "Ask an integration operator: the send's key was used before, or the "
            "document is in a state Connect will not change.",
            "Resend the document unchanged once the cause is known.",
        ],
        False,
        RESEND,
    ),
    (
        "ConnectNotFound",
        False,
        "infrastructure",
        "Connect did not find the document or organisation",
        [
            "Ask an integration operator to look the document up in Connect.",
            "Resend the document unchanged once the cause is known.",
        ],
        False,
        RESEND,
    ),
]

# Action classes of the reasons seeded before (codes; "" with a category for the
# fallback rows).
ACTION_CLASSES = {
    "DC02": REROUTE,
    "DC03": REROUTE,
    "DEST_UNKNOWN": REROUTE,
    "DEST_INACTIVE": REROUTE,
    "DEST_NO_PROFILE": RESEND,
    "REJ01": RETRACE,
    "REJ02": RETRACE,
    "REJ03": NFA,
    "REJ04": RESEND,
    "REJ05": RESEND,
    "REJ06": RETRACE,
    "REJ07": NFA,
    "CONVERSION_FAILED": RESEND,
    "CONVERSION_LIMIT": RESEND,
    "CONTENT_LOST": RESEND,
    "TYPE_NOT_ALLOWED": RESEND,
    "TOO_LARGE": RESEND,
    "SIM01": RESEND,
    "PDF_INVALID": RESEND,
    "DC01": RESEND,
    "5000": RESEND,
    "7000": RESEND,
    "TIMEOUT_AFTER_SEND": NFA,
    "TIMEOUT_AFTER_RESEND": NFA,
    "STUCK_SENDING": NFA,
    "RETRIES_EXHAUSTED": RESEND,
    "AUTH_FAILED": RESEND,
    "PAYLOAD_UNREADABLE": RESEND,
    "NEVER_ACKNOWLEDGED": RESEND,
    "NDR": RESEND,
    "EXPIRED": RESEND,
    "MESH-NO-MAILBOX": OTHER_ROUTE,
    "MESH-12": REROUTE,
    "MESH-EPL-15": RETRACE,
    "ITK-20001": REROUTE,
    "ITK-20002": REROUTE,
    "ITK-20010": REROUTE,
    "ITK-20011": REROUTE,
    "ITK-30002": RETRACE,
    "ITK-30003": RETRACE,
    "ITK-20007": NFA,
    "ITK-20008": NFA,
    "ITK-20004": RESEND,
    "ITK-20005": RESEND,
    "ITK-20009": RESEND,
    "MESH-NOT-CONFIGURED": RESEND,
    "MESH-": RESEND,
    "ITK-1": RESEND,
    "ITK-": RESEND,
}
FALLBACK_ACTION_CLASSES = {
    "preflight": RESEND,
    "send_failed": RESEND,
    "outcome_unknown": NFA,
    "system_error": RESEND,
    "undelivered": RESEND,
    # A practice's rejection with no code: read the reason before choosing.
    "rejection": "",
}


def seed(apps, schema_editor):
    team_model = apps.get_model("casework", "Team")
    bucket_model = apps.get_model("casework", "WorkItemBucket")
    reason_model = apps.get_model("casework", "WorkItemReason")
    bucket_model.objects.get_or_create(
        key=NEEDS_CLASSIFYING,
        defaults={
            "position": 5,
            "name": "Needs classifying",
            "description": (
                "The reason matched no reason in the reference data: work the item "
                "as its kind of problem says, and ask a system admin to classify "
                "the reason."
            ),
            "default_team": team_model.objects.filter(name=CLINICAL_ADMIN).first(),
            "due_within_hours": 24,
        },
    )
    for code, action_class in ACTION_CLASSES.items():
        reason_model.objects.filter(code=code).update(action_class=action_class)
    for category, action_class in FALLBACK_ACTION_CLASSES.items():
        reason_model.objects.filter(code="", category=category).update(
            action_class=action_class
        )
    buckets = {bucket.key: bucket for bucket in bucket_model.objects.all()}
    for code, prefix, bucket, title, steps, clinical, action_class in REASONS:
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
                "action_class": action_class,
            },
        )


def unseed(apps, schema_editor):
    reason_model = apps.get_model("casework", "WorkItemReason")
    bucket_model = apps.get_model("casework", "WorkItemBucket")
    reason_model.objects.filter(code__in=[row[0] for row in REASONS]).delete()
    bucket_model.objects.filter(key=NEEDS_CLASSIFYING, work_items__isnull=True).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("casework", "0011_work_item_version"),
    ]

    operations = [
        migrations.AddField(
            model_name="workitemreason",
            name="action_class",
            field=models.CharField(
                blank=True,
                choices=[
                    ("retrace", "Re-trace the patient"),
                    ("resend", "Resend (unchanged or corrected)"),
                    ("reroute", "Reroute to another practice"),
                    ("other_route", "Send by another route"),
                    ("no_further_action", "No further action"),
                ],
                help_text="The kind of action this reason usually calls for.",
                max_length=32,
            ),
        ),
        migrations.RunPython(seed, unseed),
    ]
