from __future__ import annotations

import asyncio
import os
import resource
import signal
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docx
import pytest

from keel.documents import _extract_child, extract
from keel.documents._extract_child import check_archive
from keel.documents.detect import ArchiveRejected, DocumentType, detect_type
from keel.documents.extract import ExtractionFailed, extract_text
from tests.documents import files

MEMORY = 512 * files.MiB


async def extract_file(path: Path, media_type: DocumentType, *, timeout_seconds: float = 20) -> str:
    return await extract_text(path, media_type, timeout_seconds=timeout_seconds, memory_bytes=MEMORY)


async def text_or_reason(path: Path, media_type: DocumentType) -> str:
    try:
        return await extract_file(path, media_type)
    except ExtractionFailed as failure:
        return f"failed: {failure.reason}"


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def rss_bytes() -> int:
    status = Path("/proc/self/status").read_text()
    line = next(line for line in status.splitlines() if line.startswith("VmRSS:"))
    return int(line.split()[1]) * 1024


async def test_a_pdf_gives_its_text(tmp_path: Path) -> None:
    path = write(tmp_path, "a.pdf", files.text_pdf("Hello from a PDF"))
    assert await extract_file(path, DocumentType.PDF) == "Hello from a PDF"


async def test_a_docx_gives_its_paragraphs_and_table_cells_in_order(tmp_path: Path) -> None:
    path = files.make_docx(tmp_path / "report.docx")
    assert await extract_file(path, DocumentType.DOCX) == (
        "Quarterly report\nRevenue grew in every region.\nRegion\tGrowth\nNorth\t12%\nEnd of report."
    )


async def test_plain_text_and_markdown_are_returned_as_written(tmp_path: Path) -> None:
    text = "# Title\n\nCaf\u00e9 \u2014 [link](https://example.com)\n"
    path = write(tmp_path, "a.md", b"\xef\xbb\xbf" + text.encode())
    assert await extract_file(path, DocumentType.MARKDOWN) == text
    assert await extract_file(path, DocumentType.TEXT) == text


async def test_html_gives_its_visible_text(tmp_path: Path) -> None:
    html = b"<html><body><h1>Title</h1><script>secret()</script><p>Body &amp; soul</p><SCRIPT>secret"
    path = write(tmp_path, "a.html", html)
    assert await extract_file(path, DocumentType.HTML) == "Title\n\nBody & soul"


async def test_a_merged_table_cell_is_read_once(tmp_path: Path) -> None:
    document = docx.Document()
    table = document.add_table(rows=2, cols=3)
    table.cell(0, 0).merge(table.cell(0, 2)).text = "Wide header"
    table.cell(1, 0).merge(table.cell(1, 1)).text = "Two"
    table.cell(1, 2).text = "One"
    document.save(str(tmp_path / "merged.docx"))
    assert await extract_file(tmp_path / "merged.docx", DocumentType.DOCX) == "Wide header\nTwo\tOne"


async def test_what_detection_accepts_extraction_reads(tmp_path: Path) -> None:
    path = files.make_docx(tmp_path / "report.bin")
    media_type = detect_type(path.read_bytes()[:4096], path)
    assert media_type is DocumentType.DOCX
    assert "North\t12%" in await extract_file(path, media_type)


@pytest.mark.parametrize(
    ("media_type", "data"),
    [
        (DocumentType.PDF, b"%PDF-1.7\n" + bytes(range(256)) * 4),
        (DocumentType.PDF, b"\x7fELF\x02\x01\x01\x00" + bytes(500)),
        (DocumentType.DOCX, b"PK\x03\x04 not really a zip"),
        (DocumentType.TEXT, b"caf\xe9"),
    ],
)
async def test_a_file_that_is_not_its_type_fails_without_a_traceback(
    tmp_path: Path, media_type: DocumentType, data: bytes
) -> None:
    path = write(tmp_path, "upload", data)
    with pytest.raises(ExtractionFailed) as failure:
        await extract_file(path, media_type)
    assert failure.value.reason == "corrupt or unsupported file"


