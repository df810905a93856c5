"""``Idempotency-Key`` on POST: the first response is stored per (caller, key) and
replayed to retries, so a client unsure whether a POST went through can send it again
without the work being done twice.

- The record is claimed in a short transaction of its own before the handler runs; the
  unique (caller, key) constraint settles concurrent duplicates (409 for the losers).
- The handler's own transaction marks the record ``committed`` (``request_session``), so
  a crash between that commit and storing the response is never answered by running
  the handler again: the retry gets 409 ``CONFLICT``.
- Responses that invite a retry (5xx, 429) are not stored, nor bodies over
  ``max_stored_bytes``: the claim is dropped so a retry runs again.
- Anonymous POSTs (no credentials, or ones that do not authenticate) are not
  idempotent: with no caller to scope keys to, one client could replay another's
  response. They pass straight through, and the route answers 401 where it must.
- Multipart bodies (uploads) are not idempotent: the route streams them to disk, and
  holding one in memory to fingerprint it would defeat that. The key is ignored.
- A replay is the original response, byte for byte: its envelope keeps the original
  ``request_id`` and ``timestamp``; ``X-Request-ID`` names the retry.
"""

from __future__ import annotations

import hashlib
import math
import re
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta

import structlog
from cryptography.exceptions import InvalidTag
from sqlalchemy.exc import SQLAlchemyError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from keel.platform.db.base import utcnow
from keel.platform.db.engine import Database
from keel.platform.http import idempotency_store as store
from keel.platform.http.envelope import error_item, error_response
from keel.platform.http.errors import (
    Conflict,
    IdempotencyInProgress,
    IdempotencyKeyReused,
    KeelError,
    ValidationFailed,
)
from keel.platform.http.middleware import BodyTooLarge, too_large_response
from keel.platform.queue.context import JobContext
from keel.platform.queue.registry import task
from keel.platform.resources import Resources
from keel.platform.security.crypto import SecretBox

log = structlog.get_logger("keel.idempotency")

Identify = Callable[[Scope], Awaitable[str | None]]

HEADER = b"idempotency-key"
_VALID_KEY = re.compile(rb"[\x21-\x7e]{1,255}")
# What a replay must reproduce besides status and body; the rest (request id, security
# headers, CORS) belongs to the retry and is added by the outer layers again.
STORED_HEADERS = frozenset({b"content-type", b"location", b"etag", b"link", b"cache-control"})
MAX_STORED_BYTES = 1_048_576
PURGE_TASK = "idempotency.purge"
# A response the server marked ``no-store`` (an API key's secret, shown once) must not
# sit in the database in plaintext either: it is stored encrypted.
_NO_STORE = re.compile(rb"(^|[,\s])no-store($|[,\s])", re.IGNORECASE)


def request_fingerprint(scope: Scope, body: bytes) -> str:
    digest = hashlib.sha256()
    path = scope["path"].encode("utf-8", "surrogatepass")
    # Length-prefixed, so no two different (method, path, query) run together alike.
    for part in (scope["method"].encode(), path, scope["query_string"]):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    digest.update(body)
    return digest.hexdigest()


def _sealing_context(record_id: uuid.UUID) -> bytes:
    # Binds a ciphertext to its row: a body copied into another record does not open.
    return b"idempotency:" + record_id.bytes


