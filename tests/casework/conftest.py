"""Fixtures for casework: a directory, seeded teams, and staff of every role."""

from __future__ import annotations

import pytest

from casework.models import Team
from docflow.models import OrganisationStatus
from tests.casework.factories import (
    CLINICAL_ADMIN,
    INTEGRATION_OPERATOR,
    SEEDED_CLINICAL_TEAM,
    SEEDED_OPERATIONS_TEAM,
    directory,
    staff,
)
from tests.factories import OrganisationFactory


@pytest.fixture
def practices(db):
    """Active practices of two endpoint types, one closed, one with no profile."""
    active = directory("A81001", "A81002")
    active[1].endpoint_type = "docman7"
    active[1].save(update_fields=["endpoint_type"])
    closed = OrganisationFactory(ods_code="A81006", status=OrganisationStatus.CLOSED)
    unknown_type = OrganisationFactory(ods_code="A81099", endpoint_type="fax")
    return {"active": active, "closed": closed, "no_profile": unknown_type}


@pytest.fixture
def clinical_team(db) -> Team:
    return Team.objects.get(name=SEEDED_CLINICAL_TEAM)


@pytest.fixture
def operations_team(db) -> Team:
    return Team.objects.get(name=SEEDED_OPERATIONS_TEAM)


@pytest.fixture
def clinician(sending_organisation):
    """A clinical admin granted the sending organisation (and, by role, its team)."""
    return staff(CLINICAL_ADMIN, organisations=[sending_organisation], username="ada")


@pytest.fixture
def colleague(sending_organisation):
    return staff(CLINICAL_ADMIN, organisations=[sending_organisation], username="bo")


@pytest.fixture
def operator(sending_organisation):
    """An integration operator granted the sending organisation (and, by role, the
    operations team)."""
    return staff(
        INTEGRATION_OPERATOR, organisations=[sending_organisation], username="olu"
    )
