"""Multipart uploads parsed as they stream: the file goes to disk chunk by chunk, hashed
on the way, and the size cap is enforced on what has arrived, not on what was declared.

FastAPI's ``UploadFile`` (Starlette's form parser) reads the whole body into a spooled
file before the handler runs: an oversized upload would be received in full before it
could be refused, and the hash would need a second pass. Here python-multipart's
push parser is fed ``request.stream()`` directly; its callbacks collect what a chunk
carried and the chunk is written (in a thread) before the next one is read.

Any failure — too large, malformed, the client gone — removes the temporary file
before the error propagates, so nothing stays behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
import unicodedata
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from keel.platform.http.errors import BadRequest, KeelError, PayloadTooLarge, ValidationFailed

if TYPE_CHECKING:
    from python_multipart.multipart import MultipartCallbacks

HEAD_BYTES = 4096
MAX_FIELD_BYTES = 4096
MAX_PARTS = 16
# A part's headers are short; python-multipart's own caps refuse more.
MAX_PART_HEADERS = 8
_UNSAFE_FILENAME = re.compile(r"[\x00-\x1f\x7f/\\]")


class UnsupportedUpload(KeelError):
    code = "UNSUPPORTED_MEDIA_TYPE"
    status_code = 415
    default_message = "Send the upload as multipart/form-data."


@dataclass(slots=True)
class UploadedFile:
    """The file part, complete on disk: the caller moves or removes ``path``."""

    path: Path
    size: int
    sha256: str
    filename: str
    head: bytes  # the first HEAD_BYTES, for type detection


@dataclass(slots=True)
class UploadForm:
    fields: dict[str, str]
    file: UploadedFile | None


def safe_filename(raw: str, default: str = "upload") -> str:
    """The client's file name reduced to a harmless label: no path, no control
    characters, NFC, at most 255 characters. Never used to build a path."""
    name = unicodedata.normalize("NFC", raw).replace("\\", "/").rsplit("/", 1)[-1]
    name = _UNSAFE_FILENAME.sub("", name).strip().strip(".")
    return name[:255] or default


@dataclass(slots=True)
class _Part:
    headers: dict[bytes, bytes] = field(default_factory=dict)
    name: str = ""
    filename: str | None = None
    data: bytearray = field(default_factory=bytearray)


class _Receiver:
    """Collects what the parser's callbacks report for one request."""

    def __init__(self, *, file_field: str, allowed_fields: frozenset[str], max_file_bytes: int) -> None:
        self.file_field = file_field
        self.allowed_fields = allowed_fields
        self.max_file_bytes = max_file_bytes
        self.fields: dict[str, str] = {}
        self.parts = 0
        self.part = _Part()
        self.header_name = bytearray()
        self.header_value = bytearray()
        self.file_name: str | None = None
        self.file_seen = False
        self.file_done = False
        self.file_size = 0
        self.pending: list[bytes] = []  # file bytes the current chunk carried

    # --- python-multipart callbacks (synchronous) ---

    def on_part_begin(self) -> None:
        self.parts += 1
        if self.parts > MAX_PARTS:
            raise ValidationFailed(f"At most {MAX_PARTS} form parts.", field="body")
        self.part = _Part()

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self.header_name += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self.header_value += data[start:end]

    def on_header_end(self) -> None:
        self.part.headers[bytes(self.header_name).lower()] = bytes(self.header_value)
        self.header_name.clear()
        self.header_value.clear()

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self.part.headers.get(b"content-disposition", b""))
        name = options.get(b"name")
        if name is None:
            raise BadRequest("Every form part needs a Content-Disposition name.", field="body")
        self.part.name = name.decode("utf-8", "replace")
        if self.part.name == self.file_field:
            if self.file_seen:
                raise ValidationFailed("Send one file.", field=self.file_field)
            self.file_seen = True
            raw = options.get(b"filename", b"")
            self.file_name = safe_filename(raw.decode("utf-8", "replace"))
        elif self.part.name not in self.allowed_fields:
            raise ValidationFailed(f"Unknown form field {self.part.name[:64]!r}.", field=self.part.name[:64])
        elif self.part.name in self.fields:
            raise ValidationFailed("Send each field once.", field=self.part.name)

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self.part.name == self.file_field:
            self.file_size += end - start
            if self.file_size > self.max_file_bytes:
                raise PayloadTooLarge(f"The file exceeds the limit of {self.max_file_bytes} bytes.")
            self.pending.append(data[start:end])
            return
        if len(self.part.data) + end - start > MAX_FIELD_BYTES:
            raise ValidationFailed(f"Form fields are at most {MAX_FIELD_BYTES} bytes.", field=self.part.name)
        self.part.data += data[start:end]

    def on_part_end(self) -> None:
        if self.part.name == self.file_field:
            self.file_done = True
            return
        try:
            self.fields[self.part.name] = self.part.data.decode("utf-8")
        except UnicodeDecodeError:
            raise ValidationFailed("Form fields must be UTF-8.", field=self.part.name) from None

    def callbacks(self) -> MultipartCallbacks:
        return {
            "on_part_begin": self.on_part_begin,
            "on_part_data": self.on_part_data,
            "on_part_end": self.on_part_end,
            "on_header_field": self.on_header_field,
            "on_header_value": self.on_header_value,
            "on_header_end": self.on_header_end,
            "on_headers_finished": self.on_headers_finished,
        }


