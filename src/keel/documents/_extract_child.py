"""The child process that reads an untrusted document's text (started by :mod:`.extract`).

    python -m keel.documents._extract_child <media type> <path> <memory bytes> <cpu seconds>

The parsers are large C and Python code bases fed attacker-chosen bytes. Here they run
under kernel limits set before the file is opened (and before pypdf or python-docx is
imported), in a process the parent kills on a wall-clock timeout, so the worst a file
can do is end this process:

- ``RLIMIT_AS`` = memory bytes: an allocation past it fails (``MemoryError``);
- ``RLIMIT_CPU`` = CPU seconds: the kernel ends the process with ``SIGXCPU``;
- ``RLIMIT_FSIZE`` = 0 and ``RLIMIT_NOFILE`` small: nothing to write, few files to open;
- ``RLIMIT_CORE`` = 0: a crash leaves no core file of someone's document.

The text goes to stdout as UTF-8. On failure nothing is written to stdout and the exit
status says why (:data:`FAILURES`): never a traceback, which could carry file
content.

Per type, on top of the process limits:

- PDF: pypdf with every decoder's output capped (:func:`.detect.pdf_limits`), so a
  FlateDecode bomb stops at the cap rather than at the memory limit;
- DOCX: the zip's directory is checked before python-docx opens it (entries, declared
  sizes, ratios, names, symlinks). python-docx parses every part with lxml and
  ``resolve_entities=False`` (``docx/oxml/parser.py`` and ``docx/opc/oxml.py`` in 1.2):
  entity references are left unexpanded and an external entity is never read. A
  billion-laughs part is refused outright by libxml2 (2.14, its amplification limit):
  the file fails as corrupt, in milliseconds.
  A part whose deflate stream holds more than its declared size is cut at that size by
  zipfile, but only after inflating it — the memory limit is the backstop there;
- HTML: :func:`.html_text.html_to_text`; plain text and Markdown: strict UTF-8.
"""

from __future__ import annotations

import os
import re
import resource
import stat
import sys
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import PurePosixPath
from typing import IO, TYPE_CHECKING, Final

from keel.documents.detect import ArchiveRejected, DocumentType, open_archive, pdf_limits
from keel.documents.html_text import html_to_text

if TYPE_CHECKING:
    from docx.table import Table
    from docx.text.paragraph import Paragraph

TIMED_OUT: Final = "timed out"
MEMORY_EXCEEDED: Final = "memory limit exceeded"
CORRUPT: Final = "corrupt or unsupported file"

EXIT_CORRUPT: Final = 3
EXIT_MEMORY: Final = 4
_ARCHIVE_WHYS: Final = (
    "too many entries",
    "too large when uncompressed",
    "compression ratio too high",
    "unsafe entry name",
    "symbolic link entry",
    "zip64 archive",
    "central directory too large",
)
# ``ArchiveRejected.why`` -> exit status, from 10 up.
ARCHIVE_STATUS: Final = {why: 10 + number for number, why in enumerate(_ARCHIVE_WHYS)}
# Exit status -> the reason given to a client.
FAILURES: Final[dict[int, str]] = {
    EXIT_CORRUPT: CORRUPT,
    EXIT_MEMORY: MEMORY_EXCEEDED,
    **{status: f"archive rejected: {why}" for why, status in ARCHIVE_STATUS.items()},
}

MAX_UNCOMPRESSED_BYTES: Final = 50 * 1000 * 1000
MAX_COMPRESSION_RATIO: Final = 100
# Per decoded PDF stream. Text content streams are far smaller; images, the large
# streams, are not decoded to extract text.
PDF_STREAM_BYTES: Final = 32 * 1024 * 1024
_OPEN_FILES = 16
_DRIVE = re.compile(r"[A-Za-z]:")


def apply_limits(memory_bytes: int, cpu_seconds: int) -> None:
    """Lower soft and hard limits alike: the parsed file cannot raise them again."""
    _lower(resource.RLIMIT_AS, memory_bytes)
    # The soft limit sends SIGXCPU, which ends the process; the hard one, a second later,
    # SIGKILL.
    _lower(resource.RLIMIT_CPU, cpu_seconds, cpu_seconds + 1)
    _lower(resource.RLIMIT_FSIZE, 0)
    _lower(resource.RLIMIT_NOFILE, _OPEN_FILES)
    _lower(resource.RLIMIT_CORE, 0)


