"""A terminal-readable summary of a report file: an HTML tearsheet becomes its text (headings, sentences, tables as
aligned rows; no markup, styles or charts), other text formats their first lines, anything else its size.

Pure functions (they run in the UI thread only for one file the operator asked for, bounded by MAX_BYTES)."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

MAX_BYTES = 2_000_000  # a tearsheet with inline SVG is a few hundred KB; never read a huge file into the UI
PREVIEW_LINES = 200
TEXT_SUFFIXES = (".md", ".txt", ".json", ".csv")
HTML_SUFFIXES = (".html", ".htm")
_SKIP = {"style", "script", "svg", "head"}
_BLOCK = {"p", "div", "br", "h1", "h2", "h3", "h4", "li", "table", "section"}


class _TextOfHtml(HTMLParser):
    """Collects the visible text of an HTML page: headings underlined, table rows as cells joined by two spaces."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lines: list[str] = []
        self._line: list[str] = []
        self._row: list[str] | None = None
        self._cell: list[str] | None = None
        self._skip = 0
        self._title = False
        self.title = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        """Open skipped regions, rows and cells; blocks end the current line."""
        if tag in _SKIP:
            self._skip += 1
        elif tag == "title":
            self._title = True
        elif tag == "tr":
            self._flush()
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []
        elif tag in _BLOCK:
            self._flush()

    def handle_endtag(self, tag: str) -> None:
        """Close what handle_starttag opened."""
        if tag in _SKIP:
            self._skip = max(0, self._skip - 1)
        elif tag == "title":
            self._title = False
        elif tag in ("td", "th") and self._row is not None and self._cell is not None:
            self._row.append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "tr" and self._row is not None:
            cells = [c for c in self._row if c]
            if cells:
                self.lines.append("  ".join(cells))
            self._row = None
        elif tag in ("h1", "h2", "h3"):
            text = self._flush()
            if text and tag != "h3":
                self.lines.append(("=" if tag == "h1" else "-") * min(len(text), 72))
        elif tag in _BLOCK:
            self._flush()

    def handle_data(self, data: str) -> None:
        """Text goes to the open cell, the title, or the current line; skipped regions drop it."""
        if self._title:
            self.title += data
        elif self._skip:
            return
        elif self._cell is not None:
            self._cell.append(data)
        else:
            self._line.append(data)

    def _flush(self) -> str:
        text = " ".join("".join(self._line).split())
        self._line = []
        if text:
            if self.lines and self.lines[-1] and self.lines[-1][0] not in "=-" and text[:1].isupper():
                self.lines.append("")
            self.lines.append(text)
        return text

    def text(self) -> str:
        """The collected text."""
        self._flush()
        return "\n".join(self.lines)


def html_summary(source: str) -> str:
    """The visible text of an HTML report."""
    parser = _TextOfHtml()
    parser.feed(source)
    parser.close()
    return parser.text()


def report_summary(path: str, copy_key: str = "c") -> str:
    """What the console shows for a report path: its text summary, or why it cannot be shown."""
    p = Path(path).expanduser()
    if not p.exists():
        return f"(file not found on this machine: {p})"
    size = p.stat().st_size
    suffix = p.suffix.lower()
    if suffix not in TEXT_SUFFIXES + HTML_SUFFIXES:
        return f"({p.suffix or 'no suffix'} file, {size:,} bytes; press {copy_key} to copy the path)"
    with p.open(errors="replace") as fh:
        source = fh.read(MAX_BYTES)
    text = html_summary(source) if suffix in HTML_SUFFIXES else source
    lines = text.splitlines()
    more = f"\n… {len(lines) - PREVIEW_LINES} more lines; open the file for the charts" if len(lines) > PREVIEW_LINES \
        else ""
    kind = "HTML report (text only; charts are in the file)" if suffix in HTML_SUFFIXES else f"{suffix[1:]} file"
    return f"{kind}, {size:,} bytes\n\n" + "\n".join(lines[:PREVIEW_LINES]) + more
