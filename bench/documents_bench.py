"""``make bench-documents``: document upload, processing and search, against ``keel serve``.

For each backend (SQLite file in a temporary directory; PostgreSQL at 127.0.0.1:5432 in
a fresh database ``keel_benchd_<random>`` that is dropped afterwards, with Redis at
127.0.0.1:6379 when it answers, as ``make bench`` does) one ``keel serve`` is started
with its in-process job worker, every rate-limit budget far out of reach and migrations
applied at startup. A user is registered and logged in through the API; then:

1. Upload throughput: a generated, valid PDF of about 10 MB (many pages of text content
   streams, a correct cross-reference table) is POSTed to ``/api/v2/documents`` (default
   asynchronous processing, so 202) several times, one after another; each figure is
   the file's size over the wall time of the request as seen by this client. Median.
2. Processing time per MB: after each of those uploads, and after each upload of a
   ~1 MB plain-text document, ``GET /api/v2/documents/{id}`` is polled until the
   document is ``ready`` or ``failed``; the processing time is the server's
   ``processed_at - created_at`` (so it includes the job's pickup, extraction, chunking
   and storing the chunks), divided by the file's size. Documents are processed one
   at a time: the next upload starts only when the previous document is done. A
   failed document (e.g. extraction over ``KEEL_EXTRACTION_TIMEOUT_SECONDS``) is
   reported with its error, and then a smaller PDF is measured too.
3. Search latency: English-like text (a word list drawn with a seeded random, common
   words far more often than rare ones) is uploaded ~1 MB at a time with
   ``async_processing=false`` until the documents hold at least 10,000 chunks; then
   ``wrk --latency`` loads ``GET /api/v2/search?q=...&per_page=20`` with the bearer
   token, for two common words (nearly every chunk matches, so ranking is the cost)
   and for a rare word, each at one connection (the latency of one search alone) and
   at ``--connections`` (throughput; latency then includes queueing). The documents of
   steps 1 and 2 are deleted first, so the corpus is all that is searched.

The server is pinned to CPU 0 and wrk to CPU 1 (``taskset``) when both are available,
as in ``make bench``. Only 127.0.0.1 is contacted.

    .venv/bin/python -m bench.documents_bench [--backends sqlite,postgres] [--quick]
                                              [--pdf-mb MB] [--connections N]
"""

from __future__ import annotations

import argparse
import contextlib
import random
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from tests.documents.files import pdf_pages

from bench.common import (
    HOST,
    REDIS_PORT,
    WARMUP_SECONDS,
    Backend,
    BenchError,
    ServerProcess,
    WrkStats,
    bench_email,
    free_port,
    keel_env,
    keel_serve_argv,
    parse_wrk,
    postgres_backend,
    postgres_unavailable,
    prepare,
    redis_answers,
    register,
    run_wrk,
    sqlite_backend,
    tail,
)

MB = 1_000_000
PASSWORD = "Correct-Horse-Battery-42"
PROCESSING_TIMEOUT_SECONDS = 600.0
FALLBACK_PDF_MB = 2.0
TEXT_MB = 1.0
COMMON_QUERY = "market system"
RARE_QUERY = "zeppelin"

# Function words, drawn for about 45% of the text (PostgreSQL's search drops most).
FUNCTION_TEXT = (
    "the of and to a in that is was for on with as by at from it this be are or an "
    "which not but have has had were their its they we can will more also there all "
    "one been into other than some when these may only after most such"
)
FUNCTION_WORDS = FUNCTION_TEXT.split()
# Content words, most common first: the n-th is drawn with weight 1/n, so the first
# few appear in nearly every chunk and the last in a few percent of them.
CONTENT_TEXT = (
    "market system company report product customer service price data process team year "
    "value growth quality support network design energy research policy project model "
    "region account contract order supply demand budget office manager program record "
    "standard review result change level period plan risk cost share rate income sale "
    "industry factory material delivery vendor invoice payment balance capital asset "
    "revenue margin forecast quarter segment channel partner brand retail wholesale "
    "freight storage warehouse inventory shipment carrier route schedule capacity "
    "machine engine battery sensor circuit signal voltage current panel module device "
    "software platform interface database server cluster backup archive license "
    "patent trademark audit compliance regulation statute tribunal council committee "
    "election candidate campaign ballot harbor bridge tunnel railway highway airport "
    "terminal vessel cargo container crane forest river valley mountain island coast "
    "desert glacier climate weather rainfall drought harvest orchard vineyard cattle "
    "poultry dairy grain cotton timber copper nickel silver granite marble ceramic "
    "textile leather garment fabric needle thread button pocket collar sleeve saddle "
    "lantern compass telescope microscope prism crystal quartz amber ivory velvet "
    "tapestry mosaic fresco sculpture pottery violin trumpet cello harp accordion "
    "orchestra ballet opera sonnet ballad fable legend chronicle almanac atlas "
    "lighthouse windmill observatory aqueduct citadel monastery pavilion gazebo "
    "pelican flamingo walrus narwhal albatross chameleon armadillo platypus zeppelin"
)
CONTENT_WORDS = CONTENT_TEXT.split()
CONTENT_WEIGHTS = [1.0 / rank for rank in range(1, len(CONTENT_WORDS) + 1)]


