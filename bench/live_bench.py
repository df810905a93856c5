"""``make bench-live``: what request metrics cost, and how fast an alert reaches
WebSocket clients.

1. ``metrics``: ``wrk -t1 -c32 --latency`` against ``GET /health`` on two ``keel serve``
   processes (SQLite, as in ``make bench``) that differ only by
   ``KEEL_REQUEST_METRICS`` (``true``: every request is recorded in the Prometheus
   metrics and the per-minute request statistics; ``false``: neither). The two are
   loaded alternately, one at a time, for several rounds; medians are printed, and the
   cost per request is the median over rounds of ``1/rps(on) - 1/rps(off)`` (server
   time, as the server's core is saturated), beside the difference of the medians of
   p50 (which at 32 connections includes queueing).
2. ``fanout``: one ``keel serve`` (SQLite, memory broker, its in-process job worker)
   and ``--clients`` WebSocket clients on ``/api/v2/ws/alerts`` in this process,
   authenticated as an admin with the ``["bearer", token]`` subprotocols. Open alerts
   are inserted beforehand; then each is resolved through
   ``POST /api/v2/alerts/{id}/resolve``, one after another. The resolution commits an
   ``alert.resolved`` event in the outbox; the ``events.dispatch`` job publishes it to
   the broker, which queues it on every socket. Latency is from sending that request
   to a client receiving the ``alert`` frame, for every client and alert.
3. ``replicas``: two ``keel serve`` processes on one fresh PostgreSQL database
   (migrated from here, dropped afterwards), first sharing Redis
   (``KEEL_REALTIME_BACKEND=redis``), then PostgreSQL ``LISTEN/NOTIFY``
   (``KEEL_REALTIME_BACKEND=postgres``, no Redis at all). Replica A runs the job worker
   (``KEEL_WORKER_IN_PROCESS=true``), B none, so the dispatch job always runs on A and
   the alert crosses the broker to reach B. Alerts are resolved through A; one client
   on B is measured, and one on A for reference.

Servers are pinned to CPU 0 (``taskset``) and this process, which runs wrk and the
clients, to CPU 1, when both are available. The clients record receive times with
``time.perf_counter`` in the process that sends the triggers; the table also shows how
busy this process was between a trigger and its last delivery, so a saturated client
would show. Only 127.0.0.1 is contacted.

    .venv/bin/python -m bench.live_bench [--parts metrics,fanout,replicas] [--quick]
                                         [--duration S] [--rounds N] [--clients N]
                                         [--alerts N] [--replica-alerts N]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import math
import os
import resource
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import orjson
import uvloop
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from bench.common import (
    HOST,
    WARMUP_SECONDS,
    Backend,
    BenchError,
    Pinning,
    ServerProcess,
    Terminated,
    WrkStats,
    bench_email,
    format_table,
    free_port,
    keel_env,
    keel_serve_argv,
    migrate,
    parse_wrk,
    postgres_backend,
    postgres_unavailable,
    prepare,
    redis_answers,
    register,
    run_wrk,
    sqlite_backend,
)

PARTS = ("metrics", "fanout", "replicas")
ADMIN_DOMAIN = "bench-admin.example"
PASSWORD = "Correct-Horse-Battery-42"
CONNECTIONS = 32
DEFAULT_SECONDS = 10
DEFAULT_ROUNDS = 6
DEFAULT_CLIENTS = 1000
DEFAULT_ALERTS = 20
DEFAULT_REPLICA_ALERTS = 50
# Sockets opened at once while connecting the clients.
CONNECT_BATCH = 50
# Pause between two triggers, once every client has the previous alert.
FANOUT_SPACING_SECONDS = 0.25
REPLICA_SPACING_SECONDS = 0.1
DELIVERY_TIMEOUT_SECONDS = 10.0
PING = orjson.dumps({"type": "ping"})


# --- Numbers -------------------------------------------------------------------------


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest rank: the smallest value with at least ``pct`` % of them at or below it."""
    ordered = sorted(values)
    return ordered[max(math.ceil(pct / 100 * len(ordered)) - 1, 0)]


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