def _boundary(content_type: str | None) -> bytes:
    media_type, options = parse_options_header(content_type or "")
    if media_type != b"multipart/form-data":
        raise UnsupportedUpload(field="Content-Type")
    boundary = options.get(b"boundary")
    if not boundary or len(boundary) > 70:
        raise BadRequest("multipart/form-data needs a boundary of 1..70 characters.", field="Content-Type")
    return boundary


def _discard(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def _write(file: IO[bytes], digest: hashlib._Hash, head: bytearray, chunks: list[bytes]) -> None:
    for chunk in chunks:
        if len(head) < HEAD_BYTES:
            head += chunk[: HEAD_BYTES - len(head)]
        digest.update(chunk)
        file.write(chunk)


async def receive_upload(
    stream: AsyncIterator[bytes],
    content_type: str | None,
    *,
    temp_path: Path,
    max_file_bytes: int,
    file_field: str = "file",
    allowed_fields: frozenset[str] = frozenset(),
) -> UploadForm:
    """Parse a multipart body from ``stream``; the file part is written to ``temp_path``.

    413 as soon as the file exceeds ``max_file_bytes`` (at most one network chunk past
    it has been read), 415 for another content type, 400 for a malformed body, 422 for
    an unknown, repeated or oversized field or a second file. On any failure
    ``temp_path`` does not exist afterwards.
    """
    receiver = _Receiver(file_field=file_field, allowed_fields=allowed_fields, max_file_bytes=max_file_bytes)
    parser = MultipartParser(
        _boundary(content_type),
        receiver.callbacks(),
        max_header_count=MAX_PART_HEADERS,
    )
    digest = hashlib.sha256()
    head = bytearray()
    # The path may exist already, empty (a storage's fresh temp file); never through a link.
    fd = os.open(temp_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "wb") as file:
            async for chunk in stream:
                try:
                    parser.write(chunk)
                except MultipartParseError:
                    raise BadRequest("The multipart body is malformed.", field="body") from None
                if receiver.pending:
                    chunks, receiver.pending = receiver.pending, []
                    await asyncio.to_thread(_write, file, digest, head, chunks)
            try:
                parser.finalize()
            except MultipartParseError:
                raise BadRequest("The multipart body ended early.", field="body") from None
            if receiver.file_seen and not receiver.file_done:
                raise BadRequest("The multipart body ended early.", field="body")
            await asyncio.to_thread(file.flush)
    except BaseException:
        # Synchronously, so a cancelled request cannot skip it.
        _discard(temp_path)
        raise
    if not receiver.file_seen:
        _discard(temp_path)
        return UploadForm(receiver.fields, None)
    uploaded = UploadedFile(
        path=temp_path,
        size=receiver.file_size,
        sha256=digest.hexdigest(),
        filename=receiver.file_name or "upload",
        head=bytes(head),
    )
    return UploadForm(receiver.fields, uploaded)
