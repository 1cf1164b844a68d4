"""FHIR R4 interface: parse, call a selector or service, render; errors are
OperationOutcomes. Authentication, permissions and throttles are the REST API's."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.http import Http404
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions, renderers
from rest_framework.permissions import AllowAny
from rest_framework.views import APIView

from docflow.api.fhir.intake import (
    ROOT,
    DocumentReferenceRefused,
    document_reference_intake,
)
from docflow.api.fhir.media import (
    FhirJsonParser,
    FhirJsonRenderer,
    fhir_json_response,
)
from docflow.api.fhir.outcomes import Issue, outcome_response
from docflow.api.fhir.resources import (
    capability_statement_body,
    document_reference_body,
    document_reference_location,
)
from docflow.api.parsers import BoundedJSONParser, JsonBodyRefused
from docflow.corrections import CorrectionRefused, document_replacement_submit
from docflow.models import Document
from docflow.selectors import (
    document_current_payload,
    document_get,
    document_get_by_source_key,
)
from docflow.services import (
    IdempotencyConflict,
    IntakeBusy,
    IntakeRefused,
    document_submit,
)

SOURCE_SYSTEM_PREFIX = "fhir:"
_KEPT_HEADERS = ("WWW-Authenticate", "Retry-After", "Allow")


def fhir_exception_handler(exc, context):
    """The REST API's refusals (401, 403, 406, 415, 429...) as OperationOutcomes."""
    headers: dict[str, str] = {}
    if isinstance(exc, RequestDataTooBig):
        return outcome_response(
            status_code=413,
            issues=[Issue("", "too_large", "The request body is over the ceiling.")],
        )
    if isinstance(exc, SuspiciousOperation):
        return outcome_response(
            status_code=400,
            issues=[Issue("", "malformed_request", "The request is malformed.")],
        )
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    if not isinstance(exc, exceptions.APIException):
        return None
    auth_header = getattr(exc, "auth_header", None)
    if auth_header:
        headers["WWW-Authenticate"] = auth_header
    wait = getattr(exc, "wait", None)
    if wait is not None:
        headers["Retry-After"] = str(int(wait))
    if isinstance(exc, exceptions.ParseError):
        # Our own JSON refusals say why without quoting; other parsers' may quote.
        detail = (
            str(exc.detail)
            if isinstance(exc, JsonBodyRefused)
            else "The request body could not be parsed."
        )
        issue = Issue("", "structure", detail)
    elif isinstance(exc, exceptions.UnsupportedMediaType):
        issue = Issue(
            "", "unsupported_media_type", "Send application/fhir+json or JSON."
        )
    else:
        code = exc.get_codes()
        issue = Issue(
            "",
            code if isinstance(code, str) else exc.default_code,
            str(exc.detail) if isinstance(exc.detail, str) else exc.default_detail,
        )
    return outcome_response(
        status_code=exc.status_code, issues=[issue], headers=headers
    )


class FhirView(APIView):
    """Answers ``application/fhir+json`` (or JSON), errors as OperationOutcome."""

    parser_classes = [FhirJsonParser, BoundedJSONParser]
    renderer_classes = [FhirJsonRenderer, renderers.JSONRenderer]
    # Not in the OpenAPI schema: FHIR describes itself (GET /fhir/R4/metadata) and
    # its resources are HL7's, not serializers drf-spectacular could describe.
    schema = None

    def get_exception_handler(self):
        return fhir_exception_handler


def _api_key(request):
    return (
        request.auth if getattr(request.auth, "sending_organisation_id", None) else None
    )


def _not_found() -> object:
    return outcome_response(
        status_code=404,
        issues=[Issue("", "not_found", "No such resource.")],
    )