# --- Servers -------------------------------------------------------------------------


@dataclass
class Servers:
    """Every server started so far, stopped together however the run ends."""

    pinning: Pinning
    workdir: Path
    secret_key: str = field(default_factory=lambda: secrets.token_urlsafe(48))
    started: list[ServerProcess] = field(default_factory=list)

    def start(self, name: str, backend: Backend, env: Mapping[str, str], *, redis: bool = False) -> str:
        """``keel serve`` on ``backend`` with ``env`` on top of the bench's settings;
        its base URL once ``/health`` answers."""
        port = free_port()
        environment = keel_env(backend, self.secret_key, redis=redis)
        environment.update(
            KEEL_LOG_LEVEL="INFO",
            KEEL_ADMIN_EMAIL_DOMAINS=ADMIN_DOMAIN,
            KEEL_RATE_LIMIT_ENABLED="true",
            **env,
        )
        log = self.workdir / f"{name}.log"
        process = ServerProcess(
            name, [*self.pinning.server, *keel_serve_argv(port)], environment, self.workdir, log
        )
        self.started.append(process)
        print(f"  starting {name} on port {port}", flush=True)
        process.start()
        process.wait_ready(f"http://{HOST}:{port}/health")
        return f"http://{HOST}:{port}"

    def stop(self) -> None:
        while self.started:
            self.started.pop().stop()


@contextlib.contextmanager
def servers(pinning: Pinning, workdir: Path) -> Iterator[Servers]:
    running = Servers(pinning, workdir)
    try:
        yield running
    finally:
        running.stop()


def admin_token(base_url: str) -> str:
    """An admin (its e-mail is in ``KEEL_ADMIN_EMAIL_DOMAINS``) registered through the API."""
    with httpx.Client(base_url=base_url, timeout=10.0) as client:
        return register(client, bench_email(ADMIN_DOMAIN), PASSWORD)


async def create_alerts(database_url: str, count: int) -> list[str]:
    """``count`` open alerts, inserted as rows: Keel creates alerts only when a rule's
    condition has held for its ``for``, which a bench cannot wait for."""
    from sqlalchemy.ext.asyncio import AsyncSession

    from keel.alerts.models import Severity
    from keel.models import Alert  # every model, so the foreign keys resolve
    from keel.platform.db.base import utcnow
    from keel.platform.db.engine import create_engine
    from keel.settings import Settings

    engine = create_engine(Settings(env="test", database_url=database_url, _env_file=None))
    run = secrets.token_hex(4)
    try:
        async with AsyncSession(engine) as session:
            now = utcnow()
            alerts = [
                Alert(
                    rule="bench_probe",
                    fingerprint=hashlib.sha256(f"bench_probe {run} {n}".encode()).hexdigest(),
                    labels={"probe": str(n)},
                    severity=Severity.WARNING.value,
                    summary=f"Bench alert {n}",
                    context={},
                    count=1,
                    last_value=1.0,
                    started_at=now,
                    last_seen_at=now,
                )
                for n in range(count)
            ]
            session.add_all(alerts)
            await session.flush()
            ids = [str(alert.id) for alert in alerts]
            await session.commit()
        return ids
    finally:
        await engine.dispose()


# --- 1. Metrics cost -----------------------------------------------------------------


@dataclass
class MetricsCost:
    on: list[WrkStats] = field(default_factory=list)
    off: list[WrkStats] = field(default_factory=list)
    errors: int = 0

    @property
    def cost_us(self) -> float:
        """Median over rounds of the extra server time per request, in µs."""
        return statistics.median(
            1e6 / on.requests_per_sec - 1e6 / off.requests_per_sec
            for on, off in zip(self.on, self.off, strict=True)
        )

    @property
    def p50_delta_ms(self) -> float:
        return statistics.median(s.p50_ms for s in self.on) - statistics.median(s.p50_ms for s in self.off)


