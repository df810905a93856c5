"""``make bench``: Keel against the FastAPI app a user would write without it.

Servers are pinned to CPU 0 (``taskset -c 0``) and only one is loaded at a time;
``wrk`` runs pinned to CPU 1, so the load generator never steals the server's core.
Every scenario gets a short warm-up, then the scenarios run round-robin for several
rounds; medians are printed as a table and written to ``bench/results/latest.json``.
Only 127.0.0.1 is ever contacted.

    .venv/bin/python -m bench.run [--duration S] [--rounds N] [--connections N]
                                  [--backends sqlite,postgres] [--quick]
                                  [--only SUBSTRING ...]

``--only`` runs the scenarios whose name contains the substring (any of them when
repeated; case-insensitive), plus the baselines their ratios need.

Backends: ``sqlite`` (a file database in a temporary directory) and ``postgres``
(PostgreSQL at 127.0.0.1:5432 plus Redis at 127.0.0.1:6379; a fresh database
``keel_bench_<random>`` is created and dropped again; skipped when either is down).

On each backend the Keel bench user is registered through the API and then given
10,000 products by ``keel demo seed --email <user>`` (run with the server's own
environment), so the product lists page through a realistic table.

Keel also runs in variants that differ from the normal server only by environment
(see :data:`SERVERS`): with the cache off, with the limiter on memory or off. They
share the backend's database and secret key, so the bench user's credentials work on
all of them; every server is started up front, and only one is under load at a time.
Every Keel server's per-minute budgets are set far above what a run can spend, so the
limiter counts every request but never refuses one.

To add a comparison, append one :class:`Scenario` to :data:`SCENARIOS`, e.g.
``Scenario("keel GET /folders", "keel", "/api/v2/folders", headers=KEEL_BEARER,
baseline="ref GET /items (JWT, 20 rows)")``.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import hashlib
import hmac
import json
import os
import platform
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import httpx

from bench.common import (
    HOST,
    REPO_ROOT,
    WARMUP_SECONDS,
    Backend,
    BenchError,
    Pinning,
    ServerProcess,
    Terminated,
    WrkStats,
    base_env,
    bench_email,
    format_table,
    free_port,
    keel_env,
    keel_executable,
    keel_serve_argv,
    parse_wrk,
    postgres_backend,
    postgres_unavailable,
    prepare,
    redis_answers,
    register,
    run_wrk,
    sqlite_backend,
)

RESULTS_PATH = REPO_ROOT / "bench" / "results" / "latest.json"

DEFAULT_SECONDS = 8
DEFAULT_ROUNDS = 4
QUICK_SECONDS = 3
DEFAULT_CONNECTIONS = 32
SEED_PRODUCTS = 10_000
SEED_TIMEOUT_SECONDS = 600
ALL_BACKENDS = ("sqlite", "postgres")


# --- What to measure -----------------------------------------------------------------


@dataclass(frozen=True)
class Server:
    """One way of starting a server. ``kind`` picks the command line; ``env`` is added
    last. ``redis=False`` starts Keel without the backend's Redis (so with the memory
    limiter and, when enabled, the memory cache)."""

    name: str
    kind: Literal["keel", "ref"]
    ready_path: str
    env: Mapping[str, str] = field(default_factory=dict)
    redis: bool = True


@dataclass(frozen=True)
class Scenario:
    """One wrk run: ``GET path`` on ``server``.

    The path and header values are templates over the run's tokens: ``{ref_token}`` is
    a valid HS256 JWT for the reference app, ``{keel_token}`` and ``{keel_api_key}``
    authenticate the Keel bench user, ``{product_id}`` is one of its seeded products.
    ``baseline`` names the scenario whose requests/s the ratio is computed against
    (same backend); ``backends`` limits where the scenario runs (``None``: everywhere).
    ``seeded`` scenarios need the bench user's products: when seeding failed they are
    reported as failed rather than measured on an empty table.
    """

    name: str
    server: str
    path: str
    headers: tuple[tuple[str, str], ...] = ()
    baseline: str | None = None
    backends: tuple[str, ...] | None = None
    seeded: bool = False

    def target(self, base_url: str, tokens: Mapping[str, str]) -> tuple[str, list[tuple[str, str]]]:
        """The URL and headers with the tokens filled in."""
        headers = [(name, value.format_map(tokens)) for name, value in self.headers]
        return base_url + self.path.format_map(tokens), headers


# Keel as configured normally on the backend (limiter and cache on, both on Redis when
# the backend has it), and variants differing from it only by environment.
KEEL = "keel"
KEEL_NO_CACHE = "keel[cache=off]"
KEEL_MEMORY_LIMITER = "keel[limiter=memory,cache=off]"
KEEL_NO_LIMITER = "keel[limiter=off,cache=off]"
CACHE_OFF = {"KEEL_CACHE_ENABLED": "false"}


SERVERS: dict[str, Server] = {
    server.name: server
    for server in (
        Server(KEEL, "keel", "/health"),
        Server(KEEL_NO_CACHE, "keel", "/health", CACHE_OFF),
        Server(KEEL_MEMORY_LIMITER, "keel", "/health", CACHE_OFF, redis=False),
        Server(KEEL_NO_LIMITER, "keel", "/health", {**CACHE_OFF, "KEEL_RATE_LIMIT_ENABLED": "false"}),
        Server("ref", "ref", "/hello", {"REF_MIDDLEWARE": "none"}),
        Server("ref+base", "ref", "/hello", {"REF_MIDDLEWARE": "base"}),
        Server("ref+asgi", "ref", "/hello", {"REF_MIDDLEWARE": "asgi"}),
    )
}

REF_AUTH = (("Authorization", "Bearer {ref_token}"),)
KEEL_BEARER = (("Authorization", "Bearer {keel_token}"),)
KEEL_API_KEY = (("X-API-Key", "{keel_api_key}"),)

SCENARIOS: list[Scenario] = [
    Scenario("ref GET /hello", "ref", "/hello"),
    Scenario("keel GET /health", "keel", "/health", baseline="ref GET /hello"),
    Scenario(
        "ref GET /hello +2 BaseHTTPMiddleware",
        "ref+base",
        "/hello",
        baseline="ref GET /hello",
        backends=("sqlite",),
    ),
    Scenario(
        "ref GET /hello +2 ASGI middleware",
        "ref+asgi",
        "/hello",
        baseline="ref GET /hello",
        backends=("sqlite",),
    ),
    Scenario("ref GET /items (JWT, 20 rows)", "ref", "/items", headers=REF_AUTH),
    Scenario(
        "keel GET /auth/me (bearer JWT)",
        "keel",
        "/api/v2/auth/me",
        headers=KEEL_BEARER,
        baseline="ref GET /items (JWT, 20 rows)",
    ),
    Scenario(
        "keel GET /auth/me (API key)",
        "keel",
        "/api/v2/auth/me",
        headers=KEEL_API_KEY,
        baseline="ref GET /items (JWT, 20 rows)",
    ),
    Scenario(
        "keel GET /products (page, total)",
        "keel",
        "/api/v2/products?per_page=20",
        headers=KEEL_BEARER,
        baseline="ref GET /items (JWT, 20 rows)",
        seeded=True,
    ),
    Scenario(
        "keel GET /products (cursor)",
        "keel",
        "/api/v2/products?per_page=20&cursor=",
        headers=KEEL_BEARER,
        baseline="ref GET /items (JWT, 20 rows)",
        seeded=True,
    ),
    Scenario(
        "keel GET /products/{id}",
        "keel",
        "/api/v2/products/{product_id}",
        headers=KEEL_BEARER,
        baseline="ref GET /items (JWT, 20 rows)",
        seeded=True,
    ),
    # The cache's effect: the same read with KEEL_CACHE_ENABLED on and off, the limiter
    # as normally configured (memory cache and limiter on SQLite, Redis on PostgreSQL).
    Scenario(
        "keel GET /products/{id} cache=off",
        KEEL_NO_CACHE,
        "/api/v2/products/{product_id}",
        headers=KEEL_BEARER,
        seeded=True,
    ),
    Scenario(
        "keel GET /products/{id} cache=on",
        KEEL,
        "/api/v2/products/{product_id}",
        headers=KEEL_BEARER,
        baseline="keel GET /products/{id} cache=off",
        seeded=True,
    ),
    # The limiter's cost: on Redis, on memory and off, all with the cache off (without
    # Redis the cache would move to memory too). Only where there is a Redis.
    Scenario(
        "keel GET /products/{id} limiter=off, cache=off",
        KEEL_NO_LIMITER,
        "/api/v2/products/{product_id}",
        headers=KEEL_BEARER,
        backends=("postgres",),
        seeded=True,
    ),
    Scenario(
        "keel GET /products/{id} limiter=memory, cache=off",
        KEEL_MEMORY_LIMITER,
        "/api/v2/products/{product_id}",
        headers=KEEL_BEARER,
        baseline="keel GET /products/{id} limiter=off, cache=off",
        backends=("postgres",),
        seeded=True,
    ),
    Scenario(
        "keel GET /products/{id} limiter=redis, cache=off",
        KEEL_NO_CACHE,
        "/api/v2/products/{product_id}",
        headers=KEEL_BEARER,
        baseline="keel GET /products/{id} limiter=off, cache=off",
        backends=("postgres",),
        seeded=True,
    ),
]


def select_scenarios(backend: str, only: Sequence[str] = ()) -> list[Scenario]:
    """The scenarios that run on ``backend``: those whose name contains one of ``only``
    (all when empty), plus the baselines their ratios are taken against."""
    here = {s.name: s for s in SCENARIOS if s.backends is None or backend in s.backends}
    wanted = [name for name in here if not only or any(o.lower() in name.lower() for o in only)]
    chosen: set[str] = set()
    while wanted:
        name = wanted.pop()
        if name in here and name not in chosen:
            chosen.add(name)
            wanted.extend(filter(None, [here[name].baseline]))
    return [scenario for name, scenario in here.items() if name in chosen]


# --- Results -------------------------------------------------------------------------


@dataclass
class Result:
    backend: str
    scenario: str
    server: str
    path: str
    baseline: str | None
    requests_per_sec: float | None = None
    p50_ms: float | None = None
    p99_ms: float | None = None
    requests: int | None = None
    non_2xx_3xx: int = 0
    socket_errors: int = 0
    ratio: float | None = None
    error: str | None = None

    @property
    def notes(self) -> str:
        notes = []
        if self.error:
            notes.append(self.error)
        if self.non_2xx_3xx:
            notes.append(f"{self.non_2xx_3xx} non-2xx/3xx")
        if self.socket_errors:
            notes.append(f"{self.socket_errors} socket errors")
        return "; ".join(notes)

    @property
    def ok(self) -> bool:
        return not self.notes


# --- Running -------------------------------------------------------------------------


@dataclass(frozen=True)
class Options:
    duration: int
    rounds: int
    connections: int
    backends: tuple[str, ...]
    pinning: Pinning
    workdir: Path
    only: tuple[str, ...] = ()


@dataclass(frozen=True)
class RunSecrets:
    """Per backend: the reference app's JWT secret and Keel's secret key (one for all
    Keel variants, so a token issued by one is valid on every other)."""

    ref: str
    keel: str


def hs256_jwt(secret: str, claims: Mapping[str, Any]) -> str:
    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")

    def compact(value: Mapping[str, Any]) -> bytes:
        return json.dumps(value, separators=(",", ":")).encode()

    signing_input = f"{b64(compact({'alg': 'HS256', 'typ': 'JWT'}))}.{b64(compact(claims))}"
    signature = hmac.new(secret.encode(), signing_input.encode("ascii"), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


def server_process(
    server: Server, backend: Backend, port: int, options: Options, run_secrets: RunSecrets
) -> ServerProcess:
    log = options.workdir / f"{backend.name}-{server.name}.log"
    if server.kind == "keel":
        env = keel_env(backend, run_secrets.keel, redis=server.redis)
        env.update(
            KEEL_LOG_LEVEL="INFO",
            KEEL_AUTO_MIGRATE="true",
            KEEL_RATE_LIMIT_ENABLED="true",
            KEEL_CACHE_ENABLED="true",
        )
        argv = keel_serve_argv(port)
        # Outside the repository, so a developer's .env cannot leak into the run.
        cwd = options.workdir
    else:
        env = base_env()
        env.update(REF_DATABASE_URL=backend.database_url, REF_JWT_SECRET=run_secrets.ref)
        argv = [
            sys.executable,
            "-m",
            "uvicorn",
            "bench.reference_app:app",
            "--host",
            HOST,
            "--port",
            str(port),
            "--loop",
            "uvloop",
            "--http",
            "httptools",
            "--no-access-log",
            "--no-server-header",  # as `keel serve`
            "--workers",
            "1",
        ]
        cwd = REPO_ROOT
    env.update(server.env)
    return ServerProcess(f"{backend.name}/{server.name}", [*options.pinning.server, *argv], env, cwd, log)


def wrk(url: str, headers: Sequence[tuple[str, str]], seconds: int, options: Options) -> str:
    return run_wrk(url, headers, seconds=seconds, connections=options.connections, pin=options.pinning.load)


def probe(url: str, headers: Sequence[tuple[str, str]], options: Options) -> None:
    """One request, then a warm-up run: benchmarking a 401 or 404 would be meaningless."""
    response = httpx.get(url, headers=list(headers), timeout=10.0)
    if not response.is_success:
        path = httpx.URL(url).raw_path.decode("ascii", "replace")
        raise BenchError(f"HTTP {response.status_code} on GET {path}: {response.text[:120]}")
    wrk(url, headers, WARMUP_SECONDS, options)


def measure(url: str, headers: Sequence[tuple[str, str]], options: Options) -> WrkStats:
    return parse_wrk(wrk(url, headers, options.duration, options))


def summarise(result: Result, rounds: Sequence[WrkStats]) -> None:
    result.requests_per_sec = statistics.median(stats.requests_per_sec for stats in rounds)
    result.p50_ms = statistics.median(stats.p50_ms for stats in rounds)
    result.p99_ms = statistics.median(stats.p99_ms for stats in rounds)
    result.requests = sum(stats.requests for stats in rounds)
    result.non_2xx_3xx = sum(stats.non_2xx_3xx for stats in rounds)
    result.socket_errors = sum(stats.socket_errors for stats in rounds)


def keel_credentials(base_url: str) -> dict[str, str]:
    """A user with a bearer token and an API key, made through Keel's own API."""
    email = bench_email()
    with httpx.Client(base_url=base_url, timeout=10.0) as client:
        token = register(client, email, secrets.token_urlsafe(18))
        key = client.post(
            "/api/v2/api-keys",
            headers={"Authorization": f"Bearer {token}"},
            json={"name": "bench", "scopes": ["profile:read"]},
        )
        key.raise_for_status()
    return {"keel_email": email, "keel_token": token, "keel_api_key": key.json()["data"]["secret"]}


