"""What the benches share: CPU pinning, the servers they start, wrk and its output, the
databases they create and drop, and the accounts they register.

Servers run pinned to CPU 0 and the load (wrk, WebSocket clients) to CPU 1 when the
machine allows it, so the load generator never steals the server's core. Only
127.0.0.1 is ever contacted. Run the benches as modules from the repository root
(``python -m bench.run``), so ``bench`` and ``tests`` are importable.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO

import asyncpg
import httpx

REPO_ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
POSTGRES_PORT = 5432
POSTGRES_USER = "postgres"
REDIS_PORT = 6379
SERVER_CPU = "0"
LOAD_CPU = "1"
READY_TIMEOUT_SECONDS = 90.0
STOP_TIMEOUT_SECONDS = 10.0
WARMUP_SECONDS = 2
# Per-minute budget of every Keel rate-limit tier: never reached in a run (the limiter
# still counts each request, so its cost is measured, but it never answers 429).
KEEL_BENCH_BUDGET = "1000000"


# --- Errors and signals --------------------------------------------------------------


class BenchError(Exception):
    """A server or a tool failed; the message says what to look at."""


class Terminated(BaseException):
    """SIGTERM/SIGHUP arrived: unwind like Ctrl-C so every server is stopped."""


def _on_signal(signum: int, _frame: FrameType | None) -> None:
    raise Terminated(signal.Signals(signum).name)


def stop_servers_on_signals() -> None:
    """SIGTERM and SIGHUP unwind as :class:`Terminated`, so ``finally`` stops servers."""
    for signum in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(signum) is not signal.SIG_IGN:  # respect nohup
            signal.signal(signum, _on_signal)


# --- CPUs and ports ------------------------------------------------------------------


@dataclass(frozen=True)
class Pinning:
    server: tuple[str, ...]
    load: tuple[str, ...]
    note: str | None

    @property
    def load_cpus(self) -> set[int] | None:
        """The CPUs of the load, for ``os.sched_setaffinity`` (None: not pinned)."""
        return {int(LOAD_CPU)} if self.load else None


def cpu_pinning() -> Pinning:
    """``taskset -c 0`` for servers and ``-c 1`` for the load, when the machine allows it."""
    taskset = shutil.which("taskset")
    if taskset is None:
        return Pinning((), (), "taskset not found: servers and wrk are not pinned, results are noisier")
    available = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set()
    if not {int(SERVER_CPU), int(LOAD_CPU)} <= available:
        return Pinning((), (), f"CPUs {SERVER_CPU} and {LOAD_CPU} are not both available: not pinned")
    return Pinning((taskset, "-c", SERVER_CPU), (taskset, "-c", LOAD_CPU), None)


def prepare(*, needs_wrk: bool = True) -> Pinning | None:
    """What every bench does first: check that wrk is there (None, the reason printed,
    when it is needed and missing), stop servers on SIGTERM/SIGHUP, and pin CPUs (a
    warning when they cannot be)."""
    missing = wrk_missing()
    if needs_wrk and missing is not None:
        print(f"bench: {missing}", file=sys.stderr)
        return None
    stop_servers_on_signals()
    pinning = cpu_pinning()
    if pinning.note:
        print(f"warning: {pinning.note}", flush=True)
    return pinning


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def tail(path: Path, lines: int = 20) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


# --- Server processes ----------------------------------------------------------------


class ServerProcess:
    """A server in its own session, so the whole process group can be stopped."""

    def __init__(self, name: str, argv: Sequence[str], env: Mapping[str, str], cwd: Path, log: Path) -> None:
        self.name = name
        self.argv = list(argv)
        self.env = dict(env)
        self.cwd = cwd
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None
        self._log_file: IO[bytes] | None = None

    def start(self) -> None:
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

    def _signal(self, signum: signal.Signals) -> None:
        assert self.process is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signum)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 10 s (or at once on a second Ctrl-C)."""
        process = self.process
        try:
            if process is None:
                return
            if process.poll() is None:
                self._signal(signal.SIGTERM)
                try:
                    process.wait(timeout=STOP_TIMEOUT_SECONDS)
                except subprocess.TimeoutExpired:
                    print(
                        f"  {self.name} did not stop within {STOP_TIMEOUT_SECONDS:.0f} s: killing it",
                        flush=True,
                    )
                    self._signal(signal.SIGKILL)
                    process.wait()
                except (KeyboardInterrupt, Terminated):
                    self._signal(signal.SIGKILL)
                    process.wait()
                    raise
        finally:
            if self._log_file is not None:
                self._log_file.close()
                self._log_file = None

    def wait_ready(self, url: str) -> None:
        """Until ``GET url`` answers 200; :class:`BenchError` when the server exits or
        does not answer within 90 s."""
        assert self.process is not None
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        last_error = "no answer"
        with httpx.Client(timeout=2.0) as client:
            while time.monotonic() < deadline:
                code = self.process.poll()
                if code is not None:
                    raise BenchError(
                        f"{self.name} exited with code {code}; log {self.log}:\n{tail(self.log)}"
                    )
                try:
                    response = client.get(url)
                except httpx.HTTPError as exc:
                    last_error = f"{type(exc).__name__}: {exc}"
                else:
                    if response.status_code == 200:
                        return
                    last_error = f"HTTP {response.status_code}"
                time.sleep(0.1)
        raise BenchError(
            f"{self.name} not ready after {READY_TIMEOUT_SECONDS:.0f} s ({last_error}); "
            f"log {self.log}:\n{tail(self.log)}"
        )


