"""FHIR R4 intake: UK Core DocumentReference in, ending in ``document_submit``."""
