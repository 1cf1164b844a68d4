"""Every outgoing Send Document message is checked before it leaves.

Three layers, each naming the element that fails, never a value:

1. FHIR STU3's base rules: the message parses into ``fhir.resources`` STU3 models
   (types, required elements, code lists of the base specification).
2. The profiles it claims, from the StructureDefinitions vendored in
   ``profiles/`` (see SOURCE.md): every element's cardinality (``min``/``max``,
   per parent), fixed values, and the slices of ``extension`` by url, read from
   each profile's snapshot. A resource claiming a profile we do not hold is
   checked by the Send Document rules only.
3. The Send Document rules the guide states that a StructureDefinition cannot:
   the header focuses the Document Bundle, the Composition comes first with a
   SNOMED CT type and the sending Organization (ODS code) as custodian, the
   Patient has an NHS number, each DocumentReference's attachment hash matches
   its Binary, and nothing is confidential (``R``).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fhir.resources.STU3.bundle import Bundle
from pydantic import ValidationError

from transmissions.channels.mesh import itk3
from transmissions.channels.mesh.conformance import send_document as sd

PROFILES_DIR = Path(__file__).with_name("profiles")
FHIR = "{http://hl7.org/fhir}"


class SendDocumentInvalid(ValueError):
    """The message does not meet what it claims; ``problems`` says where."""

    error_class = "SendDocumentInvalid"

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems[:10]))
        self.problems = problems


@dataclass(frozen=True)
class Element:
    id: str
    min: int
    max: int | None  # None: unbounded
    fixed: Any = None
    slice_urls: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Profile:
    url: str
    type: str
    elements: tuple[Element, ...]


def _value(node: ET.Element | None) -> str | None:
    return None if node is None else node.get("value")


@functools.cache
def profiles() -> dict[str, Profile]:
    """The vendored profiles by canonical url, read once."""
    found = {}
    for path in sorted(PROFILES_DIR.glob("*.xml")):
        root = ET.parse(path).getroot()  # noqa: S314 - our own vendored files
        url = _value(root.find(f"{FHIR}url"))
        kind = _value(root.find(f"{FHIR}type"))
        snapshot = root.find(f"{FHIR}snapshot")
        if not url or snapshot is None:
            continue
        raw = []
        for element in snapshot.findall(f"{FHIR}element"):
            fixed = None
            for child in element:
                if child.tag.startswith(f"{FHIR}fixed"):
                    fixed = child.get("value")
            maximum = _value(element.find(f"{FHIR}max")) or "*"
            raw.append(
                (
                    element.get("id") or _value(element.find(f"{FHIR}path")),
                    int(_value(element.find(f"{FHIR}min")) or 0),
                    None if maximum == "*" else int(maximum),
                    fixed,
                )
            )
        # A slice of ``extension`` is told apart by its fixed url.
        slice_urls = {
            element_id[: -len(".url")]: fixed
            for element_id, _, _, fixed in raw
            if element_id.endswith(".url") and fixed is not None and ":" in element_id
        }
        found[url] = Profile(
            url=url,
            type=kind or "",
            elements=tuple(
                Element(element_id, low, high, fixed, slice_urls)
                for element_id, low, high, fixed in raw
            ),
        )
    return found


def _children(node: Any, segment: str, prefix: str, slice_urls: dict) -> list | None:
    """The values of one path segment under ``node``; None when the segment is a
    slice we cannot tell apart (its rules are not checked)."""
    if not isinstance(node, dict):
        return []
    name, _, slice_name = segment.partition(":")
    if name.endswith("[x]"):
        stem = name[:-3]
        values = [v for k, v in node.items() if k.startswith(stem) and k != stem]
    else:
        values = node.get(name)
        values = (
            [] if values is None else values if isinstance(values, list) else [values]
        )
    if not slice_name:
        return values
    if name in ("extension", "modifierExtension"):
        url = slice_urls.get(f"{prefix}.{segment}" if prefix else segment)
        if url is None:
            return None
        return [v for v in values if isinstance(v, dict) and v.get("url") == url]
    if name.startswith("value") and slice_name == name:
        return values  # valueBoolean:valueBoolean, the type slice of value[x]
    return None


def _select(resource: dict, segments: list[str], slice_urls: dict) -> list | None:
    nodes = [resource]
    prefix = segments[0]
    for segment in segments[1:]:
        following = []
        for node in nodes:
            values = _children(node, segment, prefix, slice_urls)
            if values is None:
                return None
            following.extend(values)
        nodes = following
        prefix = f"{prefix}.{segment}"
    return nodes


def profile_problems(resource: dict, profile: Profile, where: str) -> list[str]:
    """What in ``resource`` breaks the cardinalities and fixed values of
    ``profile`` (element ids, never values)."""
    problems = []
    for element in profile.elements:
        segments = element.id.split(".")
        if len(segments) < 2:
            continue
        parents = _select(resource, segments[:-1], element.slice_urls)
        if parents is None:
            continue
        for parent in parents:
            values = _children(
                parent, segments[-1], ".".join(segments[:-1]), element.slice_urls
            )
            if values is None:
                break
            count = len(values)
            if count < element.min:
                problems.append(f"{where}: {element.id} min {element.min}, has {count}")
            if element.max is not None and count > element.max:
                problems.append(f"{where}: {element.id} max {element.max}, has {count}")
            if element.fixed is not None:
                for value in values:
                    if (
                        not isinstance(value, dict | list)
                        and str(value).lower() != str(element.fixed).lower()
                    ):
                        problems.append(f"{where}: {element.id} is not its fixed value")
    return problems


def _claimed(resource: dict) -> list[str]:
    return list((resource.get("meta") or {}).get("profile") or [])


def _walk(resource: dict, where: str, problems: list[str]) -> None:
    for url in _claimed(resource):
        profile = profiles().get(url)
        if profile is not None:
            problems.extend(profile_problems(resource, profile, where))
    for extension in resource.get("extension") or []:
        # An extension is checked against its own definition, found by its url.
        definition = profiles().get(extension.get("url"))
        if definition is not None and definition.type == "Extension":
            problems.extend(
                profile_problems(extension, definition, f"{where}.extension")
            )
    if resource.get("resourceType") == "Bundle":
        for n, entry in enumerate(resource.get("entry") or []):
            inner = entry.get("resource") or {}
            _walk(inner, f"{where}.entry[{n}]({inner.get('resourceType')})", problems)


def _by_full_url(bundle: dict) -> dict[str, dict]:
    return {
        entry.get("fullUrl"): entry.get("resource") or {}
        for entry in bundle.get("entry") or []
    }


def _send_document_problems(message: dict) -> list[str]:
    problems: list[str] = []
    entries = message.get("entry") or []
    if not entries or entries[0].get("resource", {}).get("resourceType") != (
        "MessageHeader"
    ):
        return ["the message's first entry is not its MessageHeader"]
    header = entries[0]["resource"]
    if header.get("id") != (message.get("identifier") or {}).get("value"):
        problems.append("the message Bundle's identifier is not its MessageHeader id")
    in_message = _by_full_url(message)
    focus = [in_message.get(ref.get("reference")) for ref in header.get("focus") or []]
    documents = [
        r
        for r in focus
        if r and r.get("resourceType") == "Bundle" and r.get("type") == "document"
    ]
    if len(documents) != 1 or sd.PROFILE_DOCUMENT_BUNDLE not in _claimed(documents[0]):
        return [*problems, "MessageHeader.focus is not one ITK Document Bundle"]
    sender = in_message.get((header.get("sender") or {}).get("reference"))
    if not sender or sender.get("resourceType") != "Organization":
        problems.append("MessageHeader.sender is not an Organization in the message")
    document = documents[0]
    if not (document.get("meta") or {}).get("versionId"):
        problems.append("the Document Bundle's meta has no version")
    resources = _by_full_url(document)
    items = [entry.get("resource") or {} for entry in document.get("entry") or []]
    kinds = [item.get("resourceType") for item in items]
    if not items or kinds[0] != "Composition" or kinds.count("Composition") != 1:
        return [
            *problems,
            "the Document Bundle does not start with its one Composition",
        ]
    composition = items[0]
    if composition.get("confidentiality") == "R":
        problems.append("Composition.confidentiality R: receivers reject it (20009)")
    codings = (composition.get("type") or {}).get("coding") or []
    if not any(c.get("system") == sd.SNOMED and c.get("code") for c in codings):
        problems.append("Composition.type has no SNOMED CT code")
    custodian = resources.get((composition.get("custodian") or {}).get("reference"))
    if (
        not custodian
        or custodian.get("resourceType") != "Organization"
        or not any(
            i.get("system") == itk3.ODS_SYSTEM and i.get("value")
            for i in custodian.get("identifier") or []
        )
    ):
        problems.append("Composition.custodian is not an Organization with an ODS code")
    subject = resources.get((composition.get("subject") or {}).get("reference"))
    if (
        not subject
        or subject.get("resourceType") != "Patient"
        or not any(
            i.get("system") == itk3.NHS_NUMBER_SYSTEM and i.get("value")
            for i in subject.get("identifier") or []
        )
    ):
        problems.append("Composition.subject is not a Patient with an NHS number")
    for author in composition.get("author") or []:
        if author.get("reference") not in resources:
            problems.append("a Composition.author is not in the Document Bundle")
    references = [
        item for item in items if item.get("resourceType") == "DocumentReference"
    ]
    if not references:
        problems.append("the Document Bundle has no DocumentReference")
    for reference in references:
        for content in reference.get("content") or []:
            attachment = content.get("attachment") or {}
            binary = resources.get(attachment.get("url"))
            if not binary or binary.get("resourceType") != "Binary":
                problems.append("a DocumentReference's attachment is not a Binary here")
                continue
            data = base64.b64decode(binary.get("content") or "")
            if attachment.get("hash") != base64.b64encode(
                hashlib.sha1(data).digest()  # noqa: S324 - STU3 Attachment.hash
            ).decode("ascii"):
                problems.append("a DocumentReference's hash does not match its Binary")
            if attachment.get("size") != len(data):
                problems.append("a DocumentReference's size does not match its Binary")
            if attachment.get("contentType") != binary.get("contentType"):
                problems.append(
                    "a DocumentReference's content type is not its Binary's"
                )
    return problems


def send_document_problems(content: bytes) -> list[str]:
    """Everything wrong with one outgoing message; empty when it may go."""
    try:
        Bundle.model_validate_json(content)
    except ValidationError as exc:
        # Locations only: pydantic's own message quotes the values.
        return [
            "FHIR STU3: " + ".".join(str(p) for p in error["loc"]) + f" {error['type']}"
            for error in exc.errors()
        ]
    message = json.loads(content)
    problems: list[str] = []
    _walk(message, "Bundle", problems)
    problems.extend(_send_document_problems(message))
    return problems


def send_document_validate(content: bytes) -> bytes:
    """Return the message unchanged, or raise ``SendDocumentInvalid``."""
    problems = send_document_problems(content)
    if problems:
        raise SendDocumentInvalid(problems)
    return content
