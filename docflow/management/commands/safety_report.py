"""Render the Clinical Safety Case Report draft (HTML and PDF) from the hazard log
and a pytest JUnit XML file."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from docflow.assurance.hazards import (
    HazardLogInvalid,
    hazard_log_load,
    hazard_log_path,
    suite_inventory,
)
from docflow.assurance.safety_case import (
    code_version,
    junit_results_read,
    safety_case_context,
    safety_case_html,
    safety_case_write,
)


class Command(BaseCommand):
    help = (
        "Write the clinical safety case report draft (HTML and PDF) from the hazard "
        "log and a test run: pytest --junitxml=var/junit.xml, then "
        "manage.py safety_report --junit var/junit.xml"
    )

    def add_arguments(self, parser):
        parser.add_argument("--junit", required=True, type=Path)
        parser.add_argument("--output-dir", type=Path, default=Path("var/safety"))
        parser.add_argument("--hazard-log", type=Path, default=None)

    def handle(self, *args, junit, output_dir, hazard_log, **options):
        from django.conf import settings

        if not junit.is_file():
            raise CommandError(f"No JUnit XML at {junit}: run pytest --junitxml first")
        try:
            log = hazard_log_load(hazard_log or hazard_log_path())
        except HazardLogInvalid as error:
            raise CommandError(str(error)) from error
        version = code_version()
        context = safety_case_context(
            log=log,
            run=junit_results_read(junit),
            inventory=suite_inventory(root=Path(settings.BASE_DIR)),
            version=version,
        )
        stem = f"clinical-safety-case-report-{context['generated_at']:%Y-%m-%d}"
        html_path, pdf_path = safety_case_write(
            html=safety_case_html(context), directory=output_dir, stem=stem
        )
        self.stdout.write(f"{html_path}\n{pdf_path}")
