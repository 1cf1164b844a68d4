"""Rate limits at the door: per API key and per source (sending organisation).

DRF's SimpleRateThrottle on Django's default cache (Redis when REDIS_URL is set,
so every web node counts against the same window). Rates are read from settings on
each request (``"600/min"``; empty: no limit). A refused request answers 429 with
``Retry-After`` (problem+json on the REST API, an OperationOutcome on FHIR). Staff
sessions and anonymous requests are not limited here (sign-in has django-axes).
"""

from __future__ import annotations

from django.conf import settings
from rest_framework.throttling import SimpleRateThrottle


def _api_key(request):
    auth = getattr(request, "auth", None)
    return auth if getattr(auth, "sending_organisation_id", None) else None


class _SettingRateThrottle(SimpleRateThrottle):
    setting_name = ""

    def __init__(self) -> None:
        # The rate is read when the request is checked (get_rate), not here.
        pass

    def get_rate(self) -> str | None:
        return getattr(settings, self.setting_name, "") or None

    def allow_request(self, request, view) -> bool:
        self.rate = self.get_rate()
        self.num_requests, self.duration = self.parse_rate(self.rate)
        return super().allow_request(request, view)


class ApiKeyRateThrottle(_SettingRateThrottle):
    """``DOCFLOW_API_RATE_PER_KEY`` requests per window for each API key."""

    scope = "api_key"
    setting_name = "DOCFLOW_API_RATE_PER_KEY"

    def get_cache_key(self, request, view) -> str | None:
        api_key = _api_key(request)
        if api_key is None:
            return None
        return self.cache_format % {"scope": self.scope, "ident": api_key.prefix}


class SourceRateThrottle(_SettingRateThrottle):
    """``DOCFLOW_API_RATE_PER_SOURCE`` requests per window for all the API keys of
    one sending organisation together."""

    scope = "api_source"
    setting_name = "DOCFLOW_API_RATE_PER_SOURCE"

    def get_cache_key(self, request, view) -> str | None:
        api_key = _api_key(request)
        if api_key is None:
            return None
        return self.cache_format % {
            "scope": self.scope,
            "ident": api_key.sending_organisation_id,
        }