# --- Generated documents -------------------------------------------------------------


class EnglishLike:
    """Sentences of English-like prose from a seeded random."""

    def __init__(self, seed: int) -> None:
        self.random = random.Random(seed)

    def words(self, count: int) -> list[str]:
        function = self.random.choices(FUNCTION_WORDS, k=count)
        content = self.random.choices(CONTENT_WORDS, weights=CONTENT_WEIGHTS, k=count)
        return [f if self.random.random() < 0.45 else c for f, c in zip(function, content, strict=True)]

    def sentences(self, size: int) -> Iterator[str]:
        """Sentences (each ending in '. ') until about ``size`` characters in all."""
        produced = 0
        words = self.words(size // 5)
        position = 0
        while produced < size:
            length = self.random.randint(6, 20)
            if position + length > len(words):
                words, position = self.words(size // 5 + length), 0
            chosen = words[position : position + length]
            position += length
            if length > 10 and self.random.random() < 0.5:
                chosen[length // 2] += ","
            sentence = " ".join(chosen).capitalize() + ". "
            produced += len(sentence)
            yield sentence

    def text(self, size: int) -> str:
        """Paragraphs of about ``size`` characters (ASCII, so also about ``size`` bytes)."""
        paragraphs: list[str] = []
        current: list[str] = []
        for sentence in self.sentences(size):
            current.append(sentence)
            if len(current) >= self.random.randint(3, 8):
                paragraphs.append("".join(current).rstrip())
                current = []
        paragraphs.append("".join(current).rstrip())
        return "\n\n".join(paragraphs) + "\n"


def text_pdf(size: int, seed: int) -> bytes:
    """A PDF of about ``size`` bytes: pages of 60 lines of prose each."""
    prose = EnglishLike(seed)
    line_chars, lines_per_page = 95, 60
    page_bytes = lines_per_page * (line_chars + 8)
    pages: list[bytes] = []
    line: list[str] = []
    length = 0
    lines: list[bytes] = []
    for word in prose.words(size // 5):
        if length + len(word) + 1 > line_chars:
            lines.append(b"(%s) Tj T*" % " ".join(line).encode("ascii"))
            line, length = [], 0
            if len(lines) == lines_per_page:
                pages.append(b"BT /F1 10 Tf 12 TL 54 750 Td\n" + b"\n".join(lines) + b"\nET")
                lines = []
                if (len(pages) + 1) * page_bytes > size:
                    break
        line.append(word)
        length += len(word) + 1
    # 16 hex digits in the header comment, which :func:`unique` replaces.
    return pdf_pages(pages, comment=b"0" * 16)


def unique(pdf: bytes) -> bytes:
    """The same PDF with a fresh header comment, so each upload is a different file."""
    return pdf[:10] + secrets.token_hex(8).encode() + pdf[26:]


# --- The server ----------------------------------------------------------------------


class Server:
    """``keel serve`` with its in-process job worker, in its own session (so its
    extraction children stop with it)."""

    def __init__(self, backend: Backend, workdir: Path, pin: Sequence[str]) -> None:
        self.port = free_port()
        self.base_url = f"http://{HOST}:{self.port}"
        self.log = workdir / f"{backend.name}-serve.log"
        storage = workdir / f"{backend.name}-storage"
        storage.mkdir()
        env = keel_env(backend, secrets.token_urlsafe(48))
        env.update(
            KEEL_AUTO_MIGRATE="true",
            KEEL_WORKER_IN_PROCESS="true",
            KEEL_STORAGE_DIR=str(storage),
            KEEL_LOG_LEVEL="WARNING",
            KEEL_QUOTA_PRODUCTS_FREE="0",
        )
        # Outside the repository: no .env file is read.
        self.process = ServerProcess(
            "keel serve", [*pin, *keel_serve_argv(self.port)], env, workdir, self.log
        )

    def __enter__(self) -> Server:
        self.process.start()
        try:
            self.process.wait_ready(f"{self.base_url}/health")
        except BenchError as exc:
            self.process.stop()
            raise SystemExit(str(exc)) from None
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.process.stop()

    def log_tail(self, lines: int = 20) -> str:
        return tail(self.log, lines)


def login(client: httpx.Client) -> str:
    return register(client, bench_email(), PASSWORD)


# --- Measurements --------------------------------------------------------------------


@dataclass(frozen=True)
class Upload:
    seconds: float
    document: dict[str, Any]


def upload(
    client: httpx.Client, name: str, content: bytes, media_type: str, *, synchronous: bool = False
) -> Upload:
    data = {"async_processing": "false"} if synchronous else {}
    started = time.perf_counter()
    response = client.post("/api/v2/documents", files={"file": (name, content, media_type)}, data=data)
    seconds = time.perf_counter() - started
    expected = 201 if synchronous else 202
    if response.status_code != expected:
        raise SystemExit(f"upload of {name}: HTTP {response.status_code}: {response.text[:300]}")
    document: dict[str, Any] = response.json()["data"]
    return Upload(seconds, document)


def wait_processed(client: httpx.Client, document_id: str, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = client.get(f"/api/v2/documents/{document_id}")
        response.raise_for_status()
        document: dict[str, Any] = response.json()["data"]
        if document["status"] in ("ready", "failed"):
            return document
        time.sleep(0.2)
    raise SystemExit(f"document {document_id} not processed within {timeout:.0f} s")


def processing_seconds(document: Mapping[str, Any]) -> float:
    created = datetime.fromisoformat(document["created_at"])
    processed = datetime.fromisoformat(document["processed_at"])
    return (processed - created).total_seconds()


@dataclass
class Processing:
    """One kind of document: upload speeds and processing times, one per upload."""

    label: str
    size: int
    upload_mb_s: list[float] = field(default_factory=list)
    s_per_mb: list[float] = field(default_factory=list)
    statuses: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    document_ids: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Sample:
    """A kind of document to upload: ``make`` returns a fresh file each time."""

    label: str
    filename: str
    media_type: str
    make: Callable[[], bytes]


def measure_kind(client: httpx.Client, sample: Sample, repetitions: int) -> Processing:
    """Upload ``sample`` ``repetitions`` times, each time waiting until it is processed."""
    label, make = sample.label, sample.make
    content: bytes = make()
    result = Processing(label, len(content))
    for _ in range(repetitions):
        content = make()
        done = upload(client, sample.filename, content, sample.media_type)
        result.upload_mb_s.append(len(content) / MB / done.seconds)
        document = wait_processed(client, done.document["id"], PROCESSING_TIMEOUT_SECONDS)
        result.statuses.append(document["status"])
        result.document_ids.append(document["id"])
        result.s_per_mb.append(processing_seconds(document) / (len(content) / MB))
        if document["status"] == "failed":
            result.errors.append(str(document["error"]))
        print(
            f"    {label}: upload {result.upload_mb_s[-1]:7.1f} MB/s, {document['status']} after "
            f"{processing_seconds(document):6.2f} s ({document['chunk_count']} chunks)"
            + (f": {document['error']}" if document["status"] == "failed" else ""),
            flush=True,
        )
    return result


def build_corpus(client: httpx.Client, chunks: int, seed: int) -> tuple[int, int, float]:
    """Documents of ~1 MB uploaded with synchronous processing until they hold at least
    ``chunks`` chunks: (documents, chunks, seconds)."""
    total = documents = 0
    started = time.perf_counter()
    while total < chunks:
        text = EnglishLike(seed + documents).text(int(TEXT_MB * MB)).encode("ascii")
        done = upload(client, f"corpus-{documents}.txt", text, "text/plain", synchronous=True)
        if done.document["status"] != "ready":
            raise SystemExit(f"corpus document failed: {done.document['error']}")
        total += done.document["chunk_count"]
        documents += 1
    return documents, total, time.perf_counter() - started


def wrk(url: str, token: str, seconds: int, connections: int, pin: Sequence[str]) -> WrkStats:
    # A 30 s timeout (wrk's default is 2 s), so slow searches are measured, not dropped.
    headers = [("Authorization", f"Bearer {token}")]
    try:
        output = run_wrk(url, headers, seconds=seconds, connections=connections, pin=pin, timeout="30s")
        return parse_wrk(output)
    except (BenchError, ValueError) as exc:
        raise SystemExit(str(exc)) from None


@dataclass(frozen=True)
class SearchResult:
    query: str
    hits: int
    connections: int
    stats: WrkStats


def measure_search(
    client: httpx.Client,
    server: Server,
    query: str,
    *,
    options: argparse.Namespace,
    pin: Sequence[str],
    failures: list[str],
) -> list[SearchResult]:
    """wrk at one connection (the latency of one search alone) and at
    ``--connections`` (throughput; latency then includes waiting for the server)."""
    token = client.headers["Authorization"].removeprefix("Bearer ")
    params = {"q": query, "per_page": "20"}
    response = client.get("/api/v2/search", params=params)
    if response.status_code != 200:
        # Recorded and reported, not raised: the rest of the run still says something.
        failure = f"search {query!r}: HTTP {response.status_code}"
        print(f"    {failure}\n{server.log_tail()}", flush=True)
        failures.append(failure)
        return []
    hits = int(response.json()["meta"]["pagination"]["total"])
    url = str(httpx.URL(f"{server.base_url}/api/v2/search", params=params))
    results = []
    for connections in sorted({1, options.connections}):
        wrk(url, token, WARMUP_SECONDS, connections, pin)
        stats = wrk(url, token, options.duration, connections, pin)
        print(
            f"    search {query!r} ({hits:,} hits) -c{connections}: {stats.requests_per_sec:8.1f} req/s, "
            f"p50 {stats.p50_ms:7.1f} ms, p99 {stats.p99_ms:7.1f} ms",
            flush=True,
        )
        results.append(SearchResult(query, hits, connections, stats))
    return results


@dataclass
class BackendResult:
    name: str
    kinds: list[Processing] = field(default_factory=list)
    corpus: tuple[int, int, float] = (0, 0, 0.0)
    searches: list[SearchResult] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


def run_backend(
    backend: Backend, options: argparse.Namespace, workdir: Path, pins: tuple[Sequence[str], ...]
) -> BackendResult:
    server_pin, load_pin = pins
    result = BackendResult(backend.name)
    with (
        Server(backend, workdir, server_pin) as server,
        httpx.Client(base_url=server.base_url, timeout=600.0) as client,
    ):
        token = login(client)
        client.headers["Authorization"] = f"Bearer {token}"
        pdf = text_pdf(int(options.pdf_mb * MB), seed=1)
        large = Sample(f"PDF {len(pdf) / MB:.1f} MB", "report.pdf", "application/pdf", lambda: unique(pdf))
        result.kinds.append(measure_kind(client, large, options.repetitions))
        if result.kinds[-1].errors:
            small_pdf = text_pdf(int(FALLBACK_PDF_MB * MB), seed=2)
            small = Sample(
                f"PDF {len(small_pdf) / MB:.1f} MB", "small.pdf", "application/pdf", lambda: unique(small_pdf)
            )
            result.kinds.append(measure_kind(client, small, options.repetitions))
        seeds = iter(range(1000, 2000))
        text = Sample(
            f"text {TEXT_MB:.1f} MB",
            "notes.txt",
            "text/plain",
            lambda: EnglishLike(next(seeds)).text(int(TEXT_MB * MB)).encode("ascii"),
        )
        result.kinds.append(measure_kind(client, text, options.repetitions))
        # The search corpus is the only content searched: the documents above are deleted.
        for kind in result.kinds:
            for document_id in kind.document_ids:
                client.delete(f"/api/v2/documents/{document_id}").raise_for_status()
        result.corpus = build_corpus(client, options.chunks, seed=10_000)
        documents, chunks, seconds = result.corpus
        print(f"    corpus: {documents} documents, {chunks:,} chunks in {seconds:.1f} s", flush=True)
        for query in (COMMON_QUERY, RARE_QUERY):
            result.searches.extend(
                measure_search(client, server, query, options=options, pin=load_pin, failures=result.failures)
            )
    return result


def report(results: Sequence[BackendResult], skipped: Mapping[str, str], options: argparse.Namespace) -> str:
    lines = [
        "Upload and processing (median of "
        f"{options.repetitions}; processing = processed_at - created_at, one document at a time)",
        f"{'backend':9} {'document':14} {'upload MB/s':>11} {'processing s/MB':>15}  status",
    ]
    for backend in results:
        for kind in backend.kinds:
            statuses = ", ".join(
                f"{count} {status}" for status, count in sorted(_count(kind.statuses).items())
            )
            lines.append(
                f"{backend.name:9} {kind.label:14} {statistics.median(kind.upload_mb_s):11.1f} "
                f"{statistics.median(kind.s_per_mb):15.2f}  {statuses}"
            )
            lines += [f"{'':25}failed: {error}" for error in sorted(set(kind.errors))]
    lines += [
        "",
        f"Search GET /api/v2/search?q=...&per_page=20 (wrk -t1 -d{options.duration}s --latency)",
        f"{'backend':9} {'chunks':>7} {'q':16} {'hits':>7} {'conns':>5} "
        f"{'req/s':>8} {'p50 ms':>8} {'p99 ms':>8}",
    ]
    for backend in results:
        for search in backend.searches:
            stats = search.stats
            notes = [f"{stats.requests} requests"]
            if stats.non_2xx_3xx:
                notes.append(f"{stats.non_2xx_3xx} non-2xx")
            if stats.socket_errors:
                notes.append(f"{stats.socket_errors} socket errors/timeouts")
            note = "  " + ", ".join(notes)
            lines.append(
                f"{backend.name:9} {backend.corpus[1]:7,} {search.query:16} {search.hits:7,} "
                f"{search.connections:5} {stats.requests_per_sec:8.1f} "
                f"{stats.p50_ms:8.1f} {stats.p99_ms:8.1f}{note}"
            )
    lines += [f"{backend.name}: failed: {failure}" for backend in results for failure in backend.failures]
    lines += [f"{name}: skipped, {reason}" for name, reason in skipped.items()]
    return "\n".join(lines)


def _count(values: Sequence[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for value in values:
        counts[value] = counts.get(value, 0) + 1
    return counts


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backends", default="sqlite,postgres", help="comma-separated: sqlite,postgres")
    parser.add_argument("--quick", action="store_true", help="2 uploads each, 2,000 chunks, 3 s wrk runs")
    parser.add_argument("--pdf-mb", type=float, default=10.0, help="size of the large PDF (default 10)")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections (default 16)")
    args = parser.parse_args(argv)
    args.backends = tuple(name.strip() for name in args.backends.split(",") if name.strip())
    unknown = set(args.backends) - {"sqlite", "postgres"}
    if unknown:
        parser.error(f"unknown backend(s): {', '.join(sorted(unknown))}")
    args.repetitions = 2 if args.quick else 5
    args.chunks = 2_000 if args.quick else 10_000
    args.duration = 3 if args.quick else 10
    return args


@contextlib.contextmanager
def postgres() -> Iterator[Backend]:
    """A fresh PostgreSQL database, with Redis when it answers (as ``make bench``)."""
    redis = redis_answers() is None
    if not redis:
        print(f"  postgres: Redis at {HOST}:{REDIS_PORT} does not answer; running without it", flush=True)
    with postgres_backend("keel_benchd", redis=redis) as backend:
        yield backend


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_args(argv)
    pinning = prepare()
    if pinning is None:
        return 2
    if options.quick:
        print("quick run: fewer uploads, a 2,000-chunk corpus and 3 s wrk runs", flush=True)
    pins = (pinning.server, pinning.load)
    results: list[BackendResult] = []
    skipped: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="keel-benchd-") as tmp:
        workdir = Path(tmp)
        for name in options.backends:
            if name == "postgres" and (reason := postgres_unavailable()) is not None:
                skipped[name] = reason
                print(f"postgres: skipped, {reason}", flush=True)
                continue
            print(f"{name}:", flush=True)
            backend_cm = postgres() if name == "postgres" else sqlite_backend(workdir, "keel.db")
            with backend_cm as backend:
                results.append(run_backend(backend, options, workdir, pins))
    print()
    print(report(results, skipped, options))
    return 0


if __name__ == "__main__":
    sys.exit(main())
