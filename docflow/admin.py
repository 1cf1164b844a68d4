"""Admin for reference data and read-only document views. Status never edited here."""

from __future__ import annotations

from django.contrib import admin
from django.contrib.admin.utils import unquote
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import GroupAdmin as DjangoGroupAdmin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.urls import reverse
from guardian.admin import GuardedModelAdmin
from rest_framework_api_key.admin import APIKeyModelAdmin
from simple_history.admin import SimpleHistoryAdmin

from audit.configuration_changes import ConfigurationChangeAuditMixin
from docflow.ig_roles import is_ig_officer
from docflow.models import (
    ApiKey,
    DestinationProfile,
    Document,
    Organisation,
    PayloadVersion,
    SendingOrganisation,
)
from docflow.selectors import service_accounts, visible_sending_organisation_ids

User = get_user_model()
# What makes an account more powerful: only superusers see or set these.
PRIVILEGE_FIELDS = ("is_superuser", "groups", "user_permissions")


class SendingOrganisationScopedMixin:
    """Admin rows of the sending organisations the user was granted (the selectors'
    rule); superusers see all. Another organisation's row is as missing as one that
    does not exist, and its organisation is not offered in forms."""

    # How the admin's model reaches its sending organisation.
    sending_organisation_lookup = "sending_organisation"

    def scope_to_visible_organisations(self, request, queryset):
        ids = visible_sending_organisation_ids(user=request.user)
        if ids is None:
            return queryset
        return queryset.filter(**{f"{self.sending_organisation_lookup}__in": ids})

    def get_queryset(self, request):
        return self.scope_to_visible_organisations(
            request, super().get_queryset(request)
        )

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == self.sending_organisation_lookup:
            ids = visible_sending_organisation_ids(user=request.user)
            if ids is not None:
                kwargs["queryset"] = SendingOrganisation.objects.filter(id__in=ids)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


class SendingOrganisationScopedHistoryMixin(SendingOrganisationScopedMixin):
    """The same scope for django-simple-history's views, which read the historical
    table directly (and fall back to it when the object itself is not found)."""

    def get_history_queryset(self, request, history_manager, pk_name, object_id):
        return self.scope_to_visible_organisations(
            request,
            super().get_history_queryset(request, history_manager, pk_name, object_id),
        )

    def history_form_view(self, request, object_id, version_id, extra_context=None):
        opts = self.model._meta
        history_manager = getattr(self.model, opts.simple_history_manager_attribute)
        versions = self.get_history_queryset(
            request, history_manager, opts.pk.attname, unquote(object_id)
        )
        if not versions.filter(history_id=version_id).exists():
            raise Http404
        return super().history_form_view(
            request, object_id, version_id, extra_context=extra_context
        )


admin.site.unregister(User)
admin.site.unregister(Group)


@admin.register(Group)
class GroupAdmin(ConfigurationChangeAuditMixin, DjangoGroupAdmin):
    """Groups and their permissions: every change audited."""


@admin.register(User)
class UserAdmin(ConfigurationChangeAuditMixin, DjangoUserAdmin):
    """Only superusers grant privileges. Everyone else with ``change_user`` never sees
    or sets superuser status or permissions, sees groups read-only, and cannot change
    a superuser's account (nor its password) at all."""

    def get_fieldsets(self, request, obj=None):
        fieldsets = super().get_fieldsets(request, obj)
        if request.user.is_superuser:
            return fieldsets
        hidden = {"is_superuser", "user_permissions"}
        return [
            (
                name,
                {
                    **options,
                    "fields": [f for f in options["fields"] if f not in hidden],
                },
            )
            for name, options in fieldsets
        ]

    def get_readonly_fields(self, request, obj=None):
        readonly = list(super().get_readonly_fields(request, obj))
        if not request.user.is_superuser:
            readonly += [f for f in PRIVILEGE_FIELDS if f not in readonly]
        return readonly

    def get_list_filter(self, request):
        list_filter = super().get_list_filter(request)
        if request.user.is_superuser:
            return list_filter
        return [f for f in list_filter if f not in PRIVILEGE_FIELDS]

    def has_change_permission(self, request, obj=None) -> bool:
        if obj is not None and obj.is_superuser and not request.user.is_superuser:
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None) -> bool:
        if obj is not None and obj.is_superuser and not request.user.is_superuser:
            return False
        return super().has_delete_permission(request, obj)


