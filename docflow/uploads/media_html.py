"""Cheap checks on HTML at intake, before anything renders it: size, element
count, nesting depth, table cells, and how many elements a forced page break
could apply to. Each bound is a setting; each refusal is a
:class:`~docflow.uploads.media.MediaRefused` with its own code, answered as problem+json
like every other refusal of the content.

One pass of the standard library's tokenizer (no tree is built) and tinycss2 for
the stylesheets, under the intake inspection's time limit: an honest letter costs
milliseconds and a hostile one no more than its size allows.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from dataclasses import dataclass
from html.parser import HTMLParser

import tinycss2

# Elements that never have content, and those whose end tag may be left out (the
# next one of their kind, or their parent's end, closes them).
_VOID = frozenset(
    [
        "area",
        "base",
        "br",
        "col",
        "embed",
        "hr",
        "img",
        "input",
        "link",
        "meta",
        "param",
        "source",
        "track",
        "wbr",
    ]
)
_SELF_CLOSING = frozenset(
    ["p", "li", "dt", "dd", "tr", "td", "th", "option", "thead", "tbody", "tfoot"]
)
_TABLE_CELLS = frozenset({"td", "th"})
_FORCED_BREAK = re.compile(
    r"(?:^|[;{\s])(?:page-)?break-(?:before|after)\s*:\s*"
    r"(?:page|left|right|recto|verso|always)\b",
    re.IGNORECASE,
)
_BREAK_PROPERTIES = frozenset(
    {"break-before", "break-after", "page-break-before", "page-break-after"}
)
_FORCING_VALUES = frozenset({"page", "left", "right", "recto", "verso", "always"})
_NESTING_AT_RULES = frozenset({"media", "supports", "layer", "container"})
_FEED_CHUNK = 64 * 1024


@dataclass(frozen=True)
class HtmlLimits:
    max_bytes: int
    max_elements: int
    max_depth: int
    max_table_cells: int
    max_page_breaks: int
    max_seconds: float


@dataclass(frozen=True)
class HtmlRefusal:
    code: str
    message: str


class _Tally(HTMLParser):
    """Counts elements (by tag, class and id), depth, cells and inline breaks, and
    collects stylesheet text; stops as soon as a bound is passed."""

    def __init__(self, limits: HtmlLimits) -> None:
        super().__init__(convert_charrefs=True)
        self.limits = limits
        self.elements = 0
        self.cells = 0
        self.inline_breaks = 0
        self.max_depth_seen = 0
        self.open: list[str] = []
        self.by_tag: Counter[str] = Counter()
        self.by_class: Counter[str] = Counter()
        self.by_id: Counter[str] = Counter()
        self.styles: list[str] = []
        self._in_style = False
        self.refusal: HtmlRefusal | None = None

    def handle_starttag(self, tag, attrs) -> None:
        self.elements += 1
        self.by_tag[tag] += 1
        for name, value in attrs:
            if name == "class" and value:
                for token in set(value.split()):
                    self.by_class[token] += 1
            elif name == "id" and value:
                self.by_id[value] += 1
            elif name == "style" and value and _FORCED_BREAK.search(value):
                self.inline_breaks += 1
        if tag in _TABLE_CELLS:
            self.cells += 1
        if tag == "style":
            self._in_style = True
        if tag in _VOID:
            return
        if tag in _SELF_CLOSING and tag in self.open[-4:]:
            # An unclosed <p>, <li> or <td> is closed by the next of its kind.
            del self.open[len(self.open) - 1 - self.open[::-1].index(tag) :]
        self.open.append(tag)
        self.max_depth_seen = max(self.max_depth_seen, len(self.open))

    def handle_startendtag(self, tag, attrs) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in _VOID and self.open and self.open[-1] == tag:
            self.open.pop()

    def handle_endtag(self, tag) -> None:
        if tag == "style":
            self._in_style = False
        if tag in self.open:
            del self.open[len(self.open) - 1 - self.open[::-1].index(tag) :]

    def handle_data(self, data) -> None:
        if self._in_style:
            self.styles.append(data)

    def check(self) -> HtmlRefusal | None:
        limits = self.limits
        if self.max_depth_seen > limits.max_depth:
            return HtmlRefusal(
                "html_too_deep",
                f"The HTML nests elements more than {limits.max_depth} deep.",
            )
        if self.cells > limits.max_table_cells:
            return HtmlRefusal(
                "html_too_many_table_cells",
                f"The HTML has more than {limits.max_table_cells} table cells.",
            )
        if self.elements > limits.max_elements:
            return HtmlRefusal(
                "html_too_many_elements",
                f"The HTML has more than {limits.max_elements} elements.",
            )
        return None


def _subject_count(selector: str, tally: _Tally) -> int:
    """At most how many elements one complex selector can match: those matching
    its last compound selector's type, class or id (whichever is rarest)."""
    subject = re.split(r"[\s>+~]+", selector.strip())[-1] if selector.strip() else ""
    subject = re.sub(r"::?[\w-]+(\([^)]*\))?", "", subject)  # pseudo-classes
    counts = [tally.elements]
    tag = re.match(r"^[A-Za-z][\w-]*", subject)
    if tag:
        counts.append(tally.by_tag.get(tag.group().lower(), 0))
    counts += [
        tally.by_class.get(name, 0) for name in re.findall(r"\.([\w-]+)", subject)
    ]
    counts += [tally.by_id.get(name, 0) for name in re.findall(r"#([\w-]+)", subject)]
    return min(counts)


