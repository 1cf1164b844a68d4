"""Connect's DC01 validation of an Inbound Document, as the simulator applies it."""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from datetime import UTC, date, datetime
from typing import Any

ODS = re.compile(r"^[A-Z0-9]{3,10}$")
EXTENSION = re.compile(r"^[A-Za-z0-9]{1,10}$")
DESCRIPTIONS = {
    "DC01.01": "Patient Data Missing",
    "DC01.02": "Document Data Missing",
    "DC01.03": "Document Notes Exceeds 255 Characters",
    "DC01.04": "Sender Organisation Exceeds 255 Characters",
    "DC01.05": "Sender Department Exceeds 255 Characters",
    "DC01.06": "Sender Person Exceeds 255 Characters",
    "DC01.07": "Patient Family Name Exceeds 255 Characters",
    "DC01.08": "Patient Given Names Exceeds 255 Characters",
    "DC01.09": "Patient Birth Date Missing or Future Date",
    "DC01.11": "Clinical Code Data Specified Is Invalid",
    "DC01.20": "Capture Source Specified Is Invalid",
    "DC01.21": "Recipient ODS Code Missing or Invalid",
    "DC01.22": "Sender ODS Code Missing or Invalid",
    "DC01.30": "File Extension Missing or Invalid",
    "DC01.31": "File Content Missing",
    "DC01.32": "File Extension Specified Exceeds 10 Characters",
    "DC01.33": "File Hash Specified Is Invalid, File Content May Be Corrupt",
    "DC01.40": "Document Description Missing",
    "DC01.41": "Event Date Missing",
    "DC01.42": "Folder Name Exceeds 50 Characters",
    "DC01.43": "Document Description Exceeds 255 Characters",
    "DC02": "Recipient ODS Code Inactive Or Not Found",
    "DC03": "Recipient ODS Code Is Not A Valid Receiving Organisation",
    "SIM01": "File exceeds the destination's size limit",
    "SIM02": "Idempotency-Key header missing or longer than 64 characters",
}


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _too_long(value: Any, limit: int) -> bool:
    return isinstance(value, str) and len(value) > limit


def _date(value: Any) -> date | None:
    if not isinstance(value, str):
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        return None


def validate_inbound(body: Any) -> tuple[list[str], bytes | None]:
    """Return the DC01 codes the body breaks (in code order) and the decoded file."""
    codes: set[str] = set()
    content: bytes | None = None
    if not isinstance(body, dict):
        return ["DC01.01", "DC01.02"], None
    if body.get("CaptureSource") != 2:
        codes.add("DC01.20")
    recipient = _text(body.get("RecipientOdsCode"))
    if not recipient or not ODS.match(recipient):
        codes.add("DC01.21")
    sender = body.get("Sender")
    if not isinstance(sender, dict):
        codes.add("DC01.22")
    else:
        sender_ods = _text(sender.get("OdsCode"))
        if not sender_ods or not ODS.match(sender_ods):
            codes.add("DC01.22")
        for name, code in (
            ("Organisation", "DC01.04"),
            ("Department", "DC01.05"),
            ("Person", "DC01.06"),
        ):
            if _too_long(sender.get(name), 255):
                codes.add(code)
    patient = body.get("Patient")
    if not isinstance(patient, dict):
        codes.add("DC01.01")
    else:
        nhs = _text(patient.get("NhsNumber"))
        family = _text(patient.get("FamilyName"))
        if not nhs or not re.fullmatch(r"[0-9]{10}", nhs) or not family:
            codes.add("DC01.01")
        if _too_long(family, 255):
            codes.add("DC01.07")
        if _too_long(patient.get("GivenNames"), 255):
            codes.add("DC01.08")
        birth = _date(patient.get("BirthDate"))
        if birth is None or birth > datetime.now(UTC).date():
            codes.add("DC01.09")
    document = body.get("Document")
    if not isinstance(document, dict):
        codes.add("DC01.02")
    else:
        extension = document.get("FileExtension")
        if not isinstance(extension, str) or not extension:
            codes.add("DC01.30")
        elif len(extension) > 10:
            codes.add("DC01.32")
        elif not EXTENSION.match(extension):
            codes.add("DC01.30")
        encoded = document.get("FileContent")
        if not isinstance(encoded, str) or not encoded:
            codes.add("DC01.31")
        else:
            try:
                content = base64.b64decode(encoded, validate=True)
            except (binascii.Error, ValueError):
                codes.add("DC01.33")
            else:
                if not content:
                    codes.add("DC01.31")
                elif document.get("FileHash") != hashlib.sha256(content).hexdigest():
                    codes.add("DC01.33")
        description = document.get("Description")
        if not isinstance(description, str) or not description.strip():
            codes.add("DC01.40")
        elif len(description) > 255:
            codes.add("DC01.43")
        if _date(document.get("EventDate")) is None:
            codes.add("DC01.41")
        if _too_long(document.get("FolderName"), 50):
            codes.add("DC01.42")
    if _too_long(body.get("Notes"), 255):
        codes.add("DC01.03")
    clinical = body.get("ClinicalCodes")
    if clinical is not None and (
        not isinstance(clinical, list)
        or any(
            not isinstance(c, dict)
            or c.get("Scheme", "SNOMED") != "SNOMED"
            or not isinstance(c.get("Code", ""), str)
            for c in clinical
        )
    ):
        codes.add("DC01.11")
    return sorted(codes), content


def failure_body(codes: list[str]) -> dict[str, Any]:
    return {
        "ValidationErrors": [
            {"Code": code, "Description": DESCRIPTIONS[code]} for code in codes
        ]
    }
