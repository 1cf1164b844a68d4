"""The transmissions app."""

from django.apps import AppConfig


class TransmissionsConfig(AppConfig):
    name = "transmissions"
    verbose_name = "Transmissions"

    def ready(self) -> None:
        # casework asks for patients' practices through a hook (it never imports
        # transmissions): PDS answers it.
        from casework.patient_lookup import patient_lookup_register
        from transmissions.pds.lookup import pds_patient_lookup

        patient_lookup_register(pds_patient_lookup)
