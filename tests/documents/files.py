"""Documents written by the tests themselves, hostile ones included: no binary fixture is
committed, and each file shows how it is made."""

from __future__ import annotations

import io
import zipfile
import zlib
from collections.abc import Sequence
from pathlib import Path

import docx

MiB = 1024 * 1024

CONTENT_TYPES = (
    b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    b'<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    b'<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    b'<Default Extension="xml" ContentType="application/xml"/>'
    b'<Override PartName="/word/document.xml" ContentType="application/'
    b'vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/>'
    b"</Types>"
)
W = 'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"'


def pdf_pages(pages: Sequence[bytes], *, flate: bool = False, comment: bytes = b"") -> bytes:
    """A PDF with one page per content stream, in Helvetica, with a correct
    cross-reference table. ``comment`` goes on a line of its own after the header: a
    placeholder there can be overwritten later without moving any offset."""
    stream_filter = b" /Filter /FlateDecode" if flate else b""
    font = 3 + 2 * len(pages)  # 1 catalog, 2 page tree; per page: page, contents; then the font
    kids = b" ".join(b"%d 0 R" % (3 + 2 * index) for index in range(len(pages)))
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [%s] /Count %d >>" % (kids, len(pages)),
    ]
    for index, content in enumerate(pages):
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792]"
            b" /Resources << /Font << /F1 %d 0 R >> >> /Contents %d 0 R >>" % (font, 4 + 2 * index)
        )
        objects.append(b"<< /Length %d%s >>\nstream\n%s\nendstream" % (len(content), stream_filter, content))
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    out = bytearray(b"%PDF-1.4\n")
    if comment:
        out += b"%" + comment + b"\n"
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def pdf(content: bytes, *, flate: bool = False) -> bytes:
    """A one-page PDF showing ``content`` (a content stream)."""
    return pdf_pages([content], flate=flate)


def text_pdf(text: str) -> bytes:
    return pdf(b"BT /F1 24 Tf 72 720 Td (%s) Tj ET" % text.encode("latin-1"))


def zeros_deflate(size: int) -> bytes:
    """A zlib stream of ``size`` zero bytes, built without compressing them all: after a
    full flush deflate starts afresh, so every further MiB of zeros compresses to the
    same bytes, which are repeated. About 1 KiB per MiB."""
    block = bytes(MiB)
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)  # raw deflate: header added below
    segment = compressor.compress(block) + compressor.flush(zlib.Z_FULL_FLUSH)
    blocks = size // MiB
    checksum = 1
    for _ in range(blocks):
        checksum = zlib.adler32(block, checksum)
    end = compressor.flush(zlib.Z_FINISH)
    return b"\x78\xda" + segment * blocks + end + checksum.to_bytes(4, "big")


def make_docx(path: Path) -> Path:
    document = docx.Document()
    document.add_heading("Quarterly report", level=1)
    document.add_paragraph("Revenue grew in every region.")
    table = document.add_table(rows=2, cols=2)
    table.cell(0, 0).text = "Region"
    table.cell(0, 1).text = "Growth"
    table.cell(1, 0).text = "North"
    table.cell(1, 1).text = "12%"
    document.add_paragraph("End of report.")
    document.save(str(path))
    return path


def rewrite_zip(source: Path, target: Path, *, replace: dict[str, bytes] | None = None) -> zipfile.ZipFile:
    """``source``'s entries copied into ``target`` (with ``replace``'s contents instead),
    returned open for appending more."""
    replace = replace or {}
    archive = zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED)
    with zipfile.ZipFile(source) as original:
        for name in original.namelist():
            archive.writestr(name, replace.get(name, original.read(name)))
    return archive


def document_xml(body: str, doctype: str = "") -> bytes:
    return (
        f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>{doctype}'
        f"<w:document {W}><w:body>{body}</w:body></w:document>"
    ).encode()


def paragraph(text: str) -> str:
    return f"<w:p><w:r><w:t>{text}</w:t></w:r></w:p>"


def minimal_docx() -> bytes:
    """The two parts detection needs, nothing more."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("[Content_Types].xml", CONTENT_TYPES)
        archive.writestr("word/document.xml", document_xml(paragraph("hi")))
    return buffer.getvalue()


def billion_laughs_docx(directory: Path) -> Path:
    """A Word document whose text nests entities that would expand to 10⁹ "lol"s."""
    laughs = "".join(f'<!ENTITY l{n} "{f"&l{n - 1};" * 10}">' for n in range(1, 10))
    doctype = f'<!DOCTYPE w:document [<!ENTITY l0 "lol">{laughs}]>'
    body = paragraph("visible") + paragraph("&l9;")
    source = make_docx(directory / "good.docx")
    replace = {"word/document.xml": document_xml(body, doctype)}
    rewrite_zip(source, directory / "laughs.docx", replace=replace).close()
    return directory / "laughs.docx"
