"""Which of a page's bound forms have errors, for the shared error summary."""

from __future__ import annotations

from django import template

register = template.Library()


@register.filter
def with_errors(forms) -> list:
    """The forms of the list that are bound and have errors, in order."""
    return [form for form in forms or () if form.is_bound and form.errors]
