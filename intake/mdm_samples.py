"""MDM messages as an integration engine would send them: for the demo, the bench
and the tests (fictitious patients, NHS numbers from the never-issued 999 range)."""

from __future__ import annotations

import base64
import datetime

from docflow.sample_pdf import text_pdf


def mdm_message(
    *,
    trigger: str = "T02",
    unique_id: str,
    content: bytes | None = None,
    facility: str = "RX1",
    application: str = "EPR",
    control_id: str = "",
    nhs_number: str = "9990000018",
    family_name: str = "Testpatient",
    given_name: str = "Alex",
    birth_date: str = "19500301",
    gender: str = "F",
    practice: str = "A81001",
    document_type: str = "823701000000103^Discharge letter^SCT",
    event_time: str = "20260110093000",
    author: str = "C1234567^Example^Jo^^^Dr",
    department: str = "^Respiratory medicine",
    parent_id: str = "",
    obx: str | None = None,
) -> str:
    """One MDM message (ER7, segments ending in CR)."""
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%d%H%M%S")
    data = base64.b64encode(content if content is not None else text_pdf(["Letter"]))
    segments = [
        f"MSH|^~\\&|{application}|{facility}|DOCFLOW|DOCFLOW|{stamp}||"
        f"MDM^{trigger}^MDM_{trigger}|{control_id or unique_id}|P|2.4",
        f"EVN|{trigger}|{stamp}",
        f"PID|1||633^^^R0A^MR~{nhs_number}^^^NHS^NH||{family_name}^{given_name}||"
        f"{birth_date}|{gender}",
        f"PD1|||Practice^^{practice}",
        f"PV1|1|O||||||||{department}",
        f"TXA|1|{document_type}|AP||{event_time}|{event_time}|||{author}|||"
        f"{unique_id}|{parent_id}||||AU",
    ]
    if trigger not in ("T03", "T11"):
        segments.append(
            obx
            if obx is not None
            else "OBX|1|ED|DOC^Document||^application^pdf^Base64^"
            f"{data.decode()}||||||F"
        )
    return "\r".join(segments) + "\r"
