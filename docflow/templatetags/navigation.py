"""Which header link names the page shown: "page" on the page a link opens, "true"
on a page within its section (aria-current), "" elsewhere."""

from __future__ import annotations

from django import template

register = template.Library()


@register.simple_tag(takes_context=True)
def header_current(context, section: str) -> str:
    """aria-current for the header link of one section of the staff pages."""
    request = context.get("request")
    match = getattr(request, "resolver_match", None)
    if match is None:
        return ""
    view, namespace = match.view_name, match.namespace
    mine = request.GET.get("scope") == "mine"
    if section == "queue":
        if view == "casework:queue":
            return "" if mine else "page"
        return "true" if namespace == "casework" else ""
    if section == "mine":
        return "page" if view == "casework:queue" and mine else ""
    if section == "documents":
        if view == "staff-home":
            return "page"
        return "true" if view == "staff-document" else ""
    if section == "operations":
        if view == "operations:dashboard":
            return "page"
        return "true" if namespace == "operations" else ""
    return ""