class DocumentReferenceCreateView(FhirView):
    def post(self, request):
        """Submit a document as a UK Core DocumentReference; 201 and its Location."""
        api_key = _api_key(request)
        if api_key is None:
            return outcome_response(
                status_code=403,
                issues=[
                    Issue(
                        "",
                        "forbidden",
                        "Only API clients of a sending organisation can submit.",
                    )
                ],
            )
        try:
            intake = document_reference_intake(
                request.data, max_bytes=settings.DOCFLOW_MAX_UPLOAD_BYTES
            )
        except DocumentReferenceRefused as refused:
            return outcome_response(
                status_code=refused.status_code, issues=refused.issues
            )
        organisation = api_key.sending_organisation
        if intake.custodian_ods_code != organisation.ods_code.upper():
            return outcome_response(
                status_code=403,
                issues=[
                    Issue(
                        f"{ROOT}.custodian.identifier.value",
                        "forbidden",
                        "This API key submits only for its own sending organisation.",
                    )
                ],
            )
        source_system = f"{SOURCE_SYSTEM_PREFIX}{api_key.prefix}"
        replaced = None
        if intake.replaces is not None:
            try:
                if intake.replaces.public_id is not None:
                    replaced = document_get(
                        user=request.user,
                        api_key=api_key,
                        public_id=intake.replaces.public_id,
                    )
                else:
                    replaced = document_get_by_source_key(
                        user=request.user,
                        api_key=api_key,
                        source_system=source_system,
                        idempotency_key=intake.replaces.master_identifier,
                    )
            except Document.DoesNotExist:
                return outcome_response(
                    status_code=400,
                    issues=[
                        Issue(
                            intake.replaces.expression,
                            "not_found",
                            "No document of yours has this id.",
                        )
                    ],
                )
        try:
            if replaced is not None:
                submitted = document_replacement_submit(
                    replaced=replaced,
                    sending_organisation=organisation,
                    source_system=source_system,
                    idempotency_key=intake.idempotency_key,
                    submission=intake.submission,
                    actor=api_key,
                )
            else:
                submitted = document_submit(
                    sending_organisation=organisation,
                    source_system=source_system,
                    idempotency_key=intake.idempotency_key,
                    submission=intake.submission,
                    actor=api_key,
                )
        except IntakeRefused as refused:
            return outcome_response(
                status_code=400,
                issues=[
                    Issue(
                        intake.expression_for(name),
                        code,
                        message,
                    )
                    for name, problems in refused.errors.items()
                    for code, message in problems
                ],
            )
        except IdempotencyConflict:
            return outcome_response(
                status_code=409,
                issues=[
                    Issue(
                        f"{ROOT}.masterIdentifier.value",
                        "idempotency_conflict",
                        "This masterIdentifier was already used for a different "
                        "document.",
                    )
                ],
            )
        except IntakeBusy as busy:
            return outcome_response(
                status_code=503,
                issues=[
                    Issue(
                        "",
                        "intake_busy",
                        "Nothing was stored: the preparation backlog is full. Send "
                        "again with the same masterIdentifier after Retry-After "
                        "seconds.",
                    )
                ],
                headers={"Retry-After": str(busy.retry_after)},
            )
        except CorrectionRefused as refused:
            assert intake.replaces is not None
            return outcome_response(
                status_code=400,
                issues=[
                    Issue(intake.replaces.expression, refused.code, refused.message)
                ],
            )
        document, created = submitted
        if created:
            payload = submitted.payload_version
            superseded = False
        else:
            payload = document_current_payload(document=document)
            superseded = document.replaced_by.exists()
        location = document_reference_location(document)
        return fhir_json_response(
            document_reference_body(
                document=document, payload=payload, superseded=superseded
            ),
            status_code=201 if created else 200,
            headers={"Location": request.build_absolute_uri(location)},
        )


class DocumentReferenceReadView(FhirView):
    def get(self, request, public_id):
        """The document's status as a DocumentReference; never patient details."""
        try:
            document = document_get(
                user=request.user, api_key=_api_key(request), public_id=public_id
            )
        except Document.DoesNotExist:
            return _not_found()
        return fhir_json_response(
            document_reference_body(
                document=document,
                payload=document_current_payload(document=document),
                superseded=document.replaced_by.exists(),
            )
        )


class CapabilityStatementView(FhirView):
    # What the server can do is public, as FHIR expects of /metadata.
    authentication_classes: list = []
    permission_classes = [AllowAny]

    def get(self, request):
        """This server's CapabilityStatement."""
        return fhir_json_response(
            capability_statement_body(software_version=_version())
        )


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("docflow")
    except PackageNotFoundError:
        return "0.1.0"


@csrf_exempt
def fhir_not_found(request, unmatched: str = ""):
    """Any other path under the FHIR base: an OperationOutcome 404."""
    return _not_found()
