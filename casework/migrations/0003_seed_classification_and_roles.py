"""Seed teams, buckets and reasons (every code the engine and Connect produce, with
plain-language next steps), give the roles their casework permissions, grant each
role group its default team, move old free-text resolutions into the reason, and
classify the items already open. All of it is editable in the admin afterwards."""

from datetime import timedelta

from django.db import migrations

CLINICAL_ADMIN = "Clinical admin"
INTEGRATION_OPERATIONS = "Integration operations"

TEAMS = {
    CLINICAL_ADMIN: "Clinical administration staff: routing, rejections, content.",
    INTEGRATION_OPERATIONS: "Integration operators: Connect, MESH and system faults.",
}

# key: (position, name, description, default team, due within hours)
BUCKETS = {
    "routing": (
        10,
        "Routing",
        "The destination cannot take the document: inactive, not a receiving "
        "organisation, or unknown.",
        CLINICAL_ADMIN,
        24,
    ),
    "clinical": (
        20,
        "Clinical workflow",
        "The practice rejected the document for a reason about the patient.",
        CLINICAL_ADMIN,
        24,
    ),
    "content": (
        30,
        "Content",
        "The document cannot be sent or read as it is.",
        CLINICAL_ADMIN,
        48,
    ),
    "infrastructure": (
        40,
        "Infrastructure",
        "A system between us and the practice failed or did not answer.",
        INTEGRATION_OPERATIONS,
        4,
    ),
    "delivery": (
        50,
        "Delivery completion",
        "Delivered, but never collected or acknowledged by the practice.",
        CLINICAL_ADMIN,
        72,
    ),
}

REROUTE_OR_OTHER = (
    "Reroute the document to the right practice, or send it by another route and "
    "record how."
)
ASK_FOR_PDF = "Ask the author's team for the document as a PDF that opens."
SEND_CORRECTED = "Send the corrected version."
WAIT_FOR_SETTLING = (
    "Wait: the system asks Connect whether the document arrived and settles it by "
    "itself."
)
NO_HAND_RESEND = (
    "Do not send it again by hand: that could give the practice a duplicate."
)
CHECK_STATUS_PAGE = (
    "Check the outbound status for a halt, an open circuit or an incident at this "
    "destination."
)

