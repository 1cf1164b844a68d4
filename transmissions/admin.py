from django.contrib import admin

from transmissions.models import Transmission


@admin.register(Transmission)
class TransmissionAdmin(admin.ModelAdmin):
    list_display = [
        "public_id",
        "channel",
        "destination_ods_code",
        "status_code",
        "attempts",
    ]
    list_filter = ["channel", "status_code"]
    readonly_fields = [f.name for f in Transmission._meta.fields]
    show_full_result_count = False

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