def seed_products(keel: ServerProcess, email: str, count: int) -> None:
    """``keel demo seed`` into the bench user, with the running server's environment (so
    the same database, settings and secret)."""
    print(f"  seeding {count:,} products for {email}", flush=True)
    started = time.monotonic()
    completed = subprocess.run(
        [keel_executable(), "demo", "seed", "--email", email, "--products", str(count)],
        cwd=keel.cwd,
        env=keel.env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=SEED_TIMEOUT_SECONDS,
        check=False,
    )
    if completed.returncode != 0:
        lines = completed.stderr.strip().splitlines()
        raise BenchError(f"keel demo seed exited with {completed.returncode}: {lines[-1] if lines else ''}")
    print(f"  seeded in {time.monotonic() - started:.1f} s", flush=True)


def a_product_id(base_url: str, token: str) -> str:
    """The id of one product the bench user can read (the newest)."""
    response = httpx.get(
        f"{base_url}/api/v2/products",
        params={"per_page": 1},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10.0,
    )
    response.raise_for_status()
    products = response.json()["data"]
    if not products:
        raise BenchError("the bench user has no products after seeding")
    product_id: str = products[0]["id"]
    return product_id


def keel_configuration(base_url: str) -> str:
    """What a Keel server says its limiter and cache run on (``/health/deep``), so the
    log shows each variant is configured as its name claims."""
    try:
        response = httpx.get(f"{base_url}/health/deep", timeout=10.0)
        body = response.json()
        checks = (body.get("data") or body.get("meta") or {})["checks"]
        return "; ".join(f"{name}: {checks[name]['detail']}" for name in ("ratelimit", "cache"))
    except (httpx.HTTPError, ValueError, KeyError, TypeError, AttributeError) as exc:
        return f"/health/deep did not say how the limiter and cache run ({type(exc).__name__}: {exc})"


