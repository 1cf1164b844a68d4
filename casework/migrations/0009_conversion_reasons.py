"""Reasons for bounded conversion: content whose conversion passed a limit of its
destination profile (``CONVERSION_LIMIT``) and a converted letter that lost
content it referred to (``CONTENT_LOST``), both in the content bucket, with the
steps that fix them. Editable in the admin afterwards."""

from django.db import migrations

SEND_CORRECTED = "Send the corrected version."

# (code, prefix?, bucket, title, steps, clinical?)
REASONS = [
    (
        "CONVERSION_LIMIT",
        False,
        "content",
        "The document could not be converted within its limits",
        [
            "Read the hold's details: they name the limit (pages, time, CPU time, "
            "memory, or repeated failed attempts).",
            "Ask the author's team for the document as a PDF, or as simpler HTML "
            "(fewer forced page breaks, no deep nesting, smaller tables).",
            SEND_CORRECTED,
        ],
        False,
    ),
    (
        "CONTENT_LOST",
        False,
        "content",
        "Converted without content it refers to",
        [
            "Read the hold's details: they list the images, stylesheets or fonts "
            "that were not fetched (external content is never fetched).",
            "Ask the author's team for a version with that content inline (or as "
            "a PDF), and send it as a corrected version.",
            "If the letter is complete without it, release it and record why.",
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
        ("casework", "0008_mesh_reasons"),
    ]

    operations = [migrations.RunPython(seed, unseed)]