class IdempotencyMiddleware:
    """Stores and replays POST responses per (caller, ``Idempotency-Key``).

    ``identify`` names the caller from the request's credentials (None: anonymous or
    invalid); it is injected because the platform does not know about accounts.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        identify: Identify,
        ttl: timedelta = timedelta(hours=24),
        max_stored_bytes: int = MAX_STORED_BYTES,
    ) -> None:
        self.app = app
        self.identify = identify
        self.ttl = ttl
        self.max_stored_bytes = max_stored_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        key = None
        for name, value in scope["headers"]:
            if name == HEADER:
                key = value
            elif name == b"content-type" and value.lower().startswith(b"multipart/form-data"):
                # Uploads are streamed to disk by their route, up to a cap far above what
                # this middleware may hold in memory: the key is ignored (see README).
                await self.app(scope, receive, send)
                return
        if key is None:
            await self.app(scope, receive, send)
            return
        await self._idempotent(scope, receive, send, key)

    async def _idempotent(self, scope: Scope, receive: Receive, send: Send, key: bytes) -> None:
        if not _VALID_KEY.fullmatch(key):
            message = "Idempotency-Key must be 1 to 255 printable ASCII characters (no spaces)."
            await _reply(ValidationFailed(message, field="Idempotency-Key"), scope, receive, send)
            return
        principal = await self.identify(scope)
        if principal is None:
            await self.app(scope, receive, send)
            return
        try:
            body, complete = await read_body(receive)
        except BodyTooLarge as error:
            # Raised by BodyLimitMiddleware's receive.
            await too_large_response(error)(scope, receive, send)
            return
        if not complete:
            # The client left while sending: nothing to claim, let the app see it go.
            await self.app(scope, replay_body(body, receive, disconnected=True), send)
            return

        resources: Resources = scope["app"].state.resources
        fingerprint = request_fingerprint(scope, body)
        claimed = await store.claim(
            resources.db, principal=principal, key=key.decode("ascii"), fingerprint=fingerprint, ttl=self.ttl
        )
        if isinstance(claimed, uuid.UUID):
            await self._run(scope, replay_body(body, receive), send, resources, claimed)
        elif (
            claimed is not None
            and claimed.fingerprint == fingerprint
            and claimed.state == store.State.COMPLETED
        ):
            await _replay_response(claimed, resources.security.secret_box, scope, receive, send)
        else:
            await _reply(_refusal(claimed, fingerprint), scope, receive, send)

    async def _run(
        self, scope: Scope, receive: Receive, send: Send, resources: Resources, record_id: uuid.UUID
    ) -> None:
        scope.setdefault("state", {})[store.RECORD_ID_STATE] = record_id
        db = resources.db
        status = 0
        headers: list[list[str]] = []
        encrypted = False
        chunks: list[bytes] = []
        size = 0
        settled = False

        async def settle() -> None:
            nonlocal settled
            settled = True
            storable = 0 < status < 500 and status != 429 and size <= self.max_stored_bytes
            try:
                if not storable:
                    await store.release(db, record_id)
                    return
                body = b"".join(chunks)
                if encrypted:
                    body = resources.security.secret_box.seal_bytes(body, context=_sealing_context(record_id))
                await store.complete(
                    db, record_id, status=status, headers=headers, body=body, encrypted=encrypted
                )
            except (SQLAlchemyError, OSError):
                # The response itself is fine; a retry will find the record in progress
                # (then taken over) or committed (then refused), never run twice.
                log.warning("idempotency.settle.failed", record_id=str(record_id), exc_info=True)

        async def capture(message: Message) -> None:
            nonlocal status, encrypted, size
            if message["type"] == "http.response.start":
                status = message["status"]
                for name, value in message.get("headers", ()):
                    if name in STORED_HEADERS:
                        headers.append([name.decode("latin-1"), value.decode("latin-1")])
                        if name == b"cache-control" and _NO_STORE.search(value):
                            encrypted = True
            elif message["type"] == "http.response.body":
                chunk = message.get("body", b"")
                size += len(chunk)
                if size <= self.max_stored_bytes:
                    chunks.append(chunk)
                else:
                    chunks.clear()
                if not message.get("more_body", False):
                    # Before the client sees the end of the response: a retry sent the
                    # moment it arrives must find it stored.
                    await settle()
            await send(message)

        try:
            await self.app(scope, receive, capture)
        except Exception:
            if not settled:
                settled = True
                await _release_quietly(db, record_id)
            raise
        if not settled:
            await settle()


async def read_body(receive: Receive) -> tuple[bytes, bool]:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return b"".join(chunks), False
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks), True


def replay_body(body: bytes, receive: Receive, *, disconnected: bool = False) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": disconnected}
        if disconnected:
            return {"type": "http.disconnect"}
        # After the body, the server's own receive reports a disconnect.
        return await receive()

    return replay


async def _replay_response(
    record: store.IdempotencyRecord, secret_box: SecretBox, scope: Scope, receive: Receive, send: Send
) -> None:
    body = record.response_body or b""
    if record.body_encrypted:
        try:
            body = secret_box.open_bytes(body, context=_sealing_context(record.id))
        except InvalidTag:
            # The secret key changed since the response was stored.
            log.warning("idempotency.replay.undecryptable", record_id=str(record.id))
            await _reply(_unreplayable(), scope, receive, send)
            return
    headers = [
        (name.encode("latin-1"), value.encode("latin-1")) for name, value in record.response_headers or ()
    ]
    headers += [(b"content-length", str(len(body)).encode()), (b"idempotent-replayed", b"true")]
    await send({"type": "http.response.start", "status": record.response_status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


def _refusal(record: store.IdempotencyRecord | None, fingerprint: str) -> KeelError:
    """Why a request whose key is held by ``record`` (None: lost every race) cannot run."""
    if record is None:
        return IdempotencyInProgress(headers={"Retry-After": "1"})
    if record.fingerprint != fingerprint:
        return IdempotencyKeyReused(field="Idempotency-Key")
    now = utcnow()
    if record.locked_until > now:
        retry_after = max(1, math.ceil((record.locked_until - now).total_seconds()))
        return IdempotencyInProgress(headers={"Retry-After": str(retry_after)})
    # Committed, its lease over, and no response stored: the process died in between.
    return _unreplayable()


def _unreplayable() -> Conflict:
    return Conflict(
        "The original request with this Idempotency-Key completed, but its response cannot be "
        "replayed; it is not run again. Use a new key for a new request.",
        field="Idempotency-Key",
    )


async def _reply(error: KeelError, scope: Scope, receive: Receive, send: Send) -> None:
    item = error_item(error.status_code, code=error.code, message=error.message, field=error.field)
    await error_response(error.status_code, [item], headers=error.headers)(scope, receive, send)


async def _release_quietly(db: Database, record_id: uuid.UUID) -> None:
    try:
        await store.release(db, record_id)
    except (SQLAlchemyError, OSError):
        log.warning("idempotency.release.failed", record_id=str(record_id), exc_info=True)


@task(PURGE_TASK, max_attempts=3, timeout=600.0)
async def purge_expired(ctx: JobContext) -> dict[str, int]:
    """Delete expired records (a periodic task)."""
    async with ctx.transaction() as session:
        purged = await store.purge_expired(session, utcnow())
    return {"deleted": purged}