def measure_metrics(options: argparse.Namespace, pinning: Pinning, workdir: Path) -> MetricsCost:
    """The two servers loaded alternately (on, off; then off, on; …), so a drift of the
    machine affects both alike."""
    print(f"metrics: GET /health, KEEL_REQUEST_METRICS true vs false, {options.rounds} rounds", flush=True)
    result = MetricsCost()
    with sqlite_backend(workdir, "metrics.db") as backend, servers(pinning, workdir) as running:
        urls = {
            recording: running.start(
                f"keel[request_metrics={str(recording).lower()}]",
                backend,
                {"KEEL_AUTO_MIGRATE": "true", "KEEL_REQUEST_METRICS": str(recording).lower()},
            )
            + "/health"
            for recording in (True, False)
        }

        def load(url: str, seconds: int) -> WrkStats:
            output = run_wrk(url, (), seconds=seconds, connections=CONNECTIONS, pin=pinning.load)
            return parse_wrk(output)

        for url in urls.values():
            load(url, WARMUP_SECONDS)
        for index in range(options.rounds):
            order = (True, False) if index % 2 == 0 else (False, True)
            for recording in order:
                stats = load(urls[recording], options.duration)
                (result.on if recording else result.off).append(stats)
                result.errors += stats.non_2xx_3xx + stats.socket_errors
            print(
                f"  round {index + 1}/{options.rounds}: on {result.on[-1].requests_per_sec:,.0f} req/s, "
                f"off {result.off[-1].requests_per_sec:,.0f} req/s",
                flush=True,
            )
    return result


def metrics_table(result: MetricsCost) -> str:
    rows = [
        (
            "true" if runs is result.on else "false",
            f"{statistics.median(s.requests_per_sec for s in runs):,.0f}",
            f"{statistics.median(s.p50_ms for s in runs):.2f}",
            f"{statistics.median(s.p99_ms for s in runs):.2f}",
        )
        for runs in (result.on, result.off)
    ]
    table = format_table(("KEEL_REQUEST_METRICS", "requests/s", "p50 ms", "p99 ms"), rows, right={1, 2, 3})
    notes = [
        f"cost per request: {result.cost_us:.1f} µs of server time "
        f"(median over {len(result.on)} rounds of 1/rps(on) - 1/rps(off))",
        f"p50 difference: {result.p50_delta_ms * 1000:+,.0f} µs "
        f"(at {CONNECTIONS} connections, so with queueing)",
    ]
    if result.errors:
        notes.append(f"{result.errors} non-2xx responses or socket errors")
    return "\n".join([table, *notes])


def metrics_summary(result: MetricsCost, options: argparse.Namespace) -> str:
    on = statistics.median(s.requests_per_sec for s in result.on)
    off = statistics.median(s.requests_per_sec for s in result.off)
    return (
        f"Request metrics (Prometheus + request statistics) cost {result.cost_us:.1f} µs per request "
        f"on GET /health: {on:,.0f} vs {off:,.0f} req/s ({on / off - 1:+.1%}), "
        f"p50 {result.p50_delta_ms * 1000:+,.0f} µs (wrk -t1 -c{CONNECTIONS}, "
        f"medians of {len(result.on)} alternating {options.duration} s rounds, server on one core)."
    )


# --- WebSocket clients ---------------------------------------------------------------


