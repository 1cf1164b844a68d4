"""docflow's demo data, collected with every app's by ``manage.py seed_demo``
(docflow.demo.context says how): organisations, accounts, documents, the summary."""

from docflow.demo.accounts import demo_api_keys_seed, demo_users_seed
from docflow.demo.documents import demo_documents_seed, demo_summary
from docflow.demo.organisations import (
    demo_destinations_seed,
    demo_sending_organisations_seed,
)

SEEDERS = [
    ("organisations", demo_sending_organisations_seed),
    ("organisations", demo_destinations_seed),
    ("accounts", demo_users_seed),
    ("accounts", demo_api_keys_seed),
    ("documents", demo_documents_seed),
    ("summary", demo_summary),
]
