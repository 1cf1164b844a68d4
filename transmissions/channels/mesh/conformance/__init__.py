"""MESH as NHS England specifies it: the GP Connect Send Document message (built
from FHIR STU3 models and checked against the ITK3 and CareConnect profiles it
claims), both ITK3 acknowledgements and a deadline for them, answers applied only
from the mailbox the document went to, a quarantine for every answer that changes
nothing, and the onboarding witness test."""