def _lower(limit: int, soft: int, hard: int | None = None) -> None:
    # Never above the current hard limit (a container may set one lower): raising it
    # fails, and the lower limit already holds.
    _, current = resource.getrlimit(limit)
    hard = soft if hard is None else hard
    if current != resource.RLIM_INFINITY:
        soft, hard = min(soft, current), min(hard, current)
    resource.setrlimit(limit, (soft, hard))


def check_archive(entries: Iterable[zipfile.ZipInfo]) -> None:
    """Refuse a zip (:class:`.detect.ArchiveRejected`) from what its central directory
    declares, before anything inflates it."""
    total = 0
    for entry in entries:
        name = entry.filename.replace("\\", "/")
        if name.startswith("/") or _DRIVE.match(name) or ".." in PurePosixPath(name).parts:
            raise ArchiveRejected("unsafe entry name")
        if stat.S_ISLNK(entry.external_attr >> 16):
            raise ArchiveRejected("symbolic link entry")
        if entry.file_size > MAX_COMPRESSION_RATIO * max(entry.compress_size, 1):
            raise ArchiveRejected("compression ratio too high")
        total += entry.file_size
        if total > MAX_UNCOMPRESSED_BYTES:
            raise ArchiveRejected("too large when uncompressed")


# Each parser is imported when its type comes: pypdf or python-docx take a second to
# import on a busy host, which a text file should not pay for.


def _pdf_text(file: IO[bytes]) -> str:
    import pypdf  # noqa: PLC0415

    try:
        with pypdf.apply_configuration(pdf_limits(PDF_STREAM_BYTES)):
            reader = pypdf.PdfReader(file, strict=False)
            return "\n\n".join(page.extract_text() for page in reader.pages)
    # A decoder cap exists to bound memory: to a client it is the same limit.
    except pypdf.errors.LimitReachedError:
        raise MemoryError from None


def _docx_text(file: IO[bytes]) -> str:
    """The body's paragraphs and tables in document order; headers, footers, notes and
    text boxes are not read."""
    import docx  # noqa: PLC0415

    with open_archive(file) as archive:
        check_archive(archive.infolist())
    document = docx.Document(file)
    return "\n".join(_blocks(document.iter_inner_content()))


def _blocks(items: Iterable[Paragraph | Table]) -> Iterator[str]:
    from docx.text.paragraph import Paragraph  # noqa: PLC0415

    for item in items:
        if isinstance(item, Paragraph):
            yield item.text
        else:
            yield from _table_lines(item)


def _table_lines(table: Table) -> Iterator[str]:
    """A row per line, cells separated by tabs; a cell's own paragraphs and nested
    tables on lines of their own."""
    # A merged cell comes back once per grid position it spans. Its element is held here
    # so its id stays its own: lxml makes a new proxy, maybe at a freed one's address,
    # for an element no longer referenced.
    seen: dict[int, object] = {}
    for row in table.rows:
        cells: list[str] = []
        for cell in row.cells:
            if id(cell._tc) not in seen:
                seen[id(cell._tc)] = cell._tc
                cells.append("\n".join(_blocks(cell.iter_inner_content())))
        yield "\t".join(cells)


def _extract(media_type: DocumentType, file: IO[bytes]) -> str:
    if media_type is DocumentType.PDF:
        return _pdf_text(file)
    if media_type is DocumentType.DOCX:
        return _docx_text(file)
    text = file.read().decode("utf-8-sig")
    return html_to_text(text) if media_type is DocumentType.HTML else text


def main(argv: list[str]) -> int:
    media_type, path, memory_bytes, cpu_seconds = argv
    apply_limits(int(memory_bytes), int(cpu_seconds))
    try:
        with open(path, "rb") as file:
            text = _extract(DocumentType(media_type), file)
        # NUL cannot be stored in a PostgreSQL text column, and is no reader's text.
        data = text.replace("\x00", "").encode("utf-8", "replace")
    except ArchiveRejected as rejected:
        return ARCHIVE_STATUS.get(rejected.why, EXIT_CORRUPT)
    except MemoryError:
        return EXIT_MEMORY
    # Whatever else a parser raises on a malformed file: one reason, no traceback.
    except Exception:
        return EXIT_CORRUPT
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()
    return 0


if __name__ == "__main__":
    # os._exit: no interpreter teardown, which could need memory the limit no longer gives.
    os._exit(main(sys.argv[1:]))
