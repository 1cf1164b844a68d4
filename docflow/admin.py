"""Admin for reference data and read-only document views. Status never edited here."""

from __future__ import annotations

from django.contrib import admin
from guardian.admin import GuardedModelAdmin
from rest_framework_api_key.admin import APIKeyModelAdmin
from simple_history.admin import SimpleHistoryAdmin

from docflow.models import (
    ApiKey,
    DestinationProfile,
    Document,
    Organisation,
    PayloadVersion,
    SendingOrganisation,
)


@admin.register(SendingOrganisation)
class SendingOrganisationAdmin(GuardedModelAdmin):
    list_display = ["ods_code", "name", "is_active"]
    search_fields = ["ods_code", "name"]


@admin.register(Organisation)
class OrganisationAdmin(admin.ModelAdmin):
    list_display = ["ods_code", "name", "status", "endpoint_type", "last_verified_at"]
    list_filter = ["status", "endpoint_type", "source"]
    search_fields = ["ods_code", "name"]
    show_full_result_count = False


@admin.register(DestinationProfile)
class DestinationProfileAdmin(admin.ModelAdmin):
    list_display = [
        "endpoint_type",
        "name",
        "channel",
        "max_file_size_bytes",
        "reports_accepted",
    ]


@admin.register(ApiKey)
class ApiKeyAdmin(APIKeyModelAdmin):
    list_display = [*APIKeyModelAdmin.list_display, "sending_organisation"]
    list_select_related = ["sending_organisation"]
    raw_id_fields = ["user"]


class PayloadVersionInline(admin.TabularInline):
    model = PayloadVersion
    fields = [
        "public_id",
        "stage",
        "media_type",
        "size_bytes",
        "sha256",
        "key_id",
        "created_at",
    ]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Document)
class DocumentAdmin(SimpleHistoryAdmin):
    """Metadata only; content access goes through the logged content view."""

    list_display = [
        "public_id",
        "sending_organisation",
        "destination_ods_code",
        "document_type",
        "status",
        "created_at",
    ]
    list_filter = ["status", "document_type", "sending_organisation"]
    list_select_related = ["sending_organisation"]
    search_fields = ["=public_id", "=destination_ods_code", "=source_reference"]
    show_full_result_count = False
    inlines = [PayloadVersionInline]
    exclude = [
        "nhs_number",
        "patient_family_name",
        "patient_given_names",
        "patient_birth_date",
        "patient_gender",
        "mrn",
    ]

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in Document._meta.fields if f.name not in self.exclude]

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
