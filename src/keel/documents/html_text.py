"""HTML to the text a reader sees, for chunking and search.

Written on the stdlib ``html.parser`` rather than html2text (GPL) or BeautifulSoup (one
more dependency for a page of code): we need no Markdown rendering, only the visible
words with their paragraph breaks.

- Content that is not text to a reader is dropped: ``script``, ``style``, ``template``,
  ``noscript``, ``iframe``, ``object``, ``svg``, ``math``, ``canvas``. The
  ``<title>`` is kept: it is usually the document's name, which search should find.
- Block elements (``p``, ``div``, headings, ``section``, ``li``, ``tr``…) become line or
  paragraph breaks; table cells in a row are separated by a space.
- Entities are unescaped and whitespace collapsed as a browser does (inside ``<pre>``
  line breaks are kept).

Hostile markup cannot smuggle a script's body into the text: a dropped element opened
by any spelling the parser accepts (``<SCRIPT>``, ``<script/>``) drops everything up to
its end tag — and to the end of the document when that never comes, as a browser would.
Comments, CDATA sections, declarations and processing instructions are dropped whole,
unterminated ones to the end of the document.
Text that merely *reads* ``<script>`` (written ``&lt;script&gt;``) is shown, being
visible text.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Final

_DROPPED: Final = frozenset(
    {"script", "style", "template", "noscript", "iframe", "object", "svg", "math", "canvas"}
)
# Foreign elements, where ``<svg/>`` really is empty.
_SELF_CLOSING: Final = frozenset({"svg", "math"})
_PARAGRAPH: Final = frozenset(
    {
        "address", "article", "aside", "blockquote", "caption", "details", "dialog", "div",
        "dl", "fieldset", "figcaption", "figure", "footer", "form", "h1", "h2", "h3", "h4",
        "h5", "h6", "header", "hgroup", "hr", "main", "nav", "ol", "p", "pre", "section",
        "summary", "table", "title", "ul",
    }
)  # fmt: skip
_LINE: Final = frozenset({"br", "dd", "dt", "li", "option", "tr", "legend"})
_CELL: Final = frozenset({"td", "th"})

_WHITESPACE = re.compile(r"\s+")
_MARKUP_START = re.compile(r"<[!?/a-zA-Z]")


def html_to_text(html: str) -> str:
    """The visible text of ``html``: paragraphs separated by a blank line, lines by a
    newline, no leading or trailing whitespace."""
    parser = _TextParser()
    parser.feed(html)
    parser.close()
    return parser.text()


class _TextParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self._parts: list[str] = []
        self._dropped: list[str] = []  # open dropped elements, innermost last
        self._pre = 0
        self._pending_break = 0  # newlines owed before the next text
        self._space = False  # whitespace seen since the last text was written

    def text(self) -> str:
        return "\n".join(line.strip() for line in "".join(self._parts).split("\n")).strip()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _DROPPED:
            self._dropped.append(tag)
        elif not self._dropped:
            self._block(tag)
            if tag == "pre":
                self._pre += 1

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        # ``<script/>`` does not close a script in HTML: a browser runs what follows as
        # its body, so it is dropped the same way.
        if tag not in _SELF_CLOSING:
            self.handle_starttag(tag, attrs)

    def close(self) -> None:
        # What is left unparsed is an unterminated comment, tag or CDATA section, which
        # HTMLParser would now hand over as text; a browser shows none of it.
        if _MARKUP_START.match(self.rawdata):
            self.rawdata = ""
        super().close()

    def handle_endtag(self, tag: str) -> None:
        if tag in self._dropped:
            # Close it with everything opened inside (``<svg><style>…</svg>``).
            del self._dropped[len(self._dropped) - 1 - self._dropped[::-1].index(tag) :]
        elif not self._dropped:
            if tag == "pre" and self._pre:
                self._pre -= 1
            self._block(tag)

    def handle_data(self, data: str) -> None:
        if self._dropped:
            return
        if self._pre:
            lines = data.replace("\r\n", "\n").replace("\r", "\n").split("\n")
            for number, line in enumerate(lines):
                if number:
                    self._break(1)
                self._write(line)
        else:
            self._write(data)

    def _block(self, tag: str) -> None:
        if tag in _PARAGRAPH:
            self._break(2)
        elif tag in _LINE:
            self._break(1)
        elif tag in _CELL:
            self._space = True

    def _break(self, newlines: int) -> None:
        if self._parts:  # never before the first text
            self._pending_break = max(self._pending_break, newlines)

    def _write(self, data: str) -> None:
        collapsed = _WHITESPACE.sub(" ", data)
        words = collapsed.strip()
        if not words:
            self._space = self._space or bool(collapsed)
            return
        if self._pending_break:
            self._parts.append("\n" * self._pending_break)
            self._pending_break = 0
        elif self._parts and (self._space or collapsed[0] == " "):
            self._parts.append(" ")
        self._parts.append(words)
        self._space = collapsed[-1] == " "