def start_servers(
    scenarios: Sequence[Scenario],
    backend: Backend,
    options: Options,
    run_secrets: RunSecrets,
    *,
    processes: dict[str, ServerProcess],
    results: Mapping[str, Result],
) -> dict[str, str]:
    """Start every server the scenarios need; return their base URLs by server name."""
    base_urls: dict[str, str] = {}
    for server_name in dict.fromkeys(s.server for s in scenarios):
        server = SERVERS[server_name]
        port = free_port()
        process = server_process(server, backend, port, options, run_secrets)
        processes[server_name] = process
        print(f"{backend.name}: starting {server.name} on port {port}", flush=True)
        try:
            process.start()
            process.wait_ready(f"http://{HOST}:{port}{server.ready_path}")
            base_urls[server_name] = f"http://{HOST}:{port}"
            if server.kind == "keel":
                print(f"  {keel_configuration(base_urls[server_name])}", flush=True)
        except BenchError as exc:
            print(f"  {exc}", flush=True)
            for scenario in scenarios:
                if scenario.server == server_name:
                    results[scenario.name].error = f"{server.name} did not start"
    return base_urls


Target = tuple[str, tuple[tuple[str, str], ...]]


def probe_all(
    scenarios: Sequence[Scenario],
    base_urls: Mapping[str, str],
    tokens: Mapping[str, str],
    options: Options,
    results: Mapping[str, Result],
) -> dict[str, Target]:
    """Scenario name -> (URL, headers) for every scenario whose first request succeeds.
    Scenarios with the same target (same server, path and headers) are probed once."""
    runnable: dict[str, Target] = {}
    failed: dict[Target, str] = {}
    for scenario in scenarios:
        if scenario.server not in base_urls:
            continue
        if scenario.seeded and "product_id" not in tokens:
            results[scenario.name].error = "products not seeded (see above)"
            continue
        try:
            url, headers = scenario.target(base_urls[scenario.server], tokens)
        except KeyError as exc:
            results[scenario.name].error = f"no {exc} for this run"
            print(f"  {scenario.name}: {results[scenario.name].error}", flush=True)
            continue
        target = (url, tuple(headers))
        if target not in failed and target not in runnable.values():
            try:
                probe(url, headers, options)
            except (BenchError, ValueError, httpx.HTTPError, subprocess.TimeoutExpired) as exc:
                failed[target] = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if target in failed:
            results[scenario.name].error = failed[target]
            print(f"  {scenario.name}: {failed[target]}", flush=True)
            continue
        runnable[scenario.name] = target
    return runnable


