"""What an uploaded file is, decided by its bytes alone.

The file name and the client's ``Content-Type`` are claims; an executable renamed
``report.pdf`` must not reach a parser as a PDF. So each type is recognised by its
content, and a type is accepted only when the library that will read it can at least
open it: a ``%PDF-`` header that pypdf cannot read, or a zip without a Word main part,
is nothing we accept (the route answers 415).

Checks run in this order, the first that matches wins:

1. PDF: ``%PDF-`` in the first KiB (readers tolerate leading junk, so the header need
   not be at offset 0) and pypdf opens the file's structure (cross-reference table,
   trailer, catalog) with tight stream limits. A file claiming to be a PDF that pypdf
   cannot open is refused, not reread as text: it is a broken upload.
2. DOCX: a zip whose ``[Content_Types].xml`` declares a WordprocessingML main part and
   which holds ``word/document.xml``. Macro-enabled documents and templates declare
   other content types and are refused.
3. Text: the whole file is strict UTF-8 without NUL bytes, checked in chunks so a
   20 MiB upload is never in memory at once. Then:
   - HTML when it starts (after an optional BOM and whitespace) with ``<!doctype html``,
     ``<html``, ``<head`` or ``<body``;
   - Markdown when its content shows a Markdown construct — an ATX heading
     (``# Title``), a code fence (````` or ``~~~``) or an inline link ``[text](url)``.
     Markdown is a superset of plain text, so there is no proof either way; one such
     construct is the signal we take. A wrong guess costs nothing: both are stored and
     chunked as the text they are;
   - plain text otherwise (an empty file included).

Everything here is synchronous and reads the disk: call it from a worker thread.
"""

from __future__ import annotations

import codecs
import re
import struct
import zipfile
from enum import StrEnum
from pathlib import Path
from typing import IO, TYPE_CHECKING, Final

from lxml import etree  # type: ignore[import-untyped]

if TYPE_CHECKING:
    import pypdf


class DocumentType(StrEnum):
    PDF = "application/pdf"
    DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
    TEXT = "text/plain"
    MARKDOWN = "text/markdown"
    HTML = "text/html"


MAX_ARCHIVE_ENTRIES: Final = 2_000
# 2,000 entries with generous names fit well inside; zipfile reads the whole directory
# (and builds an object per entry) before anything can be counted.
MAX_CENTRAL_DIRECTORY_BYTES: Final = 1024 * 1024

_PDF_MAGIC = b"%PDF-"
_PDF_MAGIC_WINDOW = 1024
# Opening a PDF decodes its cross-reference and object streams; these stay small in real
# files, so detection allows far less than extraction does.
_PDF_DETECT_STREAM_BYTES = 8 * 1024 * 1024
_READ_CHUNK = 64 * 1024
_MAX_CONTENT_TYPES_BYTES = 256 * 1024
_MAX_MARKDOWN_CARRY = 4096

_DOCX_MAIN = "application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"
_CONTENT_TYPES_NS = "{http://schemas.openxmlformats.org/package/2006/content-types}"

_BOM = b"\xef\xbb\xbf"
_HTML_START = re.compile(rb"<(?:!doctype\s+html|html|head|body)(?=[\s>/])", re.IGNORECASE)
_MARKDOWN = re.compile(
    r"^[ ]{0,3}#{1,6}[ \t]+\S"  # ATX heading
    r"|^[ ]{0,3}(?:```|~~~)"  # fenced code
    r"|\[[^\]\n]+\]\([^)\s]+\)",  # inline link
    re.MULTILINE,
)

_EOCD = struct.Struct("<4s4H2LH")
_EOCD_SIGNATURE = b"PK\x05\x06"
_ZIP64_LOCATOR_SIGNATURE = b"PK\x06\x07"
_ZIP64_LOCATOR_SIZE = 20


class ArchiveRejected(Exception):
    """A zip we refuse to open further; ``why`` is short and safe to show a client."""

    def __init__(self, why: str) -> None:
        super().__init__(why)
        self.why = why


def detect_type(head: bytes, path: Path) -> DocumentType | None:
    """The type of the file at ``path`` by its content, or ``None`` if it is not one we
    accept. ``head`` is the file's first bytes (at least the first KiB when the file is
    that long), which the caller has usually read already."""
    if _PDF_MAGIC in head[:_PDF_MAGIC_WINDOW]:
        return DocumentType.PDF if _opens_as_pdf(path) else None
    if head.startswith(b"PK\x03\x04"):
        return DocumentType.DOCX if _is_docx(path) else None
    markdown = _scan_text(path)
    if markdown is None:
        return None
    if _HTML_START.match(head.removeprefix(_BOM).lstrip()):
        return DocumentType.HTML
    return DocumentType.MARKDOWN if markdown else DocumentType.TEXT


def pdf_limits(stream_bytes: int) -> pypdf.Configuration:
    """A pypdf configuration capping every decoder's output at ``stream_bytes`` (its
    defaults allow 75 MB per stream), with no external JBIG2 decoder: hostile bytes are
    not handed to another program."""
    import pypdf  # noqa: PLC0415  (see _opens_as_pdf)

    return pypdf.Configuration(
        maximum_declared_stream_length=stream_bytes,
        array_based_stream_maximum_output_length=stream_bytes,
        zlib_maximum_output_length=stream_bytes,
        lzw_maximum_output_length=stream_bytes,
        run_length_maximum_output_length=stream_bytes,
        brotli_maximum_output_length=stream_bytes,
        jbig2_maximum_output_length=stream_bytes,
        image_maximum_buffer_size=stream_bytes,
        stream_decoding_work_maximum_length=4 * stream_bytes,
        jbig2dec_binary=None,
    )


