"""Casework test set-up: staff in real role groups with real guardian grants, and
documents brought into each attention state through the real services."""

from __future__ import annotations

import factory
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django_q.models import OrmQ
from guardian.shortcuts import assign_perm

from casework.models import Team, WorkItem, WorkItemStatus
from casework.services import RerouteConfirmation, work_item_sync_for_document
from docflow.models import Document, DocumentStatus
from docflow.preparation import document_prepare
from docflow.services import document_transition
from tests.factories import (
    OrganisationFactory,
    UserFactory,
    consume_prepare_task,
    submit_document,
)

CLINICAL_ADMIN = "Clinical admin"
INTEGRATION_OPERATOR = "Integration operator"
IG_OFFICER = "IG officer"
SEEDED_CLINICAL_TEAM = "Clinical admin"
SEEDED_OPERATIONS_TEAM = "Integration operations"


class TeamFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Team
        django_get_or_create = ("name",)

    name = factory.Sequence(lambda n: f"Team {n}")


def staff(
    role: str | None,
    *,
    organisations=(),
    teams=(),
    username: str | None = None,
):
    """A person in a role group, granted these sending organisations and teams
    (on top of the team the role's group is granted by the seed data)."""
    # No usable password: these people never log in, and hashing one is slow.
    user = UserFactory(password=None, **({"username": username} if username else {}))
    if role:
        user.groups.add(Group.objects.get(name=role))
    for organisation in organisations:
        assign_perm("docflow.access_documents", user, organisation)
    for team in teams:
        assign_perm("casework.work_team_items", user, team)
    return get_user_model().objects.get(pk=user.pk)  # no stale permission cache


def fresh(user):
    """The same person with permission caches cleared (after a new grant)."""
    return get_user_model().objects.get(pk=user.pk)


def directory(*codes: str, **overrides):
    return [OrganisationFactory(ods_code=code, **overrides) for code in codes]


_RECEIVED = ["claim_for_sending", "mark_received"]
PATHS = {
    "ready": [],
    "held_after_send": ["claim_for_sending", "hold_after_send_attempt"],
    "outcome_unknown": ["claim_for_sending", "mark_outcome_unknown"],
    "rejected": [*_RECEIVED, "mark_rejected"],
    "system_error": [*_RECEIVED, "mark_system_error"],
    "undelivered": [*_RECEIVED, "mark_delivered", "mark_undelivered"],
    "accepted": [*_RECEIVED, "mark_accepted"],
}


def document_in(
    state: str,
    *,
    sending_organisation,
    reason: str = "",
    destination: str = "A81001",
    **overrides,
) -> Document:
    """Submit, prepare for a destination in the directory, then follow the lifecycle
    edges to ``state`` with ``reason`` as the last code, syncing the work item the way
    the engine does. ``held`` holds during preparation (destination unknown)."""
    document = submit_document(
        sending_organisation=sending_organisation,
        destination_ods_code=destination,
        **overrides,
    )
    prepared = document_prepare(document_id=document.pk)
    consume_prepare_task(document)
    document = prepared.document
    if state == "held":
        assert document.status == DocumentStatus.HELD, document.status_reason
    else:
        assert document.status == DocumentStatus.READY, document.status_reason
        for transition in PATHS[state]:
            document = document_transition(
                document=document, transition=transition, reason=reason
            )
    work_item_sync_for_document(document=document)
    return document


def open_item(document: Document) -> WorkItem:
    return WorkItem.objects.get(
        document=document,
        status__in=[WorkItemStatus.OPEN, WorkItemStatus.ASSIGNED],
    )


def queued() -> list[tuple[str, tuple]]:
    """Tasks queued on the ORM broker, by dotted name and arguments."""
    return sorted((q.task["func"], tuple(q.task["args"])) for q in OrmQ.objects.all())


def clear_queue() -> None:
    OrmQ.objects.all().delete()


def confirmed(item: WorkItem, ods_code: str):
    """What the reroute confirmation page gives the service: this practice, at the
    item's current version."""
    return RerouteConfirmation(
        ods_code=ods_code, version=WorkItem.objects.get(pk=item.pk).version
    )