class Audience:
    """WebSocket clients of one server: when each received each alert, by alert id."""

    def __init__(self, label: str, ws_url: str, token: str) -> None:
        self.label = label
        self.ws_url = ws_url
        self.token = token
        self.sockets: list[ClientConnection] = []
        self.received: dict[str, list[float]] = {}
        self._awaited: dict[str, asyncio.Event] = {}
        self._readers: list[asyncio.Task[None]] = []

    async def connect(self, count: int) -> None:
        """``count`` sockets, each subscribed (its ping answered) before this returns."""
        for start in range(0, count, CONNECT_BATCH):
            opened = await asyncio.gather(*(self._open() for _ in range(min(CONNECT_BATCH, count - start))))
            self.sockets.extend(opened)
        self._readers = [asyncio.create_task(self._read(ws)) for ws in self.sockets]

    async def _open(self) -> ClientConnection:
        ws = await connect(
            self.ws_url,
            subprotocols=[Subprotocol("bearer"), Subprotocol(self.token)],
            open_timeout=60,
            ping_interval=None,
        )
        # The server subscribes a socket right after accepting it: a pong proves it has.
        await ws.send(PING)
        async with asyncio.timeout(30):
            while orjson.loads(await ws.recv())["type"] != "pong":
                pass
        return ws

    async def _read(self, ws: ClientConnection) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for raw in ws:
                at = time.perf_counter()
                message = orjson.loads(raw)
                if message["type"] == "alert":
                    self._record(str(message["data"]["alert"]["id"]), at)

    def _record(self, alert_id: str, at: float) -> None:
        times = self.received.setdefault(alert_id, [])
        times.append(at)
        awaited = self._awaited.get(alert_id)
        if awaited is not None and len(times) >= len(self.sockets):
            awaited.set()

    def expect(self, alert_id: str) -> asyncio.Event:
        """Set once every socket has received ``alert_id``."""
        self._awaited[alert_id] = asyncio.Event()
        return self._awaited[alert_id]

    async def close(self) -> None:
        await asyncio.gather(*(ws.close() for ws in self.sockets), return_exceptions=True)
        for reader in self._readers:
            reader.cancel()
        await asyncio.gather(*self._readers, return_exceptions=True)


@dataclass
class Deliveries:
    """One audience's receive latencies over a series of triggers."""

    label: str
    clients: int
    alerts: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    # Share of the window (trigger to the last delivery) this process was on the CPU.
    client_busy: list[float] = field(default_factory=list)

    @property
    def expected(self) -> int:
        return self.clients * self.alerts

    @property
    def delivered(self) -> int:
        return len(self.latencies_ms)


@dataclass
class Triggers:
    """The resolve requests' own response times."""

    response_ms: list[float] = field(default_factory=list)


async def resolve_each(
    trigger_url: str,
    token: str,
    alert_ids: Sequence[str],
    audiences: Sequence[Audience],
    *,
    spacing: float,
) -> tuple[list[Deliveries], Triggers]:
    """Resolve the alerts one at a time; after each, wait until every client has it (or
    10 s have passed), then pause ``spacing`` seconds."""
    results = [Deliveries(audience.label, len(audience.sockets)) for audience in audiences]
    triggers = Triggers()
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=trigger_url, headers=headers, timeout=30.0) as http:
        for alert_id in alert_ids:
            everyone = [audience.expect(alert_id) for audience in audiences]
            cpu = time.process_time()
            sent = time.perf_counter()
            response = await http.post(f"/api/v2/alerts/{alert_id}/resolve")
            triggers.response_ms.append((time.perf_counter() - sent) * 1000)
            if response.status_code != 200:
                raise BenchError(f"resolve {alert_id}: HTTP {response.status_code}: {response.text[:200]}")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(DELIVERY_TIMEOUT_SECONDS):
                    await asyncio.gather(*(event.wait() for event in everyone))
            busy = time.process_time() - cpu
            for audience, result in zip(audiences, results, strict=True):
                times = audience.received.get(alert_id, [])
                result.alerts += 1
                result.latencies_ms += [(at - sent) * 1000 for at in times]
                if times:
                    result.client_busy.append(busy / max(max(times) - sent, 1e-9))
            await asyncio.sleep(spacing)
    return results, triggers


