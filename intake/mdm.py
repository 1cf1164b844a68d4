"""HL7 v2 MDM messages read as docflow submissions, and the ACKs that answer them.

Parsing is python-hl7's (escapes, repetitions, components); this module only says
which field means what in NHS usage, and where each field error points back to in
the message (ERR-2), so that a sender can find it.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import re
import threading
from dataclasses import dataclass, field

import hl7

from docflow.models import DocumentType, Gender
from docflow.services import DocumentSubmission
from intake.models import DestinationRule, DocumentTypeMapping, SourceSystem
from intake.selectors import mllp_source_system

# Triggers docflow accepts; anything else is answered AR.
ORIGINAL = "T02"
REPLACEMENT = "T10"
CANCELS = frozenset({"T03", "T11"})
ACCEPTED_TRIGGERS = frozenset({ORIGINAL, REPLACEMENT, *CANCELS})

SNOMED_SYSTEMS = frozenset({"SCT", "SNOMED", "SNOMEDCT", "SNM"})
# SNOMED CT document types (PRSB / Clinical Document Indexing) and docflow's type.
SNOMED_DOCUMENT_TYPES = {
    "823701000000103": DocumentType.DISCHARGE_SUMMARY,  # Discharge letter
    "373942005": DocumentType.DISCHARGE_SUMMARY,  # Discharge summary
    "823681000000100": DocumentType.CLINIC_LETTER,  # Outpatient letter
    "823691000000103": DocumentType.CLINIC_LETTER,  # Clinical letter
    "25611000000107": DocumentType.REFERRAL,  # Referral letter
    "4241000179101": DocumentType.RESULT,  # Laboratory report
    "2061000000100": DocumentType.ED_ATTENDANCE,  # Emergency care discharge letter
}
GENDERS = {
    "M": Gender.MALE,
    "F": Gender.FEMALE,
    "O": Gender.OTHER,
    "A": Gender.OTHER,
    "U": Gender.UNKNOWN,
    "N": Gender.UNKNOWN,
}
# OBX-5 media (type, subtype) and the extension docflow's content check expects.
CONTENT_EXTENSIONS = {
    ("application", "pdf"): "pdf",
    ("text", "html"): "html",
    ("application", "html"): "html",
    ("image", "tiff"): "tiff",
    ("image", "tif"): "tiff",
    ("application", "rtf"): "rtf",
    ("text", "rtf"): "rtf",
}

# Where each submission field comes from, as ERR-2 (segment^sequence^field).
FIELD_LOCATIONS = {
    "nhs_number": ("PID", 3),
    "mrn": ("PID", 3),
    "patient_family_name": ("PID", 5),
    "patient_given_names": ("PID", 5),
    "patient_birth_date": ("PID", 7),
    "patient_gender": ("PID", 8),
    "destination_ods_code": ("PD1", 3),
    "document_type": ("TXA", 2),
    "description": ("TXA", 2),
    "event_date": ("TXA", 6),
    "sender_person": ("TXA", 9),
    "sender_department": ("PV1", 10),
    "idempotency_key": ("TXA", 12),
    "replaces": ("TXA", 13),
    "content": ("OBX", 5),
    "message": ("MSH", 9),
    "source_system": ("MSH", 4),
}
# HL7 table 0357 message error condition codes.
HL7_REQUIRED_MISSING = ("101", "Required field missing")
HL7_DATA_TYPE_ERROR = ("102", "Data type error")
HL7_TABLE_VALUE = ("103", "Table value not found")
HL7_UNSUPPORTED_EVENT = ("201", "Unsupported event code")
HL7_APPLICATION_ERROR = ("207", "Application internal error")

_DATE = re.compile(r"^(\d{4})(\d{2})(\d{2})")
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True)
class FieldProblem:
    """One field error: the API's field name and code, and its detail."""

    field: str
    code: str
    detail: str

    def as_problem(self) -> dict[str, str]:
        return {"field": self.field, "code": self.code, "detail": self.detail}


class MessageRejected(Exception):
    """The message cannot be taken at all (AR): unreadable, unknown sender or event."""

    def __init__(self, reason: str, *, code: str = "rejected") -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


