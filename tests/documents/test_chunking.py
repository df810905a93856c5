from __future__ import annotations

import itertools
import random

import pytest

from keel.documents.chunking import Chunk, chunk_text

WORDS = ["a", "the", "cat", "sat", "on", "mat", "chunking", "overlap", "é", "日本", "supercalifragilistic"]
SEPARATORS = [" ", " ", " ", " ", ". ", "! ", "? ", "\n", "\n\n", "\n \n\t", "  ", ", "]


def random_text(rng: random.Random) -> str:
    parts: list[str] = [rng.choice(["", " ", "\n\n"])]
    for _ in range(rng.randrange(0, 120)):
        roll = rng.random()
        if roll < 0.03:
            parts.append("x" * rng.randrange(1, 300))  # a word longer than most sizes
        elif roll < 0.05:
            parts.append(" " * rng.randrange(1, 60))  # a long run of blanks
        else:
            parts.append(rng.choice(WORDS))
        parts.append(rng.choice(SEPARATORS))
    return "".join(parts)


def check_invariants(text: str, chunks: list[Chunk], size: int, overlap: int) -> None:
    if not text.strip():
        assert chunks == []
        return
    assert [chunk.index for chunk in chunks] == list(range(len(chunks)))
    for chunk in chunks:
        assert chunk.text == text[chunk.start : chunk.end]
        assert 0 < len(chunk.text) <= size
        assert not chunk.text.isspace()
    assert chunks[0].start == len(text) - len(text.lstrip())
    assert chunks[-1].end == len(text.rstrip())
    for previous, current in itertools.pairwise(chunks):
        assert current.start > previous.start
        assert current.end > previous.end
        shared = previous.end - current.start
        if shared < 0:  # only ever across blanks too long for any chunk
            assert text[previous.end : current.start].isspace()
        else:
            assert shared <= overlap


@pytest.mark.parametrize("seed", range(300))
def test_chunks_are_bounded_ordered_overlapping_slices_that_cover_the_text(seed: int) -> None:
    rng = random.Random(seed)
    text = random_text(rng)
    size = rng.choice([1, 2, 5, 10, 40, 100, 500, 5000])
    overlap = rng.randrange(0, size)
    check_invariants(text, chunk_text(text, size=size, overlap=overlap), size, overlap)


@pytest.mark.parametrize("seed", range(100))
def test_random_characters_with_no_structure_are_still_covered(seed: int) -> None:
    rng = random.Random(seed)
    text = "".join(rng.choice("ab \n.!?\t") for _ in range(rng.randrange(0, 400)))
    size = rng.randrange(1, 60)
    overlap = rng.randrange(0, size)
    check_invariants(text, chunk_text(text, size=size, overlap=overlap), size, overlap)


def test_gaps_need_a_run_of_blanks_longer_than_a_chunk() -> None:
    rng = random.Random(7)
    for _ in range(200):
        text = " ".join(rng.choice(WORDS) for _ in range(rng.randrange(1, 200)))
        size = rng.randrange(25, 300)  # longer than any word here
        overlap = rng.randrange(0, size)
        chunks = chunk_text(text, size=size, overlap=overlap)
        assert all(b.start <= a.end for a, b in itertools.pairwise(chunks))


@pytest.mark.parametrize("text", ["", " ", "\n\n\t  \n"])
def test_blank_text_has_no_chunks(text: str) -> None:
    assert chunk_text(text, size=10, overlap=2) == []


def test_a_short_text_is_one_chunk_without_its_surrounding_blanks() -> None:
    assert chunk_text("\n  Hello there.  \n", size=100, overlap=10) == [
        Chunk(index=0, start=3, end=15, text="Hello there.")
    ]


def test_paragraphs_are_kept_whole_when_they_fit() -> None:
    first, second = "First paragraph, short.", "Second paragraph, also short."
    text = f"{first}\n\n{second}"
    chunks = chunk_text(text, size=len(second) + 5, overlap=0)
    assert [chunk.text for chunk in chunks] == [f"{first}\n\n", second]


def test_lines_then_sentences_then_words_are_the_next_boundaries() -> None:
    text = "One line here\nSentence one. Sentence two! Sentence three? Done"
    texts = [chunk.text for chunk in chunk_text(text, size=16, overlap=0)]
    assert texts == ["One line here\n", "Sentence one. ", "Sentence two! ", "Sentence three? ", "Done"]


def test_a_word_longer_than_a_chunk_is_cut_hard() -> None:
    texts = [chunk.text for chunk in chunk_text("x" * 25, size=10, overlap=0)]
    assert texts == ["x" * 10, "x" * 10, "x" * 5]


def test_the_overlap_starts_at_a_word() -> None:
    text = "alpha beta gamma delta epsilon zeta eta theta iota kappa"
    chunks = chunk_text(text, size=20, overlap=8)
    for previous, current in itertools.pairwise(chunks):
        assert 0 < previous.end - current.start <= 8
        assert text[current.start - 1] == " "
    assert [chunk.text for chunk in chunks][:3] == [
        "alpha beta gamma ",
        "gamma delta epsilon ",
        "epsilon zeta eta ",
    ]


def test_the_overlap_never_makes_a_chunk_too_long() -> None:
    text = "short " + "y" * 20
    chunks = chunk_text(text, size=20, overlap=10)
    assert [chunk.text for chunk in chunks] == ["short ", "y" * 20]


@pytest.mark.parametrize(("size", "overlap"), [(0, 0), (10, 10), (10, 11), (10, -1)])
def test_impossible_sizes_are_refused(size: int, overlap: int) -> None:
    with pytest.raises(ValueError, match="must be"):
        chunk_text("text", size=size, overlap=overlap)


def test_a_large_text_is_chunked_quickly() -> None:
    rng = random.Random(1)
    text = "\n\n".join(" ".join(rng.choice(WORDS) for _ in range(rng.randrange(5, 200))) for _ in range(3000))
    chunks = chunk_text(text, size=1000, overlap=150)
    assert len(text) > 1_500_000
    check_invariants(text, chunks, 1000, 150)
