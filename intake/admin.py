"""Source systems and the document type table, edited in the admin; every save and
delete goes through an audited service."""

from __future__ import annotations

from django.contrib import admin

from intake.models import DocumentTypeMapping, SourceSystem
from intake.services import (
    document_type_mapping_delete,
    document_type_mapping_save,
    source_system_delete,
    source_system_save,
)


@admin.register(SourceSystem)
class SourceSystemAdmin(admin.ModelAdmin):
    list_display = (
        "code",
        "name",
        "channel",
        "sending_organisation",
        "sending_facility",
        "sending_application",
        "is_active",
    )
    list_filter = ("channel", "is_active", "sending_organisation")
    search_fields = ("code", "name", "sending_facility", "sending_application")
    fieldsets = (
        (None, {"fields": ("code", "name", "channel", "sending_organisation")}),
        ("Status", {"fields": ("is_active",)}),
        (
            "MLLP sender",
            {
                "fields": (
                    "sending_facility",
                    "sending_application",
                    "certificate_sha256",
                )
            },
        ),
        ("File drop", {"fields": ("drop_folder",)}),
        (
            "Field mapping",
            {
                "fields": (
                    "destination_rule",
                    "fixed_destination_ods_code",
                    "nhs_number_authority",
                    "mrn_identifier_type",
                )
            },
        ),
    )

    def save_model(self, request, obj, form, change):
        source_system_save(source_system=obj, actor=request.user)

    def delete_model(self, request, obj):
        source_system_delete(source_system=obj, actor=request.user)

    def delete_queryset(self, request, queryset):
        for obj in queryset:
            source_system_delete(source_system=obj, actor=request.user)


@admin.register(DocumentTypeMapping)
class DocumentTypeMappingAdmin(admin.ModelAdmin):
    list_display = ("text", "document_type", "source_system")
    list_filter = ("document_type", "source_system")
    search_fields = ("text",)

    def save_model(self, request, obj, form, change):
        document_type_mapping_save(mapping=obj, actor=request.user)

    def delete_model(self, request, obj):
        document_type_mapping_delete(mapping=obj, actor=request.user)

    def delete_queryset(self, request, queryset):
        for obj in queryset:
            document_type_mapping_delete(mapping=obj, actor=request.user)