def run_rounds(
    runnable: Mapping[str, Target],
    backend: Backend,
    options: Options,
    results: Mapping[str, Result],
) -> dict[str, list[WrkStats]]:
    """Each round runs every distinct target once; scenarios sharing a target (the same
    server configuration, path and headers) share its measurement."""
    rounds: dict[str, list[WrkStats]] = {name: [] for name in runnable}
    names_by_target: dict[Target, list[str]] = {}
    for name, target in runnable.items():
        names_by_target.setdefault(target, []).append(name)
    for index in range(options.rounds):
        print(f"{backend.name}: round {index + 1}/{options.rounds}", flush=True)
        for (url, headers), names in names_by_target.items():
            try:
                stats = measure(url, headers, options)
            except (BenchError, ValueError, subprocess.TimeoutExpired) as exc:
                for name in names:
                    results[name].error = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                continue
            for name in names:
                rounds[name].append(stats)
            print(f"  {' = '.join(names)}: {stats.requests_per_sec:,.0f} req/s", flush=True)
    return rounds


def run_backend(backend: Backend, scenarios: Sequence[Scenario], options: Options) -> list[Result]:
    """Start every server the backend's scenarios need, then run them round-robin.

    Absolute requests/s drift by up to ±30% over minutes on these machines; measured
    side by side they drift together. So each round runs every scenario once (servers
    idle between their turns use no CPU), and a ratio is the median over rounds of
    the per-round ratio to its baseline.
    """
    # Keel's secret key: 48 characters.
    run_secrets = RunSecrets(ref=secrets.token_urlsafe(48), keel=secrets.token_urlsafe(36))
    now = int(time.time())
    tokens = {"ref_token": hs256_jwt(run_secrets.ref, {"sub": "bench", "iat": now, "exp": now + 86_400})}
    results = {s.name: Result(backend.name, s.name, s.server, s.path, s.baseline) for s in scenarios}
    processes: dict[str, ServerProcess] = {}
    rounds: dict[str, list[WrkStats]] = {}
    try:
        base_urls = start_servers(
            scenarios, backend, options, run_secrets, processes=processes, results=results
        )
        # Any Keel server will do (they share the database and the secret key); the
        # normal one when it runs, so seeding sees the configuration readers use.
        keels = [name for name in base_urls if SERVERS[name].kind == "keel"]
        keel = KEEL if KEEL in keels else next(iter(keels), None)
        if keel is not None:
            try:
                tokens.update(keel_credentials(base_urls[keel]))
            except (httpx.HTTPError, KeyError) as exc:
                print(f"  keel credentials: {exc}", flush=True)
        if keel is not None and "keel_email" in tokens and any(s.seeded for s in scenarios):
            try:
                seed_products(processes[keel], tokens["keel_email"], SEED_PRODUCTS)
                tokens["product_id"] = a_product_id(base_urls[keel], tokens["keel_token"])
            except (BenchError, httpx.HTTPError, KeyError, subprocess.TimeoutExpired) as exc:
                print(f"  keel seed: {exc}", flush=True)
        runnable = probe_all(scenarios, base_urls, tokens, options, results)
        rounds = run_rounds(runnable, backend, options, results)
    finally:
        for process in processes.values():
            process.stop()

    for name, measured in rounds.items():
        if measured:
            summarise(results[name], measured)
    for scenario in scenarios:
        own, base = rounds.get(scenario.name, []), rounds.get(scenario.baseline or "", [])
        pairs = [
            mine.requests_per_sec / theirs.requests_per_sec
            for mine, theirs in zip(own, base, strict=False)
            if theirs.requests_per_sec
        ]
        if pairs:
            results[scenario.name].ratio = statistics.median(pairs)
    return [results[s.name] for s in scenarios]