# (code, prefix?, category for a fallback row, bucket, title, steps, clinical?)
REASONS = [
    # Routing
    (
        "DC02",
        False,
        "",
        "routing",
        "Destination inactive or not found at Connect",
        [
            "Check the practice in the ODS directory: closed, merged or moved, and "
            "whether it has a successor.",
            "Confirm the patient's registered practice (PDS or the Summary Care "
            "Record).",
            REROUTE_OR_OTHER,
        ],
        False,
    ),
    (
        "DC03",
        False,
        "",
        "routing",
        "Destination is not a receiving organisation",
        [
            "Check the ODS code: it may be a branch surgery or a service that does "
            "not receive documents.",
            "Find the practice that receives for the patient, often the main surgery.",
            REROUTE_OR_OTHER,
        ],
        False,
    ),
    (
        "DEST_UNKNOWN",
        False,
        "",
        "routing",
        "Destination not in the directory",
        [
            "Check the ODS code the source system sent for a typing error.",
            "Confirm the patient's registered practice (PDS or the Summary Care "
            "Record).",
            "Reroute the document; if the source system keeps sending this code, "
            "tell its owners.",
        ],
        False,
    ),
    (
        "DEST_INACTIVE",
        False,
        "",
        "routing",
        "Destination closed or inactive in the directory",
        [
            "Check the ODS directory for the practice that took over its patients.",
            "Confirm the patient's registered practice.",
            REROUTE_OR_OTHER,
        ],
        False,
    ),
    (
        "DEST_NO_PROFILE",
        False,
        "",
        "routing",
        "No known way to send to this destination",
        [
            "Ask an integration operator to set the practice's endpoint type or add "
            "a destination profile for it.",
            "Then resend the document unchanged, or reroute it if the practice is "
            "wrong.",
        ],
        False,
    ),
    # Clinical workflow: the practice's decision about the patient.
    (
        "REJ01",
        False,
        "",
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
        "REJ02",
        False,
        "",
        "clinical",
        "Patient never registered at this practice",
        [
            "Check the patient's registered practice in PDS, and the practice the "
            "source system holds for them.",
            "Reroute the document to the right practice.",
            "Tell the ward or clinic so the source system's record is corrected.",
        ],
        True,
    ),
    (
        "REJ03",
        False,
        "",
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
    (
        "REJ06",
        False,
        "",
        "clinical",
        "Patient details do not match",
        [
            "Compare the NHS number, name and date of birth with PDS.",
            "Ask the author's team to correct the details in the source system.",
            "Send a corrected version with the right details.",
        ],
        True,
    ),
    (
        "REJ07",
        False,
        "",
        "clinical",
        "Patient deceased",
        [
            "Confirm the date of death in PDS.",
            "Tell the author's team; the document may not need to go anywhere else.",
            "Close with no further action and record why, or send it to the right "
            "recipient by another route.",
        ],
        True,
    ),
    (
        "",
        False,
        "rejection",
        "clinical",
        "Rejected by the practice",
        [
            "Read the practice's rejection reason in Connect.",
            "Phone the practice if the reason is unclear.",
            "Choose the resolution that deals with the reason; resend unchanged only "
            "when the practice agrees.",
        ],
        True,
    ),
    # Content
    (
        "CONVERSION_FAILED",
        False,
        "",
        "content",
        "Could not be converted to PDF",
        [ASK_FOR_PDF, SEND_CORRECTED],
        False,
    ),
    (
        "TYPE_NOT_ALLOWED",
        False,
        "",
        "content",
        "File format not allowed",
        [
            "Check the file: the practice takes PDF, and macro-enabled or executable "
            "files are never sent.",
            ASK_FOR_PDF,
            SEND_CORRECTED,
        ],
        False,
    ),
    (
        "TOO_LARGE",
        False,
        "",
        "content",
        "Too large for the practice",
        [
            "Ask the author's team for a smaller version (fewer scanned pages, lower "
            "image resolution).",
            "Send the corrected version, or send it by another route.",
        ],
        False,
    ),
    (
        "SIM01",
        False,
        "",
        "content",
        "Too large for the practice (refused by Connect)",
        [
            "Ask the author's team for a smaller version.",
            "Send the corrected version, or send it by another route.",
        ],
        False,
    ),
    (
        "PDF_INVALID",
        False,
        "",
        "content",
        "The PDF failed its checks",
        [
            "Ask for the PDF to be produced again: not password-protected, and it "
            "opens in a reader.",
            SEND_CORRECTED,
        ],
        False,
    ),
    (
        "REJ04",
        False,
        "",
        "content",
        "Incomplete or illegible",
        [
            "Check the document with the author's team: missing pages, poor scans.",
            "Send a corrected, complete version.",
        ],
        False,
    ),
    (
        "DC01",
        True,
        "",
        "content",
        "Connect refused the document's details (DC01)",
        [
            "Read the code: it names the detail (DC01.09 birth date, DC01.43 "
            "description too long, DC01.30 file type).",
            "Send a corrected version with the detail fixed, and tell the source "
            "system's owners if it keeps happening.",
        ],
        False,
    ),
    (
        "",
        False,
        "preflight",
        "content",
        "Held before sending",
        [
            "Read why the document was held.",
            "Reroute it, send a corrected version or resend it once the cause is "
            "fixed.",
        ],
        False,
    ),
    # Infrastructure
    (
        "REJ05",
        False,
        "",
        "infrastructure",
        "The practice could not download or open it",
        [
            "Resend the document unchanged.",
            "If it fails again, check the document opens and ask an integration "
            "operator to look at Connect.",
        ],
        False,
    ),
    (
        "5000",
        False,
        "",
        "infrastructure",
        "System error at Connect",
        [CHECK_STATUS_PAGE, "Resend the document unchanged once the fault is over."],
        False,
    ),
    (
        "7000",
        False,
        "",
        "infrastructure",
        "System error, on hold at Connect",
        [
            CHECK_STATUS_PAGE,
            "Ask Docman support about the hold if it lasts.",
            "Resend the document unchanged once the hold is released.",
        ],
        False,
    ),
    (
        "TIMEOUT_AFTER_SEND",
        False,
        "",
        "infrastructure",
        "Sent, outcome not known",
        [
            WAIT_FOR_SETTLING,
            NO_HAND_RESEND,
            "If it is still unknown after a day, ask an integration operator.",
        ],
        False,
    ),
    (
        "TIMEOUT_AFTER_RESEND",
        False,
        "",
        "infrastructure",
        "Resent, outcome not known",
        [WAIT_FOR_SETTLING, NO_HAND_RESEND],
        False,
    ),
    (
        "STUCK_SENDING",
        False,
        "",
        "infrastructure",
        "Sending stopped part way, outcome not known",
        [WAIT_FOR_SETTLING, NO_HAND_RESEND],
        False,
    ),
    (
        "RETRIES_EXHAUSTED",
        False,
        "",
        "infrastructure",
        "Sending kept failing",
        [CHECK_STATUS_PAGE, "Resend the document unchanged when Connect answers."],
        False,
    ),
    (
        "AUTH_FAILED",
        False,
        "",
        "infrastructure",
        "Connect refused our credentials",
        [
            "Ask an integration operator to check the organisation's Connect "
            "credentials.",
            "Resend the document once sending has resumed.",
        ],
        False,
    ),
    (
        "PAYLOAD_UNREADABLE",
        False,
        "",
        "infrastructure",
        "The stored copy cannot be read",
        [
            "Tell an integration operator: the stored copy is missing or failed its "
            "integrity check.",
            "Ask the source system to send the document again, or send a corrected "
            "version.",
        ],
        False,
    ),
    (
        "",
        False,
        "send_failed",
        "infrastructure",
        "Sending kept failing",
        [CHECK_STATUS_PAGE, "Resend the document unchanged when Connect answers."],
        False,
    ),
    (
        "",
        False,
        "outcome_unknown",
        "infrastructure",
        "Sent, outcome not known",
        [WAIT_FOR_SETTLING, NO_HAND_RESEND],
        False,
    ),
    (
        "",
        False,
        "system_error",
        "infrastructure",
        "System error at the destination",
        [CHECK_STATUS_PAGE, "Resend the document unchanged once the fault is over."],
        False,
    ),
    # Delivery completion
    (
        "NEVER_ACKNOWLEDGED",
        False,
        "",
        "delivery",
        "Delivered but never acknowledged",
        [
            "Phone the practice to check the document reached their workflow.",
            "Resend it unchanged, or send it by another route if they cannot find it.",
        ],
        False,
    ),
    (
        "NDR",
        False,
        "",
        "delivery",
        "Non-delivery report",
        [
            "Ask an integration operator to check the practice's mailbox.",
            "Resend unchanged, reroute, or send it by another route.",
        ],
        False,
    ),
    (
        "EXPIRED",
        False,
        "",
        "delivery",
        "Expired before the practice collected it",
        [
            "Phone the practice.",
            "Resend unchanged, or send it by another route.",
        ],
        False,
    ),
    (
        "",
        False,
        "undelivered",
        "delivery",
        "Delivered but never collected",
        [
            "Phone the practice to check the document reached them.",
            "Resend unchanged, or send it by another route.",
        ],
        False,
    ),
]

VIEW_REFERENCE = [
    ("casework", "view_team"),
    ("casework", "view_workitembucket"),
    ("casework", "view_workitemreason"),
]
ROLES = {
    CLINICAL_ADMIN: [
        ("casework", "view_workitem"),
        ("casework", "assign_workitem"),
        ("casework", "resend_workitem"),
        ("casework", "decide_workitem"),
        ("casework", "reopen_workitem"),
        *VIEW_REFERENCE,
    ],
    "Integration operator": [
        ("casework", "view_workitem"),
        ("casework", "assign_workitem"),
        ("casework", "resend_workitem"),
        *VIEW_REFERENCE,
    ],
    "IG officer": [
        ("casework", "view_workitem"),
        ("casework", "view_historicalworkitem"),
        *VIEW_REFERENCE,
    ],
    "System admin": [
        ("casework", "view_team"),
        ("casework", "add_team"),
        ("casework", "change_team"),
        ("casework", "view_workitembucket"),
        ("casework", "add_workitembucket"),
        ("casework", "change_workitembucket"),
        ("casework", "view_workitemreason"),
        ("casework", "add_workitemreason"),
        ("casework", "change_workitemreason"),
    ],
}
# Each role group works its own team's items by default (grants are editable).
TEAM_FOR_GROUP = {
    CLINICAL_ADMIN: CLINICAL_ADMIN,
    "Integration operator": INTEGRATION_OPERATIONS,
}
ACTIVE = ("open", "assigned")


def _permissions(apps):
    from django.contrib.auth.management import create_permissions

    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None


def _reason_for(reasons, category, code):
    exact = [r for r in reasons if r.code == code and not r.match_prefix]
    if code and exact:
        return exact[0]
    prefixes = [r for r in reasons if r.match_prefix and code.startswith(r.code)]
    if code and prefixes:
        return max(prefixes, key=lambda r: len(r.code))
    fallback = [r for r in reasons if r.code == "" and r.category == category]
    return fallback[0] if fallback else None


def seed(apps, schema_editor):
    _permissions(apps)
    team_model = apps.get_model("casework", "Team")
    bucket_model = apps.get_model("casework", "WorkItemBucket")
    reason_model = apps.get_model("casework", "WorkItemReason")
    item_model = apps.get_model("casework", "WorkItem")
    history_model = apps.get_model("casework", "HistoricalWorkItem")
    group_model = apps.get_model("auth", "Group")
    permission_model = apps.get_model("auth", "Permission")
    content_type_model = apps.get_model("contenttypes", "ContentType")
    group_object_permission = apps.get_model("guardian", "GroupObjectPermission")

    # The old free-text resolution ("Document moved to ready") is the reason now.
    for model in (item_model, history_model):
        for row in model.objects.exclude(resolution=""):
            row.resolution_reason = row.resolution
            row.resolution = "document_moved_on"
            row.save(update_fields=["resolution", "resolution_reason"])

    teams = {}
    for name, description in TEAMS.items():
        teams[name], _ = team_model.objects.get_or_create(
            name=name, defaults={"description": description}
        )
    buckets = {}
    for key, (position, name, description, team, hours) in BUCKETS.items():
        buckets[key], _ = bucket_model.objects.update_or_create(
            key=key,
            defaults={
                "position": position,
                "name": name,
                "description": description,
                "default_team": teams[team],
                "due_within_hours": hours,
            },
        )
    for code, prefix, category, bucket, title, steps, clinical in REASONS:
        reason_model.objects.update_or_create(
            code=code,
            category=category,
            defaults={
                "match_prefix": prefix,
                "bucket": buckets[bucket],
                "title": title,
                "suggested_actions": steps,
                "is_clinical": clinical,
            },
        )

    for role, perms in ROLES.items():
        group, _ = group_model.objects.get_or_create(name=role)
        for app_label, codename in perms:
            group.permissions.add(
                permission_model.objects.get(
                    content_type__app_label=app_label, codename=codename
                )
            )
    team_type = content_type_model.objects.get(app_label="casework", model="team")
    work_team_items = permission_model.objects.get(
        content_type=team_type, codename="work_team_items"
    )
    for role, team in TEAM_FOR_GROUP.items():
        group_object_permission.objects.get_or_create(
            group=group_model.objects.get(name=role),
            permission=work_team_items,
            content_type=team_type,
            object_pk=str(teams[team].pk),
        )

    reasons = list(reason_model.objects.select_related("bucket__default_team"))
    for item in item_model.objects.filter(status__in=ACTIVE, bucket__isnull=True):
        reason = _reason_for(reasons, item.category, item.reason_code)
        if reason is None:
            continue
        item.bucket = reason.bucket
        item.team = reason.bucket.default_team
        item.reason_title = reason.title
        item.suggested_actions = reason.suggested_actions
        item.is_clinical = reason.is_clinical
        item.due_at = item.opened_at + timedelta(hours=reason.bucket.due_within_hours)
        item.save(
            update_fields=[
                "bucket",
                "team",
                "reason_title",
                "suggested_actions",
                "is_clinical",
                "due_at",
            ]
        )


class Migration(migrations.Migration):
    dependencies = [
        ("casework", "0002_teams_buckets_reasons_workflow"),
        ("docflow", "0002_destination_profiles_and_roles"),
        (
            "guardian",
            "0003_remove_groupobjectpermission_guardian_gr_content_ae6aec_idx_and_more",
        ),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
