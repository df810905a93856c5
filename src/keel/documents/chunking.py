"""Text cut into overlapping chunks of at most ``size`` characters, at the most natural
boundary that fits: paragraph, then line, then sentence, then word, then anywhere.

Hand-written rather than taken from LangChain's ``RecursiveCharacterTextSplitter``: that
one pulls in a framework, and it rebuilds chunk text from pieces, so it cannot say where
a chunk came from. Here every chunk is a slice of the source —
``chunk.text == source[chunk.start:chunk.end]`` — which lets a search hit point back
into the document.

How:

1. The text is split into *pieces*, each at most ``size``: a span longer than ``size``
   is cut after each separator of the current level (the separator stays with the piece
   before it), and any piece still too long is cut at the next level down.
2. Pieces are packed greedily, in order, into chunks of at most ``size``.
3. Each chunk after the first starts up to ``overlap`` characters before the previous
   one ends, at the earliest word start in that window (mid-word only when the window
   holds no word start), and never so early that its first piece would not fit.

So consecutive chunks share ``previous.end - next.start`` characters, between 0 and
``overlap``. The whitespace around the whole text belongs to no chunk, and a chunk that
would hold only whitespace (a run of blanks longer than ``size``) is left out — the
only case where two consecutive chunks leave a gap between them, and the gap is blank.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

# Each level's separators; a cut falls right after one.
_LEVELS: Final = (
    re.compile(r"\n[^\S\n]*\n\s*"),  # paragraphs: a blank line (and what follows it)
    re.compile(r"\n\s*"),  # lines
    re.compile(r"[.!?]\s+"),  # sentences
    re.compile(r"\s+"),  # words
)

Span = tuple[int, int]


@dataclass(frozen=True, slots=True)
class Chunk:
    index: int
    start: int
    end: int
    text: str


def chunk_text(text: str, *, size: int, overlap: int) -> list[Chunk]:
    """``text`` in chunks of at most ``size`` characters, each sharing up to ``overlap``
    characters with the previous one; ``[]`` when ``text`` is blank."""
    if size < 1:
        raise ValueError("size must be at least 1")
    if not 0 <= overlap < size:
        raise ValueError("overlap must be at least 0 and less than size")
    stripped = text.strip()
    if not stripped:
        return []
    start = text.index(stripped[0])
    end = start + len(stripped)
    pieces = _split(text, start, end, size, 0)
    spans = _pack(text, pieces, size, overlap)
    kept = [(s, e) for s, e in spans if not text[s:e].isspace()]
    return [Chunk(index=i, start=s, end=e, text=text[s:e]) for i, (s, e) in enumerate(kept)]


def _split(text: str, start: int, end: int, size: int, level: int) -> list[Span]:
    """``[start, end)`` as consecutive spans of at most ``size``, cut at the coarsest
    separators that do the job."""
    if end - start <= size:
        return [(start, end)]
    if level == len(_LEVELS):
        return [(at, min(at + size, end)) for at in range(start, end, size)]
    cuts = [m.end() for m in _LEVELS[level].finditer(text, start, end) if m.end() < end]
    if not cuts:
        return _split(text, start, end, size, level + 1)
    pieces: list[Span] = []
    for piece_start, piece_end in zip([start, *cuts], [*cuts, end], strict=True):
        pieces.extend(_split(text, piece_start, piece_end, size, level + 1))
    return pieces


def _pack(text: str, pieces: list[Span], size: int, overlap: int) -> list[Span]:
    chunks: list[Span] = []
    chunk_start, chunk_end = pieces[0]
    for piece_start, piece_end in pieces[1:]:
        if piece_end - chunk_start <= size:
            chunk_end = piece_end
            continue
        chunks.append((chunk_start, chunk_end))
        earliest = max(chunk_end - overlap, piece_end - size, chunk_start + 1)
        chunk_start, chunk_end = _overlap_start(text, earliest, piece_start), piece_end
    chunks.append((chunk_start, chunk_end))
    return chunks


def _overlap_start(text: str, earliest: int, latest: int) -> int:
    """The first word start in ``[earliest, latest]``, else ``earliest`` (``latest`` is
    where the next piece begins: starting there shares nothing)."""
    for at in range(earliest, latest):
        if not text[at].isspace() and (at == 0 or text[at - 1].isspace()):
            return at
    return earliest if earliest < latest else latest
