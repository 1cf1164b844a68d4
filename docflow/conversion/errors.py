"""What conversion can refuse, and the page count every PDF is held to."""

from __future__ import annotations

# The most pages a document may have at all (a profile may set fewer).
MAX_PLAUSIBLE_PAGES = 2000


class ConversionFailed(Exception):
    """The content cannot be made into an acceptable PDF; ``code`` says why."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class PageLimitExceeded(ConversionFailed):
    """Rendering passed the page limit; raised while rendering, not after."""

    def __init__(self, max_pages: int, *, reached: int | None = None) -> None:
        super().__init__("page_limit", f"The content runs past {max_pages} pages.")
        self.max_pages = max_pages
        # The page being laid out when rendering stopped (max_pages + 1 when the
        # limit was enforced during layout).
        self.reached = reached