@dataclass
class MdmMessage:
    """One MDM message as docflow reads it."""

    parsed: hl7.Message = field(repr=False)
    trigger: str
    control_id: str
    sending_facility: str
    sending_application: str
    unique_id: str = ""
    parent_id: str = ""
    submission: DocumentSubmission | None = field(default=None, repr=False)
    problems: list[FieldProblem] = field(default_factory=list)


_first = threading.local()


def _first_segment(message: hl7.Message, segment: str) -> hl7.Segment | None:
    """The first segment of a type. python-hl7's own lookup scans every segment
    each time; a message is read field by field, so its first segments are indexed
    once (for the message last read on this thread)."""
    if getattr(_first, "message", None) is not message:
        index: dict[str, hl7.Segment] = {}
        for found in message:
            index.setdefault(str(found[0][0]), found)
        _first.message, _first.index = message, index
    return _first.index.get(segment)


def _get(message: hl7.Message, segment: str, field_no: int, rep=1, comp=1, sub=1):
    """One field's text, unescaped ("" when absent), as python-hl7's
    ``Message.extract_field`` gives it for the first segment of that type."""
    found = _first_segment(message, segment)
    if found is None:
        return ""
    try:
        return str(found.extract_field(1, field_no, rep, comp, sub))
    except IndexError:
        return ""


def _repetitions(message: hl7.Message, segment: str, field_no: int) -> int:
    try:
        value = message.segment(segment)(field_no)
    except (IndexError, KeyError):
        return 0
    if isinstance(value, hl7.Field):
        return len(value)
    return 1 if value else 0


def _has_segment(message: hl7.Message, segment: str) -> bool:
    try:
        message.segment(segment)
    except KeyError:
        return False
    return True


def message_parse(text: str) -> hl7.Message:
    """Parse an HL7 v2 message; AR when it is not one."""
    text = text.replace("\r\n", "\r").replace("\n", "\r").strip("\r")
    if not text.startswith("MSH"):
        raise MessageRejected("The message does not begin with an MSH segment.")
    try:
        return hl7.parse(text)
    except Exception:  # python-hl7 raises assorted errors on malformed input
        raise MessageRejected("The message could not be parsed as HL7 v2.") from None


def mdm_header(message: hl7.Message) -> MdmMessage:
    """Who sent the message and which event it is."""
    return MdmMessage(
        parsed=message,
        trigger=_get(message, "MSH", 9, 1, 2).upper(),
        control_id=_get(message, "MSH", 10),
        sending_facility=_get(message, "MSH", 4),
        sending_application=_get(message, "MSH", 3),
    )


def source_system_for(mdm: MdmMessage) -> SourceSystem:
    """The active MLLP source system named by MSH-4 and MSH-3; AR otherwise."""
    source = mllp_source_system(
        facility=mdm.sending_facility, application=mdm.sending_application
    )
    if source is None:
        raise MessageRejected(
            "MSH-4 and MSH-3 name no source system allowed to send here.",
            code="unknown_source",
        )
    return source


def _date(value: str) -> datetime.date | None:
    match = _DATE.match(value.strip())
    if not match:
        return None
    try:
        return datetime.date(*(int(part) for part in match.groups()))
    except ValueError:
        return None


def _normal_text(text: str) -> str:
    return _SPACES.sub(" ", text).strip().casefold()


def _document_type(
    message: hl7.Message, source: SourceSystem, problems: list[FieldProblem]
) -> tuple[str, str]:
    """(docflow document type, description) from TXA-2."""
    components = [_get(message, "TXA", 2, 1, n) for n in range(1, 7)]
    text = components[1] or components[4] or components[0]
    for code, system in (
        (components[0], components[2]),
        (components[3], components[5]),
    ):
        if code and system.upper() in SNOMED_SYSTEMS:
            mapped = SNOMED_DOCUMENT_TYPES.get(code)
            if mapped is None:
                problems.append(
                    FieldProblem(
                        "document_type",
                        "invalid_choice",
                        "The SNOMED CT code is not a document type docflow knows.",
                    )
                )
                return "", text
            return mapped, text
    if not text:
        return "", ""
    wanted = _normal_text(text)
    rows = DocumentTypeMapping.objects.filter(
        source_system__in=[source.pk]
    ) | DocumentTypeMapping.objects.filter(source_system__isnull=True)
    by_text = {}
    for row in rows.order_by("source_system_id"):
        # A source's own row wins over a row for every source.
        by_text.setdefault(_normal_text(row.text), row.document_type)
    if wanted in by_text:
        return by_text[wanted], text
    if wanted in DocumentType.values:
        return wanted, text
    problems.append(
        FieldProblem(
            "document_type",
            "invalid_choice",
            "TXA-2 is not coded in SNOMED CT and its text is not in the "
            "document type table.",
        )
    )
    return "", text