async def test_a_pdf_decompression_bomb_fails_fast_and_costs_this_process_nothing(tmp_path: Path) -> None:
    # 1 GiB of zeros in a 1 MiB FlateDecode content stream.
    path = write(tmp_path, "bomb.pdf", files.pdf(files.zeros_deflate(1024 * files.MiB), flate=True))
    assert detect_type(path.read_bytes()[:4096], path) is DocumentType.PDF
    before = rss_bytes()
    started = time.monotonic()
    with pytest.raises(ExtractionFailed) as failure:
        await extract_file(path, DocumentType.PDF)
    assert time.monotonic() - started < 10
    assert failure.value.reason == "memory limit exceeded"
    assert rss_bytes() - before < 32 * files.MiB
    # The child itself stayed far under its limit too: pypdf stopped at its stream cap.
    assert resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024 < MEMORY


async def test_a_docx_with_a_zip_bomb_entry_is_rejected_before_inflating(tmp_path: Path) -> None:
    source = files.make_docx(tmp_path / "good.docx")
    with (
        files.rewrite_zip(source, tmp_path / "bomb.docx") as archive,
        archive.open("word/media/x.bin", "w") as entry,
    ):
        block = bytes(files.MiB)
        for _ in range(20):  # 20 MiB of zeros, about 20 KiB compressed
            entry.write(block)
    path = tmp_path / "bomb.docx"
    assert detect_type(path.read_bytes()[:4096], path) is DocumentType.DOCX
    with pytest.raises(ExtractionFailed) as failure:
        await extract_file(path, DocumentType.DOCX)
    assert failure.value.reason == "archive rejected: compression ratio too high"


async def test_a_docx_with_too_many_entries_is_rejected(tmp_path: Path) -> None:
    source = files.make_docx(tmp_path / "good.docx")
    with files.rewrite_zip(source, tmp_path / "many.docx") as archive:
        for number in range(2_001):
            archive.writestr(f"extra/item{number}.xml", b"")
    with pytest.raises(ExtractionFailed) as failure:
        await extract_file(tmp_path / "many.docx", DocumentType.DOCX)
    assert failure.value.reason == "archive rejected: too many entries"


async def test_a_billion_laughs_docx_is_not_expanded(tmp_path: Path) -> None:
    path = files.billion_laughs_docx(tmp_path)
    started = time.monotonic()
    outcome = await text_or_reason(path, DocumentType.DOCX)
    assert time.monotonic() - started < 10
    # libxml2 2.14 refuses the part for its amplification factor; an older one would leave
    # the reference unexpanded (python-docx parses with resolve_entities=False).
    assert outcome == "failed: corrupt or unsupported file" or ("lol" not in outcome and len(outcome) < 100)


async def test_a_docx_external_entity_is_never_read(tmp_path: Path) -> None:
    secret = write(tmp_path, "secret.txt", b"TOP-SECRET-CONTENT")
    doctype = f'<!DOCTYPE w:document [<!ENTITY xxe SYSTEM "file://{secret}">]>'
    body = files.paragraph("visible") + files.paragraph("&xxe;")
    source = files.make_docx(tmp_path / "good.docx")
    replace = {"word/document.xml": files.document_xml(body, doctype)}
    files.rewrite_zip(source, tmp_path / "xxe.docx", replace=replace).close()
    assert await text_or_reason(tmp_path / "xxe.docx", DocumentType.DOCX) == "visible\n"


def entry(name: str, *, size: int = 100, compressed: int = 50, mode: int = 0o100644) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.file_size, info.compress_size = size, compressed
    info.external_attr = mode << 16
    return info


