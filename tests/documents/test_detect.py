from __future__ import annotations

import io
import time
import zipfile
from pathlib import Path

import pytest

from keel.documents.detect import (
    MAX_ARCHIVE_ENTRIES,
    ArchiveRejected,
    DocumentType,
    detect_type,
    open_archive,
)
from tests.documents import files


def detect(tmp_path: Path, data: bytes, name: str = "upload.bin") -> DocumentType | None:
    path = tmp_path / name
    path.write_bytes(data)
    return detect_type(data[:4096], path)


def test_a_pdf_is_a_pdf(tmp_path: Path) -> None:
    assert detect(tmp_path, files.text_pdf("Hello")) is DocumentType.PDF


def test_a_pdf_header_after_leading_junk_is_still_a_pdf(tmp_path: Path) -> None:
    assert detect(tmp_path, b"\x00junk\n" + files.text_pdf("Hello")) is DocumentType.PDF


def test_a_docx_is_a_docx(tmp_path: Path) -> None:
    path = files.make_docx(tmp_path / "report.docx")
    assert detect_type(path.read_bytes()[:4096], path) is DocumentType.DOCX


def test_the_two_parts_that_declare_a_word_document_are_enough(tmp_path: Path) -> None:
    assert detect(tmp_path, files.minimal_docx()) is DocumentType.DOCX


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"Just some notes.\nNothing more.\n", DocumentType.TEXT),
        (b"", DocumentType.TEXT),
        ("Caf\u00e9 cr\u00e8me \u2014 \U0001f600\n".encode(), DocumentType.TEXT),
        (b"# Title\n\nSome text.\n", DocumentType.MARKDOWN),
        (b"\xef\xbb\xbf# Title after a BOM\n", DocumentType.MARKDOWN),
        (b"Intro\n\n```python\nprint(1)\n```\n", DocumentType.MARKDOWN),
        (b"See [the docs](https://example.com/docs).\n", DocumentType.MARKDOWN),
        (b"#hashtag is not a heading\n", DocumentType.TEXT),
        (b"<!DOCTYPE html><html><body>x</body></html>", DocumentType.HTML),
        (b"\xef\xbb\xbf\n  <html lang=en><p>x</p></html>", DocumentType.HTML),
        (b"<HEAD><title>t</title></HEAD>", DocumentType.HTML),
        (b"<body>\nhello", DocumentType.HTML),
        (b"<header>not the head tag</header>", DocumentType.TEXT),
        (b"Text that mentions <html> later.", DocumentType.TEXT),
    ],
)
def test_text_types_are_told_apart_by_content(tmp_path: Path, data: bytes, expected: DocumentType) -> None:
    assert detect(tmp_path, data) is expected


def test_the_name_is_ignored(tmp_path: Path) -> None:
    assert detect(tmp_path, b"# Heading\n", name="notes.pdf") is DocumentType.MARKDOWN
    assert detect(tmp_path, files.text_pdf("Hi"), name="notes.txt") is DocumentType.PDF


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"\x7fELF\x02\x01\x01\x00" + bytes(56) + b"\x90" * 500, id="elf"),
        pytest.param(b"MZ\x90\x00\x03\x00\x00\x00\x04\x00" + bytes(200), id="pe"),
        pytest.param(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(40), id="png"),
        pytest.param(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00", id="jpeg"),
        pytest.param(b"GIF89a\x01\x00\x01\x00\x80\x00\x00", id="gif"),
        pytest.param("caf\u00e9".encode("latin-1"), id="latin-1"),
        pytest.param(b"valid start \xe2\x82", id="truncated-utf-8"),
        pytest.param(b"text with a NUL\x00 byte", id="nul"),
        pytest.param(b"%PDF-1.7\n" + bytes(range(256)) * 8, id="pdf-header-garbage"),
        pytest.param(b"%PDF-1.4\nnot really a pdf at all\n", id="pdf-header-text"),
    ],
)
def test_anything_else_is_refused(tmp_path: Path, data: bytes) -> None:
    assert detect(tmp_path, data) is None


def test_an_executable_renamed_pdf_is_refused(tmp_path: Path) -> None:
    elf = b"\x7fELF\x02\x01\x01\x00" + bytes(8) + b"\x02\x00\x3e\x00" + bytes(2000)
    assert detect(tmp_path, elf, name="invoice.pdf") is None


def test_invalid_utf_8_far_past_the_head_is_found(tmp_path: Path) -> None:
    data = b"plain ascii line\n" * 200_000 + b"\xff"  # 3.4 MB, the bad byte at the end
    assert detect(tmp_path, data) is None


def test_a_markdown_signal_split_across_read_chunks_is_seen(tmp_path: Path) -> None:
    prefix = b"x" * (64 * 1024 - 3) + b"\n"  # the heading straddles the first chunk's end
    assert detect(tmp_path, prefix + b"## Heading\n") is DocumentType.MARKDOWN


def zip_bytes(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return buffer.getvalue()


@pytest.mark.parametrize(
    "entries",
    [
        pytest.param({"readme.txt": b"hello"}, id="plain-zip"),
        pytest.param({"[Content_Types].xml": files.CONTENT_TYPES}, id="no-document-part"),
        pytest.param(
            {"[Content_Types].xml": b"<Types/>", "word/document.xml": b"<w/>"}, id="main-part-not-declared"
        ),
        pytest.param(
            {
                "[Content_Types].xml": files.CONTENT_TYPES.replace(
                    b"wordprocessingml.document.main", b"wordprocessingml.template.main"
                ),
                "word/document.xml": b"<w/>",
            },
            id="template",
        ),
        pytest.param(
            {"[Content_Types].xml": b"<Types", "word/document.xml": b"<w/>"}, id="broken-content-types"
        ),
    ],
)
def test_a_zip_that_is_not_a_word_document_is_refused(tmp_path: Path, entries: dict[str, bytes]) -> None:
    assert detect(tmp_path, zip_bytes(entries)) is None


def test_a_truncated_zip_is_refused(tmp_path: Path) -> None:
    assert detect(tmp_path, files.minimal_docx()[:-30]) is None


def test_a_zip_with_too_many_entries_is_refused_before_zipfile_lists_it(tmp_path: Path) -> None:
    entries = {f"word/{number}.xml": b"" for number in range(MAX_ARCHIVE_ENTRIES + 1)}
    data = zip_bytes({"[Content_Types].xml": files.CONTENT_TYPES, "word/document.xml": b"<w/>", **entries})
    assert detect(tmp_path, data) is None
    with pytest.raises(ArchiveRejected, match="too many entries"), io.BytesIO(data) as file:
        open_archive(file)


def test_a_billion_laughs_in_content_types_is_not_expanded(tmp_path: Path) -> None:
    laughs = "".join(f'<!ENTITY l{n} "{f"&l{n - 1};" * 10}">' for n in range(1, 10))
    doctype = f'<!DOCTYPE Types [<!ENTITY l0 "ha">{laughs}]>'.encode()
    content_types = files.CONTENT_TYPES.replace(b"?><Types", b"?>" + doctype + b"<Types").replace(
        b"</Types>", b"<x>&l9;</x></Types>"
    )
    data = zip_bytes({"[Content_Types].xml": content_types, "word/document.xml": b"<w/>"})
    started = time.monotonic()
    # lxml leaves the entities unexpanded, and libxml2 (2.14) refuses the document outright
    # for its amplification factor: not a DOCX, and no time spent.
    assert detect(tmp_path, data) in {DocumentType.DOCX, None}
    assert time.monotonic() - started < 2
