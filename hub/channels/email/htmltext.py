"""HTML bodies: sanitise with nh3 for display, and flatten to text when a mail has no text part."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import nh3

# cid: keeps inline images (Content-ID parts) displayable; ammonia's defaults already drop
# javascript:, data: and every on* attribute, and remove <script>/<style> with their content.
_URL_SCHEMES = {"http", "https", "mailto", "tel", "cid"}

_BLOCKS = frozenset(
    {
        "address",
        "article",
        "aside",
        "blockquote",
        "center",
        "dd",
        "div",
        "dl",
        "dt",
        "fieldset",
        "figcaption",
        "figure",
        "footer",
        "form",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "header",
        "hr",
        "li",
        "main",
        "nav",
        "ol",
        "p",
        "pre",
        "section",
        "table",
        "tbody",
        "tfoot",
        "thead",
        "tr",
        "ul",
    }
)
_SKIP = frozenset({"script", "style", "head", "title", "template", "noscript"})
_BLANK_RUNS = re.compile(r"\n{3,}")
_SPACES = re.compile(r"[ \t\r\f\v]+")


def sanitise(html: str) -> str:
    """HTML safe to show in the inbox: no script/style, no event handlers, no javascript: URLs."""
    return nh3.clean(html, url_schemes=_URL_SCHEMES)


class _TextCollector(HTMLParser):
    """Collects text with line breaks at block ends and `> ` before blockquoted lines."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.chunks: list[str] = []
        self.skip_depth = 0
        self.quote_depth = 0
        self.pre_depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP:
            self.skip_depth += 1
        elif tag == "br":
            self.chunks.append("\n")
        elif tag in _BLOCKS:
            self._open_block(tag)

    def _open_block(self, tag: str) -> None:
        """Start a new line; keep quote and preformatted depth for the text that follows."""
        self.chunks.append("\n")
        if tag == "blockquote":
            self.quote_depth += 1
        elif tag == "pre":
            self.pre_depth += 1
        elif tag == "li":
            self.chunks.append("- ")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP:
            self.skip_depth = max(0, self.skip_depth - 1)
        elif tag in _BLOCKS:
            self.chunks.append("\n")
            if tag == "blockquote":
                self.quote_depth = max(0, self.quote_depth - 1)
            elif tag == "pre":
                self.pre_depth = max(0, self.pre_depth - 1)

    def handle_data(self, data: str) -> None:
        if self.skip_depth:
            return
        if not self.pre_depth:
            data = _SPACES.sub(" ", data.replace("\n", " "))
        if self.quote_depth:
            # Quoted history stays recognisable to quotes.visible_text() as `>` lines.
            marker = "> " * self.quote_depth
            data = data.replace("\n", "\n" + marker)
            self.chunks.append(("\n" + marker) if self._at_line_start() else "")
        self.chunks.append(data)

    def _at_line_start(self) -> bool:
        return not self.chunks or self.chunks[-1].endswith("\n")


def to_text(html: str) -> str:
    """Readable plain text of an HTML body (block elements become lines, quotes become `>`)."""
    collector = _TextCollector()
    collector.feed(html)
    collector.close()
    lines = (line.strip() for line in "".join(collector.chunks).split("\n"))
    return _BLANK_RUNS.sub("\n\n", "\n".join(lines)).strip()