class ObjectPermissionsBySuperusersMixin:
    """django-guardian's "Object permissions" pages grant access to an organisation's
    documents or a team's items. Handing out access is for superusers only: anyone
    else who may change the object (a System admin) could grant it to themselves."""

    def _grants_refused(self, request) -> None:
        if not request.user.is_superuser:
            raise PermissionDenied

    def obj_perms_manage_view(self, request, object_pk):
        self._grants_refused(request)
        return super().obj_perms_manage_view(request, object_pk)

    def obj_perms_manage_user_view(self, request, object_pk, user_id):
        self._grants_refused(request)
        return super().obj_perms_manage_user_view(request, object_pk, user_id)

    def obj_perms_manage_group_view(self, request, object_pk, group_id):
        self._grants_refused(request)
        return super().obj_perms_manage_group_view(request, object_pk, group_id)


@admin.register(SendingOrganisation)
class SendingOrganisationAdmin(
    ConfigurationChangeAuditMixin, ObjectPermissionsBySuperusersMixin, GuardedModelAdmin
):
    list_display = ["ods_code", "name", "is_active"]
    search_fields = ["ods_code", "name"]


@admin.register(Organisation)
class OrganisationAdmin(ConfigurationChangeAuditMixin, admin.ModelAdmin):
    list_display = ["ods_code", "name", "status", "endpoint_type", "last_verified_at"]
    list_filter = ["status", "endpoint_type", "source"]
    search_fields = ["ods_code", "name"]
    show_full_result_count = False


@admin.register(DestinationProfile)
class DestinationProfileAdmin(ConfigurationChangeAuditMixin, admin.ModelAdmin):
    list_display = [
        "endpoint_type",
        "name",
        "channel",
        "max_file_size_bytes",
        "reports_accepted",
        "conversion_max_pages",
        "conversion_wall_seconds",
        "send_with_lost_content",
    ]


@admin.register(ApiKey)
class ApiKeyAdmin(
    ConfigurationChangeAuditMixin, SendingOrganisationScopedMixin, APIKeyModelAdmin
):
    """Keys of the granted organisations, each bound to a service account only: the
    form offers and accepts no other user (a key carries its user's permissions)."""

    list_display = [*APIKeyModelAdmin.list_display, "sending_organisation"]
    list_select_related = ["sending_organisation"]

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "user":
            kwargs["queryset"] = service_accounts()
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


class PayloadVersionInline(SendingOrganisationScopedMixin, admin.TabularInline):
    model = PayloadVersion
    template = "admin/docflow/document/payload_versions_inline.html"
    sending_organisation_lookup = "document__sending_organisation"
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
class DocumentAdmin(SendingOrganisationScopedHistoryMixin, SimpleHistoryAdmin):
    """Metadata only, of the granted organisations; content access goes through the
    logged content view."""

    list_display = [
        "public_id",
        "sending_organisation",
        "destination_ods_code",
        "document_type",
        "status",
        "created_at",
    ]
    list_filter = [
        "status",
        "document_type",
        # Offers only organisations of the rows shown, not every organisation.
        ("sending_organisation", admin.RelatedOnlyFieldListFilter),
    ]
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

    def has_change_permission(self, request, obj=None) -> bool:
        # Every field is read-only (superusers included): no Save to offer.
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def change_view(self, request, object_id, form_url="", extra_context=None):
        context = dict(extra_context or {})
        document = self.get_object(request, object_id)
        if document is not None and is_ig_officer(request.user):
            context["ig_timeline_url"] = reverse(
                "admin:audit_auditevent_timeline", args=[document.public_id]
            )
        return super().change_view(request, object_id, form_url, context)
