"""Streaming multipart: what arrives is hashed and written as it comes, limits hold on
what was received, and no failure leaves a temporary file behind."""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from keel.platform.http.errors import BadRequest, PayloadTooLarge, ValidationFailed
from keel.platform.http.uploads import HEAD_BYTES, UnsupportedUpload, receive_upload, safe_filename

BOUNDARY = "keel-test-boundary-7f3a"
CONTENT_TYPE = f"multipart/form-data; boundary={BOUNDARY}"
FIELDS = frozenset({"title", "product_id"})


def part(name: str, value: bytes, filename: str | None = None) -> bytes:
    disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
    head = f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n"
    if filename:
        head += "Content-Type: application/octet-stream\r\n"
    return head.encode() + b"\r\n" + value + b"\r\n"


def body(*parts: bytes) -> bytes:
    return b"".join(parts) + f"--{BOUNDARY}--\r\n".encode()


async def chunked(data: bytes, size: int = 65536) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def receive(data: bytes | AsyncIterator[bytes], temp: Path, **options: object) -> object:
    stream = chunked(data) if isinstance(data, bytes) else data
    values: dict[str, object] = {"max_file_bytes": 1_000_000, "allowed_fields": FIELDS, **options}
    return await receive_upload(stream, values.pop("content_type", CONTENT_TYPE), temp_path=temp, **values)  # type: ignore[arg-type]


def left_behind(path: Path) -> bool:
    return path.exists()


def contents(path: Path) -> bytes:
    return path.read_bytes()


@pytest.fixture
def temp(tmp_path: Path) -> Path:
    return tmp_path / "upload.part"


async def test_the_file_is_written_hashed_and_its_head_kept(temp: Path) -> None:
    content = os.urandom(300_000)
    form = await receive(
        body(part("title", "Spec ✓".encode()), part("file", content, "../../etc/passwd")), temp
    )

    assert form.fields == {"title": "Spec ✓"}  # type: ignore[attr-defined]
    uploaded = form.file  # type: ignore[attr-defined]
    assert uploaded.path == temp
    assert contents(temp) == content
    assert uploaded.size == len(content)
    assert uploaded.sha256 == hashlib.sha256(content).hexdigest()
    assert uploaded.head == content[:HEAD_BYTES]
    assert uploaded.filename == "passwd"
    assert os.stat(temp).st_mode & 0o777 == 0o600


async def test_a_form_without_a_file_leaves_nothing(temp: Path) -> None:
    form = await receive(body(part("title", b"only")), temp)
    assert form.file is None  # type: ignore[attr-defined]
    assert not left_behind(temp)


async def test_an_oversized_file_is_refused_while_it_streams(temp: Path) -> None:
    chunk = 1024 * 1024
    sent = 0

    async def endless() -> AsyncIterator[bytes]:
        nonlocal sent
        first = part("file", b"", "big.bin")[: -len(b"\r\n")]
        yield first
        for _ in range(200):  # 200 MiB if read to the end
            sent += chunk
            yield b"\0" * chunk

    with pytest.raises(PayloadTooLarge):
        await receive(endless(), temp, max_file_bytes=5 * chunk)
    assert sent <= 6 * chunk  # refused one chunk past the cap
    assert not left_behind(temp)


@pytest.mark.parametrize(
    ("parts", "error", "field"),
    [
        ([part("secret", b"x")], ValidationFailed, "secret"),
        ([part("file", b"a", "a.txt"), part("file", b"b", "b.txt")], ValidationFailed, "file"),
        ([part("title", b"a"), part("title", b"b")], ValidationFailed, "title"),
        ([part("title", b"x" * 5000)], ValidationFailed, "title"),
        ([part("title", b"\xff\xfe")], ValidationFailed, "title"),
        ([part("title", b"t")] + [part(f"f{i}", b"") for i in range(16)], ValidationFailed, None),
    ],
)
async def test_bad_forms_are_refused_and_leave_nothing(
    temp: Path, parts: list[bytes], error: type[Exception], field: str | None
) -> None:
    with pytest.raises(error) as raised:
        await receive(body(*parts), temp)
    if field is not None:
        assert raised.value.field == field  # type: ignore[attr-defined]
    assert not left_behind(temp)


async def test_a_body_cut_short_is_malformed(temp: Path) -> None:
    truncated = body(part("file", b"a" * 10_000, "a.txt"))[:5000]
    with pytest.raises(BadRequest):
        await receive(truncated, temp)
    assert not left_behind(temp)


async def test_a_client_that_goes_away_leaves_nothing(temp: Path) -> None:
    async def vanishing() -> AsyncIterator[bytes]:
        yield part("file", b"a" * 100_000, "a.txt")[:50_000]
        raise ConnectionResetError

    with pytest.raises(ConnectionResetError):
        await receive(vanishing(), temp)
    assert not left_behind(temp)


@pytest.mark.parametrize(
    ("content_type", "error"),
    [
        ("application/json", UnsupportedUpload),
        ("multipart/form-data", BadRequest),
        (None, UnsupportedUpload),
    ],
)
async def test_only_multipart_with_a_boundary(
    temp: Path, content_type: str | None, error: type[Exception]
) -> None:
    with pytest.raises(error):
        await receive(body(part("title", b"x")), temp, content_type=content_type)
    assert not left_behind(temp)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("report.pdf", "report.pdf"),
        ("C:\\Users\\me\\report.pdf", "report.pdf"),
        ("../../etc/passwd", "passwd"),
        ("a\x00b\x1fc.txt", "abc.txt"),
        ("..", "upload"),
        ("", "upload"),
        ("é" * 300, "é" * 255),
    ],
)
def test_file_names_are_labels_not_paths(raw: str, expected: str) -> None:
    assert safe_filename(raw) == expected


async def test_an_existing_empty_temp_file_is_written_in_place(temp: Path) -> None:
    os.close(os.open(temp, os.O_WRONLY | os.O_CREAT, 0o600))  # as a storage hands them out
    form = await receive(body(part("file", b"data", "a.txt")), temp)
    assert contents(form.file.path) == b"data"  # type: ignore[attr-defined]


async def test_a_temp_path_that_is_a_link_is_refused(temp: Path, tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.write_bytes(b"keep")
    os.symlink(target, temp)
    with pytest.raises(OSError, match="symbolic link"):
        await receive(body(part("file", b"data", "a.txt")), temp)
    assert contents(target) == b"keep"
