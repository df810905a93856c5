"""Documents the tests upload, made here (with the makers of ``tests.documents.files``):
no binary fixture is committed."""

from __future__ import annotations

from pathlib import Path

from tests.documents.files import make_docx, text_pdf

PARAGRAPH = (
    "Keel stores each uploaded document by the hash of its bytes. Its text is extracted "
    "in a separate process and cut into overlapping chunks for search. "
)
LONG_TEXT = "\n\n".join(f"Section {n}. {PARAGRAPH * 2}" for n in range(6))


def word_docx(directory: Path) -> bytes:
    """A Word document written by python-docx (its text includes "Revenue grew")."""
    return make_docx(directory / "report.docx").read_bytes()


# An ELF executable's header, then padding: what a renamed binary starts with.
ELF = b"\x7fELF\x02\x01\x01\x00" + bytes(8) + b"\x02\x00\x3e\x00" + bytes(200)

__all__ = ["ELF", "LONG_TEXT", "text_pdf", "word_docx"]