def base_env() -> dict[str, str]:
    """The caller's environment minus any KEEL_*/REF_* settings that would skew the run."""
    return {key: value for key, value in os.environ.items() if not key.startswith(("KEEL_", "REF_"))}


def keel_executable() -> str:
    keel = Path(sys.executable).parent / "keel"
    return str(keel if keel.exists() else "keel")


def keel_serve_argv(port: int) -> list[str]:
    return [keel_executable(), "serve", "--host", HOST, "--port", str(port)]


# --- Backends ------------------------------------------------------------------------


@dataclass(frozen=True)
class Backend:
    """A database, and the Redis that goes with it (``redis_url`` None: none)."""

    name: str
    database_url: str
    redis_url: str | None = None
    keel_env: Mapping[str, str] = field(default_factory=dict)


def keel_env(backend: Backend, secret_key: str, *, redis: bool = True) -> dict[str, str]:
    """What every bench's ``keel serve`` runs with: production, JSON logs, the backend
    (its Redis unless ``redis`` is false), every rate-limit budget out of reach."""
    env = base_env()
    env.update(
        KEEL_ENV="production",
        KEEL_SECRET_KEY=secret_key,
        KEEL_LOG_FORMAT="json",
        KEEL_DATABASE_URL=backend.database_url,
        KEEL_RATE_LIMIT_ANONYMOUS_PER_MINUTE=KEEL_BENCH_BUDGET,
        KEEL_RATE_LIMIT_USER_PER_MINUTE=KEEL_BENCH_BUDGET,
        KEEL_RATE_LIMIT_ADMIN_PER_MINUTE=KEEL_BENCH_BUDGET,
    )
    if backend.redis_url and redis:
        env["KEEL_REDIS_URL"] = backend.redis_url
    env.update(backend.keel_env)
    return env


def port_answers(port: int, timeout: float = 1.0) -> str | None:
    """``None`` when 127.0.0.1:port accepts a connection, else why not."""
    try:
        with socket.create_connection((HOST, port), timeout=timeout):
            return None
    except OSError as exc:
        return f"{HOST}:{port} not reachable ({exc.strerror or exc})"


def redis_answers(timeout: float = 1.0) -> str | None:
    """``None`` when Redis at 127.0.0.1:6379 answers PING, else why not."""
    try:
        with socket.create_connection((HOST, REDIS_PORT), timeout=timeout) as sock:
            sock.sendall(b"PING\r\n")
            reply = sock.recv(64)
    except OSError as exc:
        return f"Redis at {HOST}:{REDIS_PORT} not reachable ({exc.strerror or exc})"
    if not reply.startswith(b"+PONG"):
        return f"Redis at {HOST}:{REDIS_PORT} answered {reply[:40]!r} to PING"
    return None


async def postgres_admin(statement: str) -> None:
    connection = await asyncpg.connect(
        host=HOST, port=POSTGRES_PORT, user=POSTGRES_USER, database="postgres", timeout=5
    )
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


def postgres_unavailable() -> str | None:
    """``None`` when PostgreSQL at 127.0.0.1:5432 takes the ``postgres`` user, else why not."""
    reason = port_answers(POSTGRES_PORT)
    if reason is not None:
        return f"PostgreSQL at {reason}"
    try:
        asyncio.run(postgres_admin("SELECT 1"))
    except Exception as exc:
        return f"cannot connect to PostgreSQL as {POSTGRES_USER!r}: {exc}"
    return None


@contextlib.contextmanager
def sqlite_backend(workdir: Path, filename: str = "bench.db") -> Iterator[Backend]:
    yield Backend("sqlite", f"sqlite+aiosqlite:///{workdir / filename}")