# --- Reporting -----------------------------------------------------------------------


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def table(results: Sequence[Result]) -> str:
    header = ("backend", "scenario", "requests/s", "p50 ms", "p99 ms", "ratio", "notes")
    rows = [
        (
            r.backend,
            r.scenario,
            _fmt(r.requests_per_sec, ",.0f"),
            _fmt(r.p50_ms, ".2f"),
            _fmt(r.p99_ms, ".2f"),
            "-" if r.ratio is None else f"{r.ratio:.2f}x",
            r.notes,
        )
        for r in results
    ]
    return format_table(header, rows, right={2, 3, 4, 5})


def git_commit() -> str | None:
    git = shutil.which("git")
    if git is None:
        return None
    completed = subprocess.run(
        [git, "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, check=False
    )
    if completed.returncode != 0:
        return None
    return completed.stdout.strip() or None


def write_json(results: Sequence[Result], skipped: Mapping[str, str], options: Options) -> Path:
    report = {
        "generated_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "git_commit": git_commit(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "wrk": {
            "threads": 1,
            "connections": options.connections,
            "duration_s": options.duration,
            "rounds": options.rounds,
            "warmup_s": WARMUP_SECONDS,
        },
        "pinning": {
            "server": " ".join(options.pinning.server) or None,
            "load": " ".join(options.pinning.load) or None,
            "note": options.pinning.note,
        },
        "only": list(options.only) or None,
        "skipped": [{"backend": name, "reason": reason} for name, reason in skipped.items()],
        "results": [{**asdict(result), "notes": result.notes} for result in results],
    }
    RESULTS_PATH.parent.mkdir(parents=True, exist_ok=True)
    RESULTS_PATH.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return RESULTS_PATH