def _identifiers(message: hl7.Message, source: SourceSystem) -> tuple[str, str]:
    """(NHS number, hospital number) from the repetitions of PID-3."""
    nhs_number = mrn = ""
    authority = source.nhs_number_authority.upper()
    for rep in range(1, _repetitions(message, "PID", 3) + 1):
        value = _get(message, "PID", 3, rep, 1)
        assigning = _get(message, "PID", 3, rep, 4).upper()
        kind = _get(message, "PID", 3, rep, 5).upper()
        if not nhs_number and (kind == "NH" or (authority and assigning == authority)):
            nhs_number = value
        elif not mrn and kind == source.mrn_identifier_type.upper():
            mrn = value
    return nhs_number, mrn


def _destination(message: hl7.Message, source: SourceSystem) -> str:
    if source.destination_rule == DestinationRule.FIXED:
        return source.fixed_destination_ods_code
    field_no = (
        4 if source.destination_rule == DestinationRule.PRIMARY_CARE_DOCTOR else 3
    )
    # XON: the organisation identifier (component 10 since v2.5, 3 before).
    for comp in (10, 3, 1):
        value = _get(message, "PD1", field_no, 1, comp).strip()
        if value:
            return value
    return ""


def _person(message: hl7.Message, segment: str, field_no: int) -> str:
    """An XCN as a name: prefix, given, family (else the identifier)."""
    id_number, family, given, middle, _suffix, prefix = (
        _get(message, segment, field_no, 1, n) for n in range(1, 7)
    )
    name = " ".join(part for part in (prefix, given, middle, family) if part)
    return name or id_number


def _content(message: hl7.Message, problems: list[FieldProblem]) -> tuple[bytes, str]:
    """(bytes, declared extension) from the first OBX with encapsulated data."""
    try:
        segments = message.segments("OBX")
    except KeyError:
        segments = []
    for number in range(1, len(segments) + 1):
        kind = str(message.extract_field("OBX", number, 2)).upper()
        if kind == "RP":
            problems.append(
                FieldProblem(
                    "content",
                    "pointer_refused",
                    "OBX-2 RP (a reference pointer) is refused: send the document "
                    "inline as OBX-2 ED.",
                )
            )
            return b"", ""
        if kind != "ED":
            continue

        def part(comp: int, number=number) -> str:
            try:
                return str(message.extract_field("OBX", number, 5, 1, comp))
            except IndexError:
                return ""

        media = (part(2).lower(), part(3).lower())
        encoding = part(4).lower()
        data = part(5)
        if encoding != "base64":
            problems.append(
                FieldProblem(
                    "content", "invalid", "OBX-5 must be encoded Base64 (OBX-5.4)."
                )
            )
            return b"", ""
        try:
            content = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            problems.append(
                FieldProblem("content", "invalid", "OBX-5.5 is not valid Base64.")
            )
            return b"", ""
        return content, CONTENT_EXTENSIONS.get(media, media[1])
    problems.append(
        FieldProblem(
            "content", "required", "No OBX segment of type ED carries the document."
        )
    )
    return b"", ""