@pytest.mark.parametrize(
    ("entries", "why"),
    [
        ([entry("/etc/passwd")], "unsafe entry name"),
        ([entry("word/../../evil.xml")], "unsafe entry name"),
        ([entry("..\\evil.xml")], "unsafe entry name"),
        ([entry("C:/evil.xml")], "unsafe entry name"),
        ([entry("word/link", mode=0o120777)], "symbolic link entry"),
        ([entry("word/a.xml", size=101 * 1000, compressed=1000)], "compression ratio too high"),
        ([entry("word/a.xml", size=1, compressed=0)], None),
        ([entry("word/a.xml", size=101, compressed=0)], "compression ratio too high"),
        (
            [entry(f"word/{n}.bin", size=10**7, compressed=10**6) for n in range(6)],
            "too large when uncompressed",
        ),
        ([entry(f"word/{n}.bin", size=10**7, compressed=10**6) for n in range(5)], None),
        ([entry("word/document.xml"), entry("word/media/image1.png")], None),
    ],
)
def test_the_archive_checks(entries: list[zipfile.ZipInfo], why: str | None) -> None:
    if why is None:
        check_archive(entries)
    else:
        with pytest.raises(ArchiveRejected) as rejected:
            check_archive(entries)
        assert rejected.value.why == why
        assert why in _extract_child.ARCHIVE_STATUS


def test_every_archive_rejection_has_its_own_exit_status() -> None:
    reasons = [_extract_child.FAILURES[status] for status in _extract_child.ARCHIVE_STATUS.values()]
    assert len(set(reasons)) == len(reasons)
    assert all(reason.startswith("archive rejected: ") for reason in reasons)


async def test_the_wall_clock_timeout_kills_a_child_that_waits(tmp_path: Path, spawned: Spawned) -> None:
    # Opening a FIFO without a writer blocks forever, spending no CPU: only the parent's
    # clock can end it.
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    started = time.monotonic()
    with pytest.raises(ExtractionFailed) as failure:
        await extract_file(fifo, DocumentType.TEXT, timeout_seconds=1)
    assert failure.value.reason == "timed out"
    assert time.monotonic() - started < 5
    assert spawned.processes[0].returncode is not None


async def test_a_cancelled_extraction_kills_its_child(tmp_path: Path, spawned: Spawned) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    task = asyncio.create_task(extract_file(fifo, DocumentType.TEXT))
    await asyncio.wait_for(spawned.started.wait(), timeout=10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert spawned.processes[0].returncode is not None


async def test_text_past_the_cap_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(extract, "MAX_TEXT_BYTES", 1000)
    path = write(tmp_path, "big.txt", b"word " * 1000)
    with pytest.raises(ExtractionFailed) as failure:
        await extract_file(path, DocumentType.TEXT)
    assert failure.value.reason == "extracted text too large"


async def test_a_file_too_large_for_the_memory_limit_fails(tmp_path: Path) -> None:
    path = write(tmp_path, "big.txt", b"word " * (40 * files.MiB // 5))
    with pytest.raises(ExtractionFailed) as failure:
        await extract_text(path, DocumentType.TEXT, timeout_seconds=20, memory_bytes=96 * files.MiB)
    assert failure.value.reason == "memory limit exceeded"


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        (-signal.SIGXCPU, "timed out"),
        (-signal.SIGKILL, "memory limit exceeded"),
        (-signal.SIGSEGV, "corrupt or unsupported file"),
        (1, "corrupt or unsupported file"),
        (4, "memory limit exceeded"),
    ],
)
def test_how_the_child_ended_gives_the_reason(status: int, reason: str) -> None:
    assert extract._reason(status) == reason


def test_the_child_gets_none_of_this_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEEL_SECRET_KEY", "do-not-leak")
    environment = extract._child_environment()
    assert "do-not-leak" not in environment.values()
    assert set(environment) <= {"PYTHONDONTWRITEBYTECODE", "PYTHONPATH"}


@dataclass
class Spawned:
    processes: list[Any] = field(default_factory=list)
    started: asyncio.Event = field(default_factory=asyncio.Event)


@pytest.fixture
def spawned(monkeypatch: pytest.MonkeyPatch) -> Spawned:
    """The extraction children started during the test."""
    spawned = Spawned()
    create: Callable[..., Any] = asyncio.create_subprocess_exec

    async def spy(*args: Any, **kwargs: Any) -> Any:
        process = await create(*args, **kwargs)
        spawned.processes.append(process)
        spawned.started.set()
        return process

    monkeypatch.setattr(asyncio, "create_subprocess_exec", spy)
    return spawned