def _opens_as_pdf(path: Path) -> bool:
    # Imported when needed: pypdf takes a second to import on a busy host, which the
    # extraction child, importing this module, should pay only for a PDF.
    import pypdf  # noqa: PLC0415

    # An open file rather than the path: given a path, pypdf reads the whole file into
    # memory first.
    try:
        with (
            path.open("rb") as file,
            pypdf.apply_configuration(pdf_limits(_PDF_DETECT_STREAM_BYTES)),
        ):
            reader = pypdf.PdfReader(file, strict=False)
            return "/Pages" in reader.root_object
    # pypdf reports a malformed file with many exception types (PdfReadError, ValueError,
    # KeyError, RecursionError…); each one means "not a PDF we can read".
    except Exception:
        return False


def open_archive(file: IO[bytes]) -> zipfile.ZipFile:
    """``file`` as a zip, its central directory bounded before zipfile reads it.

    zipfile reads the directory whole and builds a ``ZipInfo`` per entry as it opens,
    so a 20 MiB upload of empty entries would cost hundreds of MB before
    ``infolist()`` could be counted. The end-of-directory record (located the way
    zipfile locates it) announces the directory's size and entry count: both are
    checked first. Zip64 archives are refused — their counts live elsewhere, and no
    document within our limits needs them.

    Raises :class:`ArchiveRejected`, or ``zipfile.BadZipFile`` for a file that is no zip.
    """
    file.seek(0, 2)
    size = file.tell()
    tail_size = min(size, _EOCD.size + 0xFFFF + _ZIP64_LOCATOR_SIZE)
    file.seek(size - tail_size)
    tail = file.read(tail_size)
    if tail[-_EOCD.size :].startswith(_EOCD_SIGNATURE):
        at = len(tail) - _EOCD.size
    else:
        at = tail.rfind(_EOCD_SIGNATURE)
    if at < 0 or len(tail) - at < _EOCD.size:
        raise zipfile.BadZipFile("no end of central directory record")
    if tail[max(0, at - _ZIP64_LOCATOR_SIZE) : at].startswith(_ZIP64_LOCATOR_SIGNATURE):
        raise ArchiveRejected("zip64 archive")
    record = _EOCD.unpack_from(tail, at)
    entries, directory_bytes = record[4], record[5]
    if entries > MAX_ARCHIVE_ENTRIES:
        raise ArchiveRejected("too many entries")
    if directory_bytes > MAX_CENTRAL_DIRECTORY_BYTES:
        raise ArchiveRejected("central directory too large")
    archive = zipfile.ZipFile(file)
    if len(archive.infolist()) > MAX_ARCHIVE_ENTRIES:
        archive.close()
        raise ArchiveRejected("too many entries")
    return archive


def _is_docx(path: Path) -> bool:
    try:
        with path.open("rb") as file, open_archive(file) as archive:
            names = set(archive.namelist())
            if "[Content_Types].xml" not in names or "word/document.xml" not in names:
                return False
            # read(n) inflates at most about n bytes; read() would inflate whatever the
            # entry holds, whatever its declared size.
            with archive.open("[Content_Types].xml") as entry:
                content_types = entry.read(_MAX_CONTENT_TYPES_BYTES + 1)
            if len(content_types) > _MAX_CONTENT_TYPES_BYTES:
                return False
            return _declares_word_main_part(content_types)
    # zipfile and zlib fail in many ways on a damaged archive (BadZipFile, EOFError,
    # zlib.error, NotImplementedError for odd methods, RuntimeError when encrypted);
    # each means "not a DOCX we can read".
    except Exception:
        return False


def _declares_word_main_part(content_types: bytes) -> bool:
    # No entity expansion, no DTD, no network: this is attacker-written XML parsed in the
    # API process.
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    root = etree.fromstring(content_types, parser)
    return any(
        override.get("ContentType") == _DOCX_MAIN for override in root.iter(f"{_CONTENT_TYPES_NS}Override")
    )


def _scan_text(path: Path) -> bool | None:
    """``None`` unless the whole file is strict UTF-8 without NUL; else whether it shows a
    Markdown construct. Read in chunks: the file is never in memory whole."""
    # utf-8-sig: as strict as utf-8, and a leading BOM does not hide a heading on line 1.
    decoder = codecs.getincrementaldecoder("utf-8-sig")(errors="strict")
    markdown = False
    carry = ""  # the last, unfinished line, so a construct split across chunks is seen
    try:
        with path.open("rb") as file:
            while chunk := file.read(_READ_CHUNK):
                if b"\x00" in chunk:
                    return None
                text = decoder.decode(chunk)
                if not markdown:
                    window = carry + text
                    markdown = _MARKDOWN.search(window) is not None
                    carry = window[window.rfind("\n") + 1 :]
                    if len(carry) > _MAX_MARKDOWN_CARRY:
                        # Cut mid-line: the NUL (absent from the text) keeps ``^`` from
                        # matching where the cut falls.
                        carry = "\x00" + carry[-_MAX_MARKDOWN_CARRY:]
            decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return None
    return markdown