def mdm_read(mdm: MdmMessage, *, source: SourceSystem) -> MdmMessage:
    """Fill in the document ids, the submission and any problems of reading it."""
    message = mdm.parsed
    problems = mdm.problems
    mdm.unique_id = _get(message, "TXA", 12).strip()
    mdm.parent_id = _get(message, "TXA", 13).strip()
    if not mdm.unique_id:
        problems.append(
            FieldProblem(
                "idempotency_key", "required", "TXA-12, the unique document number."
            )
        )
    if mdm.trigger in CANCELS:
        return mdm
    if not _has_segment(message, "PID"):
        problems.append(FieldProblem("nhs_number", "required", "No PID segment."))
    nhs_number, mrn = _identifiers(message, source)
    document_type, description = _document_type(message, source, problems)
    birth_text = _get(message, "PID", 7)
    birth_date = _date(birth_text)
    if birth_text and birth_date is None:
        problems.append(
            FieldProblem("patient_birth_date", "invalid", "PID-7 is not a date.")
        )
    event_text = next(
        (
            value
            for value in (
                _get(message, "TXA", 6),
                _get(message, "TXA", 4),
                _get(message, "MSH", 7),
            )
            if value
        ),
        "",
    )
    event_date = _date(event_text)
    if event_text and event_date is None:
        problems.append(FieldProblem("event_date", "invalid", "TXA-6 is not a date."))
    gender_code = _get(message, "PID", 8).strip().upper()
    gender = GENDERS.get(gender_code, "")
    if gender_code and not gender:
        problems.append(
            FieldProblem(
                "patient_gender", "invalid_choice", "PID-8 is not an HL7 sex code."
            )
        )
    content, extension = _content(message, problems)
    given = " ".join(
        part
        for part in (_get(message, "PID", 5, 1, 2), _get(message, "PID", 5, 1, 3))
        if part
    )
    department = _get(message, "PV1", 10, 1, 2) or _get(message, "PV1", 10, 1, 1)
    mdm.submission = DocumentSubmission(
        nhs_number=nhs_number,
        patient_family_name=_get(message, "PID", 5, 1, 1),
        patient_given_names=given,
        patient_birth_date=birth_date,
        patient_gender=gender,
        mrn=mrn,
        document_type=document_type,
        description=description,
        event_date=event_date,
        destination_ods_code=_destination(message, source),
        sender_person=_person(message, "TXA", 9),
        sender_department=department,
        source_reference=mdm.unique_id[:255],
        content=content,
        declared_extension=extension,
    )
    return mdm


def _err_segment(message: hl7.Message | None, problem: FieldProblem) -> str:
    segment, field_no = FIELD_LOCATIONS.get(problem.field, ("MSH", 9))
    if problem.code == "required":
        hl7_code = HL7_REQUIRED_MISSING
    elif problem.code in ("invalid", "invalid_date"):
        hl7_code = HL7_DATA_TYPE_ERROR
    elif problem.code == "invalid_choice":
        hl7_code = HL7_TABLE_VALUE
    else:
        hl7_code = HL7_APPLICATION_ERROR

    def esc(text: str) -> str:
        for char, sequence in (
            ("\\", "\\E\\"),
            ("|", "\\F\\"),
            ("^", "\\S\\"),
            ("&", "\\T\\"),
            ("~", "\\R\\"),
        ):
            text = text.replace(char, sequence)
        return text.replace("\r", " ").replace("\n", " ")

    return "|".join(
        [
            "ERR",
            "",
            f"{segment}^1^{field_no}",
            f"{hl7_code[0]}^{esc(hl7_code[1])}^HL70357",
            "E",
            f"{esc(problem.code)}^{esc(problem.field)}^DOCFLOW",
            "",
            "",
            esc(problem.detail),
        ]
    )


def ack_build(
    message: hl7.Message | None,
    *,
    code: str,
    text: str = "",
    problems: list[FieldProblem] | tuple = (),
    control_id: str = "",
) -> str:
    """An ACK (MSH, MSA, one ERR per problem) as ER7 text."""
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%d%H%M%S")
    if message is not None:
        try:
            ack = message.create_ack(
                ack_code=code, application="DOCFLOW", facility="DOCFLOW"
            )
            segments = str(ack).strip("\r").split("\r")
        except Exception:  # a header too broken to answer from: answer plainly
            message = None
    if message is None:
        segments = [
            f"MSH|^~\\&|DOCFLOW|DOCFLOW|||{stamp}||ACK|{stamp}|P|2.4",
            f"MSA|{code}|{control_id}",
        ]
    if text:
        clean = text.replace("|", " ").replace("^", " ").replace("\r", " ")
        segments[1] = f"{segments[1]}|{clean}"
    segments.extend(_err_segment(message, problem) for problem in problems)
    return "\r".join(segments) + "\r"