@contextlib.contextmanager
def postgres_backend(prefix: str, *, redis: bool = True) -> Iterator[Backend]:
    """A fresh database ``<prefix>_<random>``, dropped afterwards; with ``redis``, the
    local Redis with keys namespaced by the database's name."""
    name = f"{prefix}_{secrets.token_hex(4)}"
    asyncio.run(postgres_admin(f'CREATE DATABASE "{name}"'))
    try:
        yield Backend(
            "postgres",
            f"postgresql+asyncpg://{POSTGRES_USER}@{HOST}:{POSTGRES_PORT}/{name}",
            redis_url=f"redis://{HOST}:{REDIS_PORT}/0" if redis else None,
            keel_env={"KEEL_REDIS_KEY_PREFIX": f"{name}:"} if redis else {},
        )
    finally:
        try:
            asyncio.run(postgres_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        except Exception as exc:
            print(f"warning: could not drop database {name}: {exc}", file=sys.stderr, flush=True)


async def migrate(database_url: str) -> None:
    """Keel's migrations, applied from this process (as ``keel db upgrade`` does)."""
    from keel.platform.db.engine import create_engine
    from keel.platform.db.migrate import upgrade
    from keel.settings import Settings

    engine = create_engine(Settings(env="test", database_url=database_url, _env_file=None))
    try:
        await upgrade(engine)
    finally:
        await engine.dispose()


# --- wrk -----------------------------------------------------------------------------


def wrk_missing() -> str | None:
    """``None`` when wrk is on the PATH, else how to install it."""
    if shutil.which("wrk") is not None:
        return None
    return (
        "wrk is not installed. Install it with `apt-get install wrk` (Debian/Ubuntu) "
        "or `brew install wrk` (macOS)."
    )


@dataclass(frozen=True)
class WrkStats:
    requests_per_sec: float
    p50_ms: float
    p99_ms: float
    requests: int
    non_2xx_3xx: int
    socket_errors: int


_TIME_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}
_RPS_RE = re.compile(r"^Requests/sec:\s+([\d.]+)", re.MULTILINE)
_PERCENTILE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)%\s+([\d.]+)(us|ms|s|m|h)\s*$", re.MULTILINE)
_REQUESTS_RE = re.compile(r"^\s*(\d+) requests in ", re.MULTILINE)
_NON_2XX_RE = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")
_SOCKET_RE = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")


def to_ms(value: str, unit: str) -> float:
    return float(value) * _TIME_UNIT_MS[unit]


def parse_wrk(output: str) -> WrkStats:
    """Requests/s, p50/p99 (ms) and error counts from ``wrk --latency`` output."""
    rps = _RPS_RE.search(output)
    if rps is None:
        raise ValueError("no 'Requests/sec' line in wrk output")
    percentiles = {float(pct): to_ms(value, unit) for pct, value, unit in _PERCENTILE_RE.findall(output)}
    if 50.0 not in percentiles or 99.0 not in percentiles:
        raise ValueError("no 50%/99% latency distribution in wrk output (was --latency passed?)")
    requests = _REQUESTS_RE.search(output)
    non_2xx = _NON_2XX_RE.search(output)
    sockets = _SOCKET_RE.search(output)
    return WrkStats(
        requests_per_sec=float(rps.group(1)),
        p50_ms=percentiles[50.0],
        p99_ms=percentiles[99.0],
        requests=int(requests.group(1)) if requests else 0,
        non_2xx_3xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=sum(int(count) for count in sockets.groups()) if sockets else 0,
    )


def run_wrk(
    url: str,
    headers: Sequence[tuple[str, str]],
    *,
    seconds: int,
    connections: int,
    pin: Sequence[str],
    timeout: str | None = None,
) -> str:
    """``wrk -t1 --latency`` (pinned with ``pin``); its output. ``timeout``: wrk's
    per-request timeout (its default is 2 s)."""
    argv = [*pin, "wrk", "-t1", f"-c{connections}", f"-d{seconds}s"]
    if timeout is not None:
        argv += ["--timeout", timeout]
    argv.append("--latency")
    for name, value in headers:
        argv += ["-H", f"{name}: {value}"]
    argv.append(url)
    completed = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60, check=False)
    if completed.returncode != 0:
        raise BenchError(f"wrk exited with {completed.returncode}: {completed.stderr.strip()}")
    return completed.stdout


# --- Accounts ------------------------------------------------------------------------


def bench_email(domain: str = "example.com") -> str:
    return f"bench-{secrets.token_hex(4)}@{domain}"


def register(client: httpx.Client, email: str, password: str) -> str:
    """Register ``email`` through Keel's API and log in: the access token."""
    client.post(
        "/api/v2/auth/register", json={"email": email, "password": password, "full_name": "Bench"}
    ).raise_for_status()
    response = client.post("/api/v2/auth/login", json={"email": email, "password": password})
    response.raise_for_status()
    token: str = response.json()["data"]["access_token"]
    return token


# --- Reporting -----------------------------------------------------------------------


def format_table(header: Sequence[str], rows: Sequence[Sequence[str]], right: set[int]) -> str:
    """Columns padded to their widest cell; ``right``: the indexes aligned right."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            cell.rjust(widths[i]) if i in right else cell.ljust(widths[i]) for i, cell in enumerate(cells)
        ).rstrip()

    rule = "  ".join("-" * width for width in widths)
    return "\n".join([line(header), rule, *(line(row) for row in rows)])