# --- Entry point ---------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Benchmark Keel against a plain FastAPI app with wrk.")
    parser.add_argument(
        "--duration", type=int, default=None, help=f"seconds per run (default {DEFAULT_SECONDS})"
    )
    parser.add_argument(
        "--connections", type=int, default=DEFAULT_CONNECTIONS, help="wrk connections (default 32)"
    )
    parser.add_argument(
        "--backends",
        default=",".join(ALL_BACKENDS),
        help="comma-separated subset of: " + ", ".join(ALL_BACKENDS),
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=DEFAULT_ROUNDS,
        help=f"rounds over all scenarios (default {DEFAULT_ROUNDS})",
    )
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_SECONDS} s per run")
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="SUBSTRING",
        help="run only the scenarios whose name contains SUBSTRING (case-insensitive; "
        "repeat for several), plus their baselines",
    )
    args = parser.parse_args(argv)
    args.only = tuple(args.only)
    if args.only and not any(select_scenarios(name, args.only) for name in ALL_BACKENDS):
        parser.error(f"--only: no scenario name contains {' or '.join(map(repr, args.only))}")
    args.backends = tuple(name.strip() for name in args.backends.split(",") if name.strip())
    unknown = sorted(set(args.backends) - set(ALL_BACKENDS))
    if unknown or not args.backends:
        parser.error(
            f"--backends: unknown {', '.join(unknown) or '(empty)'}; choose from {', '.join(ALL_BACKENDS)}"
        )
    if args.duration is None:
        args.duration = QUICK_SECONDS if args.quick else DEFAULT_SECONDS
    if args.duration < 1:
        parser.error("--duration must be at least 1")
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    if args.connections < 1:
        parser.error("--connections must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    pinning = prepare()
    if pinning is None:
        return 2
    results: list[Result] = []
    skipped: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="keel-bench-") as tmp:
        options = Options(
            args.duration, args.rounds, args.connections, args.backends, pinning, Path(tmp), args.only
        )
        print(
            f"wrk -t1 -c{options.connections} -d{options.duration}s x {options.rounds} rounds "
            f"(after a {WARMUP_SECONDS} s warm-up); "
            f"logs in {tmp}",
            flush=True,
        )
        for name in options.backends:
            scenarios = select_scenarios(name, options.only)
            if not scenarios:
                print(f"{name}: no scenario selected", flush=True)
                continue
            if name == "postgres":
                reason = postgres_unavailable() or redis_answers()
                if reason is not None:
                    skipped[name] = reason
                    print(f"postgres: skipped, {reason}", flush=True)
                    continue
                backend_cm = postgres_backend("keel_bench")
            else:
                backend_cm = sqlite_backend(options.workdir)
            with backend_cm as backend:
                results += run_backend(backend, scenarios, options)

    print()
    print(table(results))
    for name, reason in skipped.items():
        print(f"{name}: skipped, {reason}")
    path = write_json(results, skipped, options)
    print(f"\nwrote {path.relative_to(REPO_ROOT)}")
    return 0 if results and all(result.ok for result in results) else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (KeyboardInterrupt, Terminated):
        print("\nbench: interrupted; servers stopped", file=sys.stderr)
        sys.exit(130)
