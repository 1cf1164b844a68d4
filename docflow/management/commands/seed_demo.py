"""Demo data for a development machine: safe to run on every start.

Creates sending organisations, destinations of every endpoint type, users of every
role, one API key per sending organisation and documents for every practice
behaviour of the Connect simulator's demo scenario. Documents go in through the real
intake service; the running engine sends them on to their outcomes (accepted,
delivered, rejected, held, system error), so their audit trail is production's.
Everything is looked up before it is created, so a second run changes nothing.
"""

from __future__ import annotations

import datetime
import io
import json
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone
from django.utils.module_loading import import_string
from guardian.shortcuts import assign_perm

from audit.selectors import audit_chain_verify
from docflow.models import (
    ApiKey,
    Channel,
    DestinationProfile,
    Document,
    DocumentStatus,
    EndpointType,
    Organisation,
    OrganisationSource,
    OrganisationStatus,
    SendingOrganisation,
)
from docflow.services import DocumentSubmission, document_cancel, document_submit

# Printed, and only ever set on a development machine (see handle()).
DEMO_PASSWORD = "docflow-demo-password"  # noqa: S105
ACCESS_DOCUMENTS = "docflow.access_documents"
API_KEY_NAME = "Demo EPR"

SENDING_ORGANISATIONS = [
    ("RX1", "Northshire Hospitals NHS Foundation Trust"),
    ("RY2", "Southvale Community Trust"),
]

# The same practices as the Connect simulator's demo scenario, so that documents
# sent to them meet the matching behaviour (accept, reject, inactive, ...).
ACTIVE, INACTIVE = OrganisationStatus.ACTIVE, OrganisationStatus.INACTIVE
DESTINATIONS = [
    ("A81001", "Riverside Surgery", EndpointType.DOCMAN10, ACTIVE),
    ("A81002", "Hillview Medical Centre", EndpointType.DOCMAN7, ACTIVE),
    ("A81003", "Parkside Practice", EndpointType.EMIS_MESH, ACTIVE),
    ("A81004", "Meadow Lane Surgery", EndpointType.TPP_MESH, ACTIVE),
    ("A81005", "Old Mill Practice", EndpointType.DOCMAN10, ACTIVE),
    ("A81006", "Closed Road Surgery", EndpointType.DOCMAN10, INACTIVE),
    # Known to ODS but not a receiving organisation: no endpoint at all.
    ("A81007", "Community Dental Service", "", ACTIVE),
    ("A81008", "Harbour Health Centre", EndpointType.DOCMAN10, ACTIVE),
    ("A81009", "Station Road Practice", EndpointType.DOCMAN10, ACTIVE),
    ("A81010", "Castle Street Surgery", EndpointType.DOCMAN10, ACTIVE),
    ("A81011", "Green Lanes Practice", EndpointType.DOCMAN10, ACTIVE),
    ("A81012", "Quarry Hill Surgery", EndpointType.DOCMAN10, ACTIVE),
    ("A81013", "Small Box Practice", EndpointType.DOCMAN7, ACTIVE),
    ("A81014", "Brookside Surgery", EndpointType.DOCMAN10, ACTIVE),
    # Reached over MESH, not Connect: the local MESH sandbox's test practice.
    ("X26", "Sandbox Surgery (over MESH)", "gp_mesh", ACTIVE),
]


@dataclass(frozen=True)
class DemoUser:
    username: str
    role: str
    first_name: str
    last_name: str
    is_staff: bool = False
    organisations: tuple[str, ...] = ()


USERS = [
    DemoUser("clinical.admin", "Clinical admin", "Casey", "Clark", False, ("RX1",)),
    DemoUser("clinical.admin.ry2", "Clinical admin", "Robin", "Reed", False, ("RY2",)),
    DemoUser("ig.officer", "IG officer", "Imogen", "Grant", True, ("RX1", "RY2")),
    DemoUser(
        "integration.operator",
        "Integration operator",
        "Ollie",
        "Price",
        True,
        ("RX1", "RY2"),
    ),
    DemoUser("system.admin", "System admin", "Sam", "Adams", True),
]

# Every demo document goes in through intake; the running engine (qcluster and the
# Connect simulator started by `make run`) prepares, sends and tracks it to the
# outcome its practice's simulated behaviour gives. Only the cancellation is a
# person's act, taken here before anything is sent.
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


