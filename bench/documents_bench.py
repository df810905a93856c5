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

    .venv/bin/python bench/documents_bench.py [--backends sqlite,postgres] [--quick]
                                              [--pdf-mb MB] [--connections N]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import asyncpg
import httpx

HOST = "127.0.0.1"
POSTGRES_ADMIN = {"host": HOST, "port": 5432, "user": "postgres", "database": "postgres"}
REDIS_PORT = 6379
MB = 1_000_000
# Per-minute budget of every rate-limit tier: never reached in a run.
BUDGET = "1000000"
PASSWORD = "Correct-Horse-Battery-42"
READY_TIMEOUT_SECONDS = 90.0
STOP_TIMEOUT_SECONDS = 10.0
PROCESSING_TIMEOUT_SECONDS = 600.0
FALLBACK_PDF_MB = 2.0
TEXT_MB = 1.0
WARMUP_SECONDS = 2
SERVER_CPU = "0"
LOAD_CPU = "1"
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


def pdf_document(pages: Sequence[bytes]) -> bytes:
    """A PDF with one page per content stream, in Helvetica, with a correct
    cross-reference table. The header comment carries 16 hex digits that
    :func:`unique` replaces, so copies differ without moving any offset."""
    first_page = 4  # 1 catalog, 2 page tree, 3 font; then per page: page, contents
    kids = b" ".join(b"%d 0 R" % (first_page + 2 * index) for index in range(len(pages)))
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [%s] /Count %d >>" % (kids, len(pages)),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    for index, content in enumerate(pages):
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792]"
            b" /Resources << /Font << /F1 3 0 R >> >> /Contents %d 0 R >>" % (first_page + 2 * index + 1)
        )
        objects.append(b"<< /Length %d >>\nstream\n%s\nendstream" % (len(content), content))
    out = bytearray(b"%PDF-1.4\n%" + b"0" * 16 + b"\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


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
    return pdf_document(pages)


def unique(pdf: bytes) -> bytes:
    """The same PDF with a fresh header comment, so each upload is a different file."""
    return pdf[:10] + secrets.token_hex(8).encode() + pdf[26:]


# --- Backends and the server ---------------------------------------------------------


@dataclass(frozen=True)
class Backend:
    name: str
    database_url: str
    env: Mapping[str, str] = field(default_factory=dict)


async def _postgres_admin(statement: str) -> None:
    connection = await asyncpg.connect(**POSTGRES_ADMIN, timeout=3)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


def postgres_unavailable() -> str | None:
    """Why PostgreSQL cannot be used, or None."""
    try:
        asyncio.run(_postgres_admin("SELECT 1"))
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        return f"not reachable at {HOST}:5432 as postgres ({type(exc).__name__}: {exc})"
    return None


def redis_answers() -> bool:
    try:
        with socket.create_connection((HOST, REDIS_PORT), timeout=1.0) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


@contextlib.contextmanager
def sqlite_backend(workdir: Path) -> Iterator[Backend]:
    yield Backend("sqlite", f"sqlite+aiosqlite:///{workdir / 'keel.db'}")


@contextlib.contextmanager
def postgres_backend() -> Iterator[Backend]:
    name = f"keel_benchd_{secrets.token_hex(4)}"
    asyncio.run(_postgres_admin(f'CREATE DATABASE "{name}"'))
    env = {}
    if redis_answers():
        env = {"KEEL_REDIS_URL": f"redis://{HOST}:{REDIS_PORT}/0", "KEEL_REDIS_KEY_PREFIX": f"{name}:"}
    else:
        print(f"  postgres: Redis at {HOST}:{REDIS_PORT} does not answer; running without it", flush=True)
    try:
        yield Backend("postgres", f"postgresql+asyncpg://postgres@{HOST}:5432/{name}", env)
    finally:
        try:
            asyncio.run(_postgres_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
            print(f"warning: could not drop database {name}: {exc}", file=sys.stderr, flush=True)


def pinning() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``taskset -c 0`` for the server and ``-c 1`` for wrk, when the machine allows it."""
    taskset = shutil.which("taskset")
    available = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set()
    if taskset is None or not {int(SERVER_CPU), int(LOAD_CPU)} <= available:
        print("warning: server and wrk are not pinned to CPUs, results are noisier", flush=True)
        return (), ()
    return (taskset, "-c", SERVER_CPU), (taskset, "-c", LOAD_CPU)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


class Server:
    """``keel serve`` in its own session (so its extraction children stop with it)."""

    def __init__(self, backend: Backend, workdir: Path, pin: Sequence[str]) -> None:
        self.port = free_port()
        self.base_url = f"http://{HOST}:{self.port}"
        self.log = workdir / f"{backend.name}-serve.log"
        storage = workdir / f"{backend.name}-storage"
        storage.mkdir()
        env = {key: value for key, value in os.environ.items() if not key.startswith("KEEL_")}
        env.update(
            KEEL_ENV="production",
            KEEL_SECRET_KEY=secrets.token_urlsafe(48),
            KEEL_DATABASE_URL=backend.database_url,
            KEEL_AUTO_MIGRATE="true",
            KEEL_WORKER_IN_PROCESS="true",
            KEEL_STORAGE_DIR=str(storage),
            KEEL_LOG_LEVEL="WARNING",
            KEEL_LOG_FORMAT="json",
            KEEL_RATE_LIMIT_ANONYMOUS_PER_MINUTE=BUDGET,
            KEEL_RATE_LIMIT_USER_PER_MINUTE=BUDGET,
            KEEL_RATE_LIMIT_ADMIN_PER_MINUTE=BUDGET,
            KEEL_QUOTA_PRODUCTS_FREE="0",
            **backend.env,
        )
        keel = Path(sys.executable).parent / "keel"
        self.argv = [*pin, str(keel if keel.exists() else "keel"), "serve", "--host", HOST]
        self.argv += ["--port", str(self.port)]
        self.env = env
        self.cwd = workdir  # outside the repository: no .env file is read
        self.process: subprocess.Popen[bytes] | None = None
        self._log_file: IO[bytes] | None = None

    def __enter__(self) -> Server:
        self._log_file = self.log.open("ab")
        self.process = subprocess.Popen(
            self.argv,
            cwd=self.cwd,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._wait_ready()
        return self

    def __exit__(self, *exc_info: object) -> None:
        process = self.process
        if process is not None and process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        if self._log_file is not None:
            self._log_file.close()

    def _wait_ready(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"keel serve exited with {self.process.returncode}:\n{self.log_tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.base_url}/health", timeout=2.0).status_code == 200:
                    return
            time.sleep(0.1)
        raise SystemExit(f"keel serve not ready after {READY_TIMEOUT_SECONDS:.0f} s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 20) -> str:
        text = self.log.read_text(encoding="utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])


def login(client: httpx.Client) -> str:
    email = f"bench-{secrets.token_hex(4)}@example.com"
    client.post(
        "/api/v2/auth/register", json={"email": email, "password": PASSWORD, "full_name": "Bench"}
    ).raise_for_status()
    response = client.post("/api/v2/auth/login", json={"email": email, "password": PASSWORD})
    response.raise_for_status()
    token: str = response.json()["data"]["access_token"]
    return token


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


@dataclass(frozen=True)
class WrkStats:
    requests_per_sec: float
    p50_ms: float
    p99_ms: float
    requests: int
    non_2xx: int
    socket_errors: int


_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def parse_wrk(output: str) -> WrkStats:
    """Requests/s, p50 and p99 (ms) and non-2xx/3xx count from ``wrk --latency`` output."""
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", output, re.MULTILINE)
    percentiles = {
        float(pct): float(value) * _UNIT_MS[unit]
        for pct, value, unit in re.findall(
            r"^\s*(\d+(?:\.\d+)?)%\s+([\d.]+)(us|ms|s|m)\s*$", output, re.MULTILINE
        )
    }
    if rps is None or 50.0 not in percentiles or 99.0 not in percentiles:
        raise SystemExit(f"unexpected wrk output:\n{output}")
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    requests = re.search(r"^\s*(\d+) requests in ", output, re.MULTILINE)
    sockets = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    return WrkStats(
        requests_per_sec=float(rps.group(1)),
        p50_ms=percentiles[50.0],
        p99_ms=percentiles[99.0],
        requests=int(requests.group(1)) if requests else 0,
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=sum(int(count) for count in sockets.groups()) if sockets else 0,
    )


def wrk(url: str, token: str, seconds: int, connections: int, pin: Sequence[str]) -> str:
    # A 30 s timeout (wrk's default is 2 s), so slow searches are measured, not dropped.
    argv = [*pin, "wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "30s", "--latency"]
    argv += ["-H", f"Authorization: Bearer {token}", url]
    completed = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60, check=False)
    if completed.returncode != 0:
        raise SystemExit(f"wrk exited with {completed.returncode}: {completed.stderr.strip()}")
    return completed.stdout


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
        stats = parse_wrk(wrk(url, token, options.duration, connections, pin))
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
            if stats.non_2xx:
                notes.append(f"{stats.non_2xx} non-2xx")
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


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_args(argv)
    if shutil.which("wrk") is None:
        print("bench: wrk is not installed (apt-get install wrk / brew install wrk)", file=sys.stderr)
        return 2
    if options.quick:
        print("quick run: fewer uploads, a 2,000-chunk corpus and 3 s wrk runs", flush=True)
    pins = pinning()
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
            backend_cm = postgres_backend() if name == "postgres" else sqlite_backend(workdir)
            with backend_cm as backend:
                results.append(run_backend(backend, options, workdir, pins))
    print()
    print(report(results, skipped, options))
    return 0


if __name__ == "__main__":
    sys.exit(main())
