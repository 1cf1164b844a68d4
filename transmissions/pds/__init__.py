"""NHS England's Personal Demographics Service (PDS FHIR R4): the client docflow
uses to re-trace a patient (``GET /Patient/{id}`` only) and a simulator serving
the same part of the published specification (``pds-api.yaml``)."""
