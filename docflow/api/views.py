"""Document API: parse, call a selector or service, render."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpResponsePermanentRedirect
from django.urls import resolve
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import NotAcceptable
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.pagination import CursorPagination
from rest_framework.parsers import MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from audit.models import AccessChannel
from docflow.api.examples import IDEMPOTENCY_KEY_EXAMPLES, INTAKE_EXAMPLES
from docflow.api.parsers import BoundedJSONParser
from docflow.api.problems import (
    PROBLEM_CONTENT_TYPE,
    flatten_errors,
    problem_http_response,
    problem_response,
)
from docflow.api.serializers import (
    ContentQuerySerializer,
    ContentTooLarge,
    DocumentDetailSerializer,
    DocumentJsonIntakeSerializer,
    DocumentListQuerySerializer,
    DocumentMultipartIntakeSerializer,
    DocumentPageSerializer,
    DocumentSummarySerializer,
    ProblemSerializer,
    new_document_detail,
)
from docflow.errors import ContentPurged
from docflow.models import Document
from docflow.payloads.content import (
    document_content_response,
    document_content_view,
    may_view_content,
)
from docflow.selectors import (
    DocumentFilters,
    document_get,
    document_list,
    document_timeline,
)
from docflow.services import (
    DocumentSubmission,
    IdempotencyConflict,
    IntakeBusy,
    IntakeRefused,
    document_submit,
)
from docflow.uploads.media import ACCEPTED_MEDIA_TYPES
from docflow.validation import idempotency_key_problems

PROBLEM = OpenApiResponse(ProblemSerializer, description="Problem details (RFC 9457)")


def _problems(*status_codes: int) -> dict:
    """Document error answers with the media type they are served with."""
    return {(code, PROBLEM_CONTENT_TYPE): PROBLEM for code in status_codes}


IDEMPOTENCY_KEY = OpenApiParameter(
    "Idempotency-Key",
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    required=True,
    description=(
        "Your event id for this document, 1 to 128 characters and never a patient "
        "identifier. A replay with the same key and the same document returns 200 "
        "and the original; the same key with a different document is 409."
    ),
    examples=IDEMPOTENCY_KEY_EXAMPLES,
)


class DocumentCursorPagination(CursorPagination):
    ordering = ("-created_at", "-id")
    page_size = 50
    max_page_size = 200
    page_size_query_param = "page_size"


def _too_large() -> Response:
    return problem_response(
        status_code=413,
        title="Request too large",
        detail=f"Document content is over {settings.DOCFLOW_MAX_UPLOAD_BYTES} bytes.",
        kind="too-large",
    )


def _api_key(request):
    return (
        request.auth if getattr(request.auth, "sending_organisation_id", None) else None
    )


class DocumentCollectionView(APIView):
    parser_classes = [BoundedJSONParser, MultiPartParser]

    @extend_schema(
        operation_id="documents_list",
        parameters=[DocumentListQuerySerializer],
        responses={
            200: DocumentPageSerializer,
            **_problems(400, 401, 404, 429),
        },
    )
    def get(self, request):
        """List visible documents, newest first (cursor pagination)."""
        query = DocumentListQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        params = query.validated_data
        queryset = document_list(
            user=request.user,
            api_key=_api_key(request),
            filters=DocumentFilters(
                status=params.get("status"),
                destination_ods_code=params.get("destination"),
                created_after=params.get("created_after"),
                created_before=params.get("created_before"),
                source_reference=params.get("source_reference"),
            ),
        )
        paginator = DocumentCursorPagination()
        page = paginator.paginate_queryset(queryset, request, view=self)
        return paginator.get_paginated_response(
            DocumentSummarySerializer(page, many=True).data
        )

    @extend_schema(
        operation_id="documents_create",
        parameters=[IDEMPOTENCY_KEY],
        examples=INTAKE_EXAMPLES,
        request={
            "application/json": DocumentJsonIntakeSerializer,
            "multipart/form-data": DocumentMultipartIntakeSerializer,
        },
        responses={
            201: DocumentDetailSerializer,
            200: OpenApiResponse(DocumentDetailSerializer, description="Replay"),
            **_problems(400, 401, 403, 406, 409, 411, 413, 415, 429, 503),
        },
    )
    def post(self, request):
        """Submit a document (multipart file, or JSON with base64 content)."""
        api_key = _api_key(request)
        if api_key is None:
            return problem_response(
                status_code=403,
                title="Forbidden",
                detail="Only API clients of a sending organisation can submit.",
            )
        serializer_class = (
            DocumentMultipartIntakeSerializer
            if request.content_type.startswith("multipart/")
            else DocumentJsonIntakeSerializer
        )
        serializer = serializer_class(data=request.data)
        try:
            valid = serializer.is_valid()
        except ContentTooLarge:
            return _too_large()
        key = request.headers.get("Idempotency-Key", "").strip()
        errors = [] if valid else flatten_errors(serializer.errors)
        errors.extend(
            {"field": "Idempotency-Key", "code": code, "detail": message}
            for code, message in idempotency_key_problems(key)
        )
        if errors:
            return problem_response(
                status_code=400,
                title="Validation failed",
                detail="One or more fields are invalid.",
                kind="validation",
                errors=errors,
            )
        data = dict(serializer.validated_data)
        file_name = data.pop("file_name", "")
        submission = DocumentSubmission(
            declared_extension=file_name.rpartition(".")[2] if "." in file_name else "",
            vetted_content=getattr(serializer, "vetted_content", None),
            **data,
        )
        try:
            submitted = document_submit(
                sending_organisation=api_key.sending_organisation,
                source_system=f"api:{api_key.prefix}",
                idempotency_key=key,
                submission=submission,
                actor=api_key,
            )
        except IntakeRefused as refused:
            return problem_response(
                status_code=400,
                title="Validation failed",
                detail="One or more fields are invalid.",
                kind="validation",
                errors=[
                    {
                        "field": (
                            "Idempotency-Key" if name == "idempotency_key" else name
                        ),
                        "code": code,
                        "detail": message,
                    }
                    for name, problems in refused.errors.items()
                    for code, message in problems
                ],
            )
        except IdempotencyConflict as conflict:
            return problem_response(
                status_code=409,
                title="Idempotency key reused",
                detail=str(conflict),
                kind="idempotency-conflict",
            )
        except IntakeBusy as busy:
            return problem_response(
                status_code=503,
                title="Busy",
                detail=(
                    "Nothing was stored: the preparation backlog is full. Send again "
                    "with the same Idempotency-Key after Retry-After seconds."
                ),
                kind="intake-busy",
                headers={"Retry-After": str(busy.retry_after)},
            )
        document, created = submitted
        if created:
            # Answer with the rows this request has just written, not a re-read.
            body = new_document_detail(
                document=document,
                payload_version=submitted.payload_version,
                audit_event=submitted.audit_event,
            )
        else:
            document = document_get(
                user=request.user, api_key=api_key, public_id=document.public_id
            )
            body = DocumentDetailSerializer(
                document, context={"timeline": document_timeline(document=document)}
            ).data
        response = Response(body, status=status.HTTP_201_CREATED if created else 200)
        response["Location"] = f"/api/v1/documents/{document.public_id}"
        return response


class DocumentDetailView(APIView):
    @extend_schema(
        operation_id="documents_retrieve",
        responses={200: DocumentDetailSerializer, **_problems(401, 404, 429)},
    )
    def get(self, request, public_id):
        """Status, destination, timeline and transmissions; never patient content."""
        try:
            document = document_get(
                user=request.user, api_key=_api_key(request), public_id=public_id
            )
        except Document.DoesNotExist:
            return problem_response(status_code=404, title="Not found")
        return Response(
            DocumentDetailSerializer(
                document, context={"timeline": document_timeline(document=document)}
            ).data
        )


class PayloadContentNegotiation(DefaultContentNegotiation):
    """Bytes go out in their own media type whatever Accept says; errors stay JSON."""

    def select_renderer(self, request, renderers, format_suffix=None):
        try:
            return super().select_renderer(request, renderers, format_suffix)
        except NotAcceptable:
            return renderers[0], renderers[0].media_type


class DocumentContentView(APIView):
    content_negotiation_class = PayloadContentNegotiation

    @extend_schema(
        operation_id="documents_content",
        request=ContentQuerySerializer,
        responses={
            **{
                (200, media_type): OpenApiResponse(
                    OpenApiTypes.BINARY, description="The document bytes"
                )
                for media_type in ACCEPTED_MEDIA_TYPES
            },
            **_problems(400, 401, 403, 404, 429),
        },
    )
    def post(self, request, public_id):
        """The current bytes: needs content permission and a reason, sent in the
        request body (never the URL, which web servers log); logged."""
        api_key = _api_key(request)
        try:
            document = document_get(
                user=request.user, api_key=api_key, public_id=public_id
            )
        except Document.DoesNotExist:
            return problem_response(status_code=404, title="Not found")
        if not may_view_content(request.user):
            return problem_response(
                status_code=403,
                title="Forbidden",
                detail="You do not have permission to view patient content.",
            )
        query = ContentQuerySerializer(data=request.data)
        query.is_valid(raise_exception=True)
        try:
            viewed = document_content_view(
                document=document,
                user=request.user,
                actor=api_key or request.user,
                channel=AccessChannel.API,
                action="download",
                reason=query.validated_data["reason"],
            )
        except ContentPurged:
            return problem_response(
                status_code=404,
                title="Not found",
                detail="The content has been purged.",
            )
        return document_content_response(viewed, disposition="attachment")


@csrf_exempt
def api_not_found(request, unmatched: str = ""):
    """Any other path under the API: a problem+json 404, never Django's HTML page."""
    if settings.APPEND_SLASH and not request.path_info.endswith("/"):
        # Keep CommonMiddleware's behaviour for e.g. /api/v1/docs -> /api/v1/docs/.
        match = resolve(request.path_info + "/")
        if match.func is not api_not_found:
            return HttpResponsePermanentRedirect(
                request.get_full_path(force_append_slash=True)
            )
    return problem_http_response(status_code=404, title="Not found")
