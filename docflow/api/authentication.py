"""API key authentication: ``Authorization: Api-Key <prefix>.<secret>``."""

from __future__ import annotations

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions

from docflow.models import ApiKey

KEYWORD = "Api-Key"


class ApiKeyAuthentication(authentication.BaseAuthentication):
    """Authenticates a source system; ``request.auth`` is its ApiKey.

    The key is looked up by its public prefix and checked against its hash; revoked
    or expired keys, inactive service accounts and inactive organisations are refused.
    """

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode(
            "latin-1", errors="replace"
        )
        scheme, _, raw_key = header.partition(" ")
        if scheme != KEYWORD:
            return None
        raw_key = raw_key.strip()
        if not raw_key:
            raise exceptions.AuthenticationFailed("Missing API key.")
        try:
            api_key = ApiKey.objects.select_related("user", "sending_organisation").get(
                prefix=raw_key.partition(".")[0], revoked=False
            )
        except ApiKey.DoesNotExist as exc:
            raise exceptions.AuthenticationFailed("Invalid API key.") from exc
        if (
            api_key.has_expired
            or not api_key.is_valid(raw_key)
            or not api_key.user.is_active
            or not api_key.sending_organisation.is_active
        ):
            raise exceptions.AuthenticationFailed("Invalid API key.")
        return api_key.user, api_key

    def authenticate_header(self, request) -> str:
        return KEYWORD


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "docflow.api.authentication.ApiKeyAuthentication"
    name = "ApiKeyAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "`Api-Key <prefix>.<secret>`",
        }