def _forcing(declarations) -> bool:
    for declaration in declarations:
        if declaration.type != "declaration":
            continue
        if declaration.lower_name in _BREAK_PROPERTIES:
            values = {
                token.lower_value
                for token in declaration.value
                if token.type == "ident"
            }
            if values & _FORCING_VALUES:
                return True
    return False


def _stylesheet_breaks(rules, tally: _Tally, deadline: float) -> int:
    total = 0
    for rule in rules:
        if time.monotonic() > deadline:
            break
        if rule.type == "qualified-rule":
            declarations = tinycss2.parse_blocks_contents(
                rule.content, skip_whitespace=True, skip_comments=True
            )
            if _forcing(declarations):
                selectors = tinycss2.serialize(rule.prelude).split(",")
                total += sum(_subject_count(s, tally) for s in selectors)
        elif (
            rule.type == "at-rule"
            and rule.content is not None
            and rule.lower_at_keyword in _NESTING_AT_RULES
        ):
            nested = tinycss2.parse_rule_list(
                rule.content, skip_whitespace=True, skip_comments=True
            )
            total += _stylesheet_breaks(nested, tally, deadline)
    return total


def html_refusal(content: bytes, *, limits: HtmlLimits) -> HtmlRefusal | None:
    """Why this HTML is refused at intake, or None when it is within every bound."""
    if len(content) > limits.max_bytes:
        return HtmlRefusal(
            "html_too_large",
            f"The HTML is {len(content)} bytes, over the limit of {limits.max_bytes}.",
        )
    deadline = time.monotonic() + limits.max_seconds
    text = content.decode("utf-8", errors="replace")
    tally = _Tally(limits)
    for start in range(0, len(text), _FEED_CHUNK):
        tally.feed(text[start : start + _FEED_CHUNK])
        refusal = tally.check()
        if refusal is not None:
            return refusal
        if time.monotonic() > deadline:
            return HtmlRefusal(
                "html_too_complex",
                "The HTML is too complex to check within the intake limits.",
            )
    tally.close()
    refusal = tally.check()
    if refusal is not None:
        return refusal
    breaks = tally.inline_breaks
    for sheet in tally.styles:
        rules = tinycss2.parse_stylesheet(
            sheet, skip_whitespace=True, skip_comments=True
        )
        breaks += _stylesheet_breaks(rules, tally, deadline)
    if time.monotonic() > deadline:
        return HtmlRefusal(
            "html_too_complex",
            "The HTML is too complex to check within the intake limits.",
        )
    if breaks > limits.max_page_breaks:
        return HtmlRefusal(
            "html_too_many_page_breaks",
            f"The HTML forces page breaks on up to {breaks} elements; at most "
            f"{limits.max_page_breaks} are accepted.",
        )
    return None