def raise_open_file_limit(needed: int) -> None:
    """Sockets are files: this process holds every client's, and the servers (started
    from here, so inheriting the limit) their ends."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        wanted = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
        if wanted < needed:
            print(
                f"warning: open files limited to {wanted} (hard limit); fewer clients may connect", flush=True
            )


def ws_url(base_url: str) -> str:
    return base_url.replace("http://", "ws://", 1) + "/api/v2/ws/alerts"


def deliveries_table(rows: Sequence[tuple[str, Deliveries]]) -> str:
    header = (
        "setup",
        "clients on",
        "clients",
        "alerts",
        "delivered",
        "p50 ms",
        "p99 ms",
        "max ms",
        "client busy",
    )
    cells = []
    for setup, result in rows:
        measured = result.latencies_ms
        cells.append(
            (
                setup,
                result.label,
                f"{result.clients:,}",
                str(result.alerts),
                f"{result.delivered:,}/{result.expected:,}",
                _fmt(statistics.median(measured) if measured else None, ".2f"),
                _fmt(percentile(measured, 99) if measured else None, ".2f"),
                _fmt(max(measured) if measured else None, ".2f"),
                _fmt(statistics.median(result.client_busy) if result.client_busy else None, ".0%"),
            )
        )
    return format_table(header, cells, right={2, 3, 4, 5, 6, 7, 8})


# --- 2. Fan-out on one process -------------------------------------------------------


@dataclass
class Fanout:
    deliveries: Deliveries
    triggers: Triggers


async def _fanout(base_url: str, database_url: str, options: argparse.Namespace) -> Fanout:
    token = await asyncio.to_thread(admin_token, base_url)
    alert_ids = await create_alerts(database_url, options.alerts)
    audience = Audience("the server", ws_url(base_url), token)
    started = time.perf_counter()
    await audience.connect(options.clients)
    print(
        f"  {len(audience.sockets):,} clients connected in {time.perf_counter() - started:.1f} s", flush=True
    )
    try:
        (deliveries,), triggers = await resolve_each(
            base_url, token, alert_ids, [audience], spacing=FANOUT_SPACING_SECONDS
        )
    finally:
        await audience.close()
    return Fanout(deliveries, triggers)


def measure_fanout(options: argparse.Namespace, pinning: Pinning, workdir: Path) -> Fanout:
    print(
        f"fanout: {options.clients:,} WebSocket clients on one keel serve, {options.alerts} alerts",
        flush=True,
    )
    raise_open_file_limit(2 * options.clients + 256)
    with sqlite_backend(workdir, "fanout.db") as backend, servers(pinning, workdir) as running:
        env = {
            "KEEL_AUTO_MIGRATE": "true",
            "KEEL_WORKER_IN_PROCESS": "true",
            "KEEL_REALTIME_BACKEND": "memory",
        }
        base_url = running.start("keel[fanout]", backend, env)
        return uvloop.run(_fanout(base_url, backend.database_url, options))


def fanout_summary(result: Fanout) -> str:
    measured = result.deliveries.latencies_ms
    if not measured:
        return "WebSocket fan-out: no alert was delivered."
    return (
        f"WebSocket fan-out: an alert resolved through the API reached all {result.deliveries.clients:,} "
        f"clients of one keel serve process (one core) in p50 {statistics.median(measured):.1f} ms, "
        f"p99 {percentile(measured, 99):.1f} ms, max {max(measured):.1f} ms "
        f"({result.deliveries.delivered:,}/{result.deliveries.expected:,} deliveries, "
        f"{result.deliveries.alerts} alerts; SQLite, in-process worker)."
    )


# --- 3. Across two replicas ----------------------------------------------------------


@dataclass
class CrossReplica:
    broker: str
    on_b: Deliveries
    on_a: Deliveries
    triggers: Triggers


async def _cross(
    broker: str, a_url: str, b_url: str, database_url: str, options: argparse.Namespace
) -> CrossReplica:
    token = await asyncio.to_thread(admin_token, a_url)
    alert_ids = await create_alerts(database_url, options.replica_alerts)
    on_b = Audience("replica B", ws_url(b_url), token)
    on_a = Audience("replica A", ws_url(a_url), token)
    await on_b.connect(1)
    await on_a.connect(1)
    try:
        (b, a), triggers = await resolve_each(
            a_url, token, alert_ids, [on_b, on_a], spacing=REPLICA_SPACING_SECONDS
        )
    finally:
        await on_b.close()
        await on_a.close()
    return CrossReplica(broker, b, a, triggers)


def measure_replicas(
    broker: str, options: argparse.Namespace, pinning: Pinning, workdir: Path
) -> CrossReplica:
    """Two replicas on a fresh database; ``broker``: ``redis`` or ``postgres``."""
    print(f"replicas: KEEL_REALTIME_BACKEND={broker}, {options.replica_alerts} alerts", flush=True)
    redis = broker == "redis"
    with postgres_backend("keel_benchlive", redis=redis) as backend, servers(pinning, workdir) as running:
        asyncio.run(migrate(backend.database_url))
        env = {"KEEL_AUTO_MIGRATE": "false", "KEEL_REALTIME_BACKEND": broker}
        a_url = running.start(
            f"keel[{broker},A]", backend, {**env, "KEEL_WORKER_IN_PROCESS": "true"}, redis=redis
        )
        b_url = running.start(
            f"keel[{broker},B]", backend, {**env, "KEEL_WORKER_IN_PROCESS": "false"}, redis=redis
        )
        return uvloop.run(_cross(broker, a_url, b_url, backend.database_url, options))


BROKER_NAMES = {"redis": "Redis pub/sub", "postgres": "PostgreSQL LISTEN/NOTIFY"}


def replicas_summary(result: CrossReplica) -> str:
    measured = result.on_b.latencies_ms
    if not measured:
        return f"Across replicas ({BROKER_NAMES[result.broker]}): no alert was delivered."
    return (
        f"Across replicas through {BROKER_NAMES[result.broker]}: an alert resolved on replica A reached a "
        f"WebSocket on replica B in p50 {statistics.median(measured):.1f} ms, "
        f"p99 {percentile(measured, 99):.1f} ms ({result.on_b.delivered}/{result.on_b.expected} alerts; "
        f"PostgreSQL, the job worker on A)."
    )


# --- Entry point ---------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--parts", default=",".join(PARTS), help="comma-separated subset of: " + ", ".join(PARTS)
    )
    parser.add_argument(
        "--quick", action="store_true", help="2 s x 2 rounds, 100 clients, 5 alerts, 10 across replicas"
    )
    parser.add_argument("--duration", type=int, help=f"seconds per wrk run (default {DEFAULT_SECONDS})")
    parser.add_argument("--rounds", type=int, help=f"on/off rounds (default {DEFAULT_ROUNDS})")
    parser.add_argument("--clients", type=int, help=f"WebSocket clients (default {DEFAULT_CLIENTS:,})")
    parser.add_argument("--alerts", type=int, help=f"alerts fanned out (default {DEFAULT_ALERTS})")
    parser.add_argument(
        "--replica-alerts", type=int, help=f"alerts sent across replicas (default {DEFAULT_REPLICA_ALERTS})"
    )
    args = parser.parse_args(argv)
    args.parts = tuple(part.strip() for part in args.parts.split(",") if part.strip())
    unknown = sorted(set(args.parts) - set(PARTS))
    if unknown or not args.parts:
        parser.error(f"--parts: unknown {', '.join(unknown) or '(empty)'}; choose from {', '.join(PARTS)}")
    defaults = (
        {"duration": 2, "rounds": 2, "clients": 100, "alerts": 5, "replica_alerts": 10}
        if args.quick
        else {
            "duration": DEFAULT_SECONDS,
            "rounds": DEFAULT_ROUNDS,
            "clients": DEFAULT_CLIENTS,
            "alerts": DEFAULT_ALERTS,
            "replica_alerts": DEFAULT_REPLICA_ALERTS,
        }
    )
    for name, default in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, default)
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    return args


@dataclass
class Report:
    """What the parts measured, printed together at the end."""

    tables: list[str] = field(default_factory=list)
    summaries: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    deliveries: list[Deliveries] = field(default_factory=list)

    def missing(self) -> list[str]:
        return [
            f"{result.label}: {result.expected - result.delivered:,} of {result.expected:,} "
            "deliveries missing"
            for result in self.deliveries
            if result.delivered < result.expected
        ]


def run_metrics(report: Report, options: argparse.Namespace, pinning: Pinning, workdir: Path) -> None:
    try:
        cost = measure_metrics(options, pinning, workdir)
    except (BenchError, ValueError) as exc:
        report.failures.append(f"metrics: {exc}")
        return
    report.tables.append("Request metrics on GET /health\n" + metrics_table(cost))
    report.summaries.append(metrics_summary(cost, options))


def run_fanout(report: Report, options: argparse.Namespace, pinning: Pinning, workdir: Path) -> None:
    try:
        fanout = measure_fanout(options, pinning, workdir)
    except (BenchError, OSError) as exc:
        report.failures.append(f"fanout: {exc}")
        return
    resolve_ms = statistics.median(fanout.triggers.response_ms)
    report.tables.append(
        "WebSocket fan-out on one process (from sending POST /alerts/{id}/resolve to each client's "
        f"alert frame; the resolve request itself: p50 {resolve_ms:.1f} ms)\n"
        + deliveries_table([("one process, SQLite, memory broker", fanout.deliveries)])
    )
    report.summaries.append(fanout_summary(fanout))
    report.deliveries.append(fanout.deliveries)


def run_replicas(report: Report, options: argparse.Namespace, pinning: Pinning, workdir: Path) -> None:
    reason = postgres_unavailable() or redis_answers()
    if reason is not None:
        report.failures.append(f"replicas: skipped, {reason}")
        return
    crossed: list[CrossReplica] = []
    for broker in BROKER_NAMES:
        try:
            crossed.append(measure_replicas(broker, options, pinning, workdir))
        except (BenchError, OSError) as exc:
            report.failures.append(f"replicas ({broker}): {exc}")
    rows = [
        (f"2 replicas, {BROKER_NAMES[result.broker]}", deliveries)
        for result in crossed
        for deliveries in (result.on_b, result.on_a)
    ]
    if rows:
        report.tables.append(
            "Across two replicas (resolved through A, which runs the job worker)\n" + deliveries_table(rows)
        )
    report.summaries += [replicas_summary(result) for result in crossed]
    report.deliveries += [deliveries for _setup, deliveries in rows]


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_args(argv)
    pinning = prepare(needs_wrk="metrics" in options.parts)
    if pinning is None:
        return 2
    if pinning.load_cpus is not None:
        # The clients run in this process: keep them off the servers' core.
        os.sched_setaffinity(0, pinning.load_cpus)
    report = Report()
    parts = {"metrics": run_metrics, "fanout": run_fanout, "replicas": run_replicas}
    with tempfile.TemporaryDirectory(prefix="keel-benchlive-") as tmp:
        print(f"logs in {tmp}", flush=True)
        for name in options.parts:
            parts[name](report, options, pinning, Path(tmp))
    print()
    print("\n\n".join(report.tables))
    if report.summaries:
        print("\nSummary (figures from this machine):")
        print("\n".join(f"- {line}" for line in report.summaries))
    failures = report.failures + report.missing()
    for failure in failures:
        print(f"failed: {failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (KeyboardInterrupt, Terminated):
        print("\nbench: interrupted; servers stopped", file=sys.stderr)
        sys.exit(130)