def _pdf_text(text: str) -> str:
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def letter_pdf(lines: list[str]) -> bytes:
    """A small, valid one-page PDF letter; the same lines give the same bytes."""
    commands = ["BT", "/F1 11 Tf", "14 TL", "72 760 Td"]
    for line in lines:
        commands.append(f"({_pdf_text(line)}) Tj T*")
    commands.append("ET")
    stream = "\n".join(commands).encode("latin-1", errors="replace")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica "
        b"/Encoding /WinAnsiEncoding >>",
    ]
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % number + body + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    for offset in offsets:
        out.write(b"%010d 00000 n \n" % offset)
    out.write(
        b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n"
        % (len(objects) + 1, xref)
    )
    return out.getvalue()


def _write_private_json(path: Path, data: dict) -> None:
    """Replace ``path`` atomically with owner-only permissions."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2, sort_keys=True)
    os.chmod(temporary, 0o600)
    os.replace(temporary, path)


class Command(BaseCommand):
    help = (
        "Create demo organisations, users of every role, API keys and documents in "
        "flight to every practice behaviour. Idempotent. Development only unless "
        "--force."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--force",
            action="store_true",
            help="Run even with DEBUG off (creates users with a published password).",
        )

    def handle(self, *args, force: bool = False, **options) -> None:
        if not settings.DEBUG and not force:
            raise CommandError(
                "seed_demo creates users with a published password; it runs only "
                "with DJANGO_DEBUG=1 (or pass --force on a throwaway database)."
            )
        self.keys_path = Path(settings.VAR_DIR) / "demo-api-keys.json"
        senders = self._sending_organisations()
        self._destinations()
        self._mesh(senders)
        users = self._users(senders)
        api_keys = self._api_keys(senders)
        created = self._documents(senders, api_keys, users)
        self._summary(users, api_keys, created)

    def _say(self, message: str) -> None:
        self.stdout.write(message)

    @transaction.atomic
    def _sending_organisations(self) -> dict[str, SendingOrganisation]:
        senders = {}
        for ods_code, name in SENDING_ORGANISATIONS:
            organisation, created = SendingOrganisation.objects.get_or_create(
                ods_code=ods_code,
                defaults={
                    "name": name,
                    "connect_client_id": f"client-{ods_code}",
                    "connect_secret_ref": f"CONNECT_SECRET_{ods_code}",
                },
            )
            senders[ods_code] = organisation
            self._say(f"  sending organisation {organisation} {_verb(created)}")
        return senders

    @transaction.atomic
    def _destinations(self) -> None:
        created_count = 0
        for ods_code, name, endpoint_type, status in DESTINATIONS:
            _, created = Organisation.objects.get_or_create(
                ods_code=ods_code,
                defaults={
                    "name": name,
                    "endpoint_type": endpoint_type,
                    "status": status,
                    "source": OrganisationSource.MANUAL,
                    "last_verified_at": timezone.now(),
                },
            )
            created_count += created
        self._say(
            f"  destinations: {len(DESTINATIONS)} "
            f"({created_count} created, every endpoint type, one inactive, "
            "one without an endpoint)"
        )

    @transaction.atomic
    @transaction.atomic
    def _mesh(self, senders: dict[str, SendingOrganisation]) -> None:
        """Practice X26 is reached over MESH: its profile names the channel, and RX1
        sends through its mailbox on the local MESH sandbox."""
        DestinationProfile.objects.update_or_create(
            endpoint_type="gp_mesh",
            defaults={
                "name": "GP practice over MESH",
                "channel": Channel.MESH,
                "max_file_size_bytes": 20 * 1024 * 1024,
                "allowed_media_types": ["application/pdf"],
                "reports_accepted": True,
            },
        )
        # By dotted path, as casework names tasks: docflow never imports transmissions.
        seed = import_string(
            "transmissions.channels.mesh.demo_setup.mesh_demo_mailbox_seed"
        )
        self._say(f"  MESH: {seed(sending_organisation=senders['RX1'])} for RX1")

    def _users(self, senders: dict[str, SendingOrganisation]) -> dict[str, object]:
        user_model = get_user_model()
        users: dict[str, object] = {}
        admin, created = user_model.objects.get_or_create(
            username="admin",
            defaults={
                "is_staff": True,
                "is_superuser": True,
                "email": "admin@example.invalid",
            },
        )
        if created:
            admin.set_password(DEMO_PASSWORD)
            admin.save(update_fields=["password"])
        users["admin"] = admin
        self._say(f"  user admin (superuser) {_verb(created)}")
        for spec in USERS:
            user, created = user_model.objects.get_or_create(
                username=spec.username,
                defaults={
                    "first_name": spec.first_name,
                    "last_name": spec.last_name,
                    "email": f"{spec.username}@example.invalid",
                    "is_staff": spec.is_staff,
                },
            )
            if created:
                user.set_password(DEMO_PASSWORD)
                user.save(update_fields=["password"])
            user.groups.add(Group.objects.get(name=spec.role))
            for ods_code in spec.organisations:
                assign_perm(ACCESS_DOCUMENTS, user, senders[ods_code])
            users[spec.username] = user
            self._say(f"  user {spec.username} ({spec.role}) {_verb(created)}")
        return users

    def _stored_keys(self) -> dict[str, dict[str, str]]:
        if not self.keys_path.exists():
            return {}
        try:
            return json.loads(self.keys_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}

    @transaction.atomic
    def _api_keys(
        self, senders: dict[str, SendingOrganisation]
    ) -> dict[str, tuple[ApiKey, str]]:
        """One live key per sending organisation, its raw value kept in var/."""
        stored = self._stored_keys()
        user_model = get_user_model()
        api_client_group = Group.objects.get(name="API client")
        result: dict[str, tuple[ApiKey, str]] = {}
        changed = False
        for ods_code, organisation in senders.items():
            service_user, _ = user_model.objects.get_or_create(
                username=f"svc-{ods_code.lower()}-epr",
                defaults={"first_name": "EPR", "last_name": ods_code},
            )
            if service_user.has_usable_password():
                service_user.set_unusable_password()
                service_user.save(update_fields=["password"])
            service_user.groups.add(api_client_group)
            entry = stored.get(ods_code) or {}
            raw = entry.get("key", "")
            existing = ApiKey.objects.filter(
                sending_organisation=organisation,
                prefix=raw.partition(".")[0],
                revoked=False,
            ).first()
            if existing is not None and existing.is_valid(raw):
                result[ods_code] = (existing, raw)
                self._say(f"  API key for {ods_code}: already exists")
                continue
            # The raw key is lost (or never made): retire old demo keys, make one.
            ApiKey.objects.filter(
                sending_organisation=organisation, name=API_KEY_NAME, revoked=False
            ).update(revoked=True)
            api_key, raw = ApiKey.objects.create_key(
                name=API_KEY_NAME, sending_organisation=organisation, user=service_user
            )
            stored[ods_code] = {"prefix": api_key.prefix, "key": raw}
            changed = True
            result[ods_code] = (api_key, raw)
            self._say(f"  API key for {ods_code}: created")
        if changed:
            _write_private_json(self.keys_path, stored)
        return result

    def _documents(
        self,
        senders: dict[str, SendingOrganisation],
        api_keys: dict[str, tuple[ApiKey, str]],
        users: dict[str, object],
    ) -> int:
        """Submit each demo document once; the engine takes it from there."""
        today = timezone.localdate()
        created_count = 0
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
            sender = senders[sender_code]
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
                actor=api_keys[sender_code][0],
            )
            if not created:
                continue
            if outcome == "cancelled":
                document = document_cancel(
                    document=document,
                    reason=CANCEL_REASON,
                    actor=users[CLINICAL_ADMIN_FOR[sender_code]],
                )
            created_count += 1
            self._say(f"  document demo-{index:03d}: {document.status}, for {outcome}")
        return created_count

    def _summary(
        self,
        users: dict[str, object],
        api_keys: dict[str, tuple[ApiKey, str]],
        created_documents: int,
    ) -> None:
        counts = Counter(
            Document.objects.filter(source_system__startswith="demo:").values_list(
                "status", flat=True
            )
        )
        verdict = audit_chain_verify()
        labels = dict(DocumentStatus.choices)
        self._say("")
        self._say(self.style.SUCCESS("Demo data ready."))
        self._say(
            f"Documents: {sum(counts.values())} demo documents "
            f"({created_documents} created now)"
        )
        for status, count in sorted(counts.items()):
            self._say(f"  {labels.get(status, status):<22} {count}")
        self._say(
            f"Audit chain: {'OK' if verdict.ok else 'BROKEN'}, "
            f"{verdict.checked} events verified"
        )
        self._say("")
        self._say(f"Demo logins (password for all: {DEMO_PASSWORD})")
        self._say("  admin                  superuser")
        for spec in USERS:
            scope = ", ".join(spec.organisations) or "-"
            self._say(f"  {spec.username:<22} {spec.role:<22} documents of: {scope}")
        self._say("")
        self._say(f"API keys (also in {self.keys_path}, mode 0600)")
        for ods_code, (_, raw) in api_keys.items():
            self._say(f"  {ods_code}: Authorization: Api-Key {raw}")
        self._say("")


def _verb(created: bool) -> str:
    return "created" if created else "already exists"
