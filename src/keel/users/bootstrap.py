"""The first admin: created at start-up from ``KEEL_ADMIN_EMAIL``/``KEEL_ADMIN_PASSWORD``,
or by ``keel users create-admin``; and the first-run hint of ``keel serve``.

Start-up creation is idempotent and safe when several replicas start at once: each
checks, then inserts; the unique e-mail index lets exactly one insert win, and the
others see the conflict, re-check and carry on.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Literal

import structlog
from pydantic import EmailStr, TypeAdapter, ValidationError
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from keel.audit import service as audit
from keel.audit.service import SYSTEM
from keel.platform.db.engine import SQLITE_BEGIN_OPTION, Database
from keel.platform.http.errors import Conflict, ValidationFailed
from keel.platform.resources import Resources, Security
from keel.platform.security.passwords import Passwords
from keel.settings import Environment, Settings, SettingsError
from keel.users import repository
from keel.users import service as users
from keel.users.models import Role, User
from keel.users.schemas import FullName

log = structlog.get_logger("keel.users")

DEFAULT_FULL_NAME = "Administrator"
_EMAIL: TypeAdapter[str] = TypeAdapter(EmailStr)
_FULL_NAME: TypeAdapter[str] = TypeAdapter(FullName)
# The database is down or not migrated: the server still starts (readiness reports it).
_DATABASE_ERRORS = (DBAPIError, OSError, TimeoutError)


class AdminRefused(Exception):
    """The admin cannot be created; the message names the offending input."""


class DatabaseUnavailable(Exception):
    """The database could not be reached or is not migrated."""


def _describe(exc: BaseException) -> str:
    # A DBAPIError's own text carries the statement and its parameters (a password
    # hash, for an INSERT): show only the driver's message.
    cause = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    return f"{type(cause).__name__}: {cause}"


async def _begin(db: Database, session: AsyncSession) -> None:
    if db.is_sqlite:
        # Take the write lock first: a deferred transaction that read and then writes
        # fails at once (SQLITE_BUSY) when another writer got in between.
        await session.connection(execution_options={SQLITE_BEGIN_OPTION: "IMMEDIATE"})


async def create_admin(
    db: Database,
    passwords: Passwords,
    *,
    email: str,
    password: str,
    full_name: str = DEFAULT_FULL_NAME,
    via: Literal["settings", "cli"],
) -> User:
    """Create and commit an admin account with its audit row.

    Raises ``Conflict`` when the e-mail is taken and ``ValidationFailed`` when the
    password is refused (the registration policy).
    """
    async with db.sessionmaker() as session:
        await _begin(db, session)
        user = await users.create(
            session, passwords, email=email, password=password, full_name=full_name, role=Role.ADMIN
        )
        audit.record(
            session,
            SYSTEM,
            action="user.bootstrapped",
            actor_type="system",
            user_id=user.id,
            resource_type="user",
            resource_id=user.id,
            detail={"via": via},
        )
        await session.commit()
    return user


async def _exists(db: Database, email: str) -> bool:
    async with db.sessionmaker() as session:
        return await users.get_by_email(session, email) is not None


def _valid_email(email: str, setting: str) -> str:
    try:
        return users.normalize_email(_EMAIL.validate_python(email))
    except ValidationError:
        raise AdminRefused(f"{setting}: {email!r} is not a valid e-mail address") from None


async def ensure_admin(resources: Resources) -> uuid.UUID | None:
    """Create the configured bootstrap admin if no account has its e-mail yet.

    Returns the new account's id, or None when nothing was created. A refused password
    or e-mail stops start-up (``SettingsError`` naming the variable); an unreachable or
    unmigrated database is logged and start-up goes on.
    """
    settings = resources.settings
    if settings.admin_email is None or settings.admin_password is None:
        return None
    try:
        email = _valid_email(settings.admin_email, "KEEL_ADMIN_EMAIL")
    except AdminRefused as exc:
        raise SettingsError(str(exc)) from None
    db = resources.db
    try:
        if await _exists(db, email):
            return None
        try:
            user = await create_admin(
                db,
                resources.security.passwords,
                email=email,
                password=settings.admin_password.get_secret_value(),
                via="settings",
            )
        except Conflict:
            # Another replica inserted it between our check and our insert.
            if await _exists(db, email):
                return None
            raise
    except ValidationFailed as exc:
        raise SettingsError(f"KEEL_ADMIN_PASSWORD: {exc.message}") from None
    except _DATABASE_ERRORS as exc:
        log.error("users.bootstrap.failed", email=email, error=_describe(exc))
        return None
    log.info("users.bootstrap.created", user_id=str(user.id), email=email)
    return user.id


async def create_admin_command(settings: Settings, *, email: str, password: str, full_name: str) -> uuid.UUID:
    """``keel users create-admin``: raises ``AdminRefused`` naming the problem."""
    email = _valid_email(email, "--email")
    try:
        full_name = _FULL_NAME.validate_python(full_name)
    except ValidationError:
        raise AdminRefused("--full-name: must be 1..100 characters") from None
    db = Database.from_settings(settings)
    try:
        user = await create_admin(
            db,
            Security.from_settings(settings).passwords,
            email=email,
            password=password,
            full_name=full_name,
            via="cli",
        )
    except Conflict:
        raise AdminRefused(f"--email: an account with the e-mail address {email} already exists") from None
    except ValidationFailed as exc:
        raise AdminRefused(f"--password: refused: {exc.message}") from None
    except _DATABASE_ERRORS as exc:
        raise DatabaseUnavailable(
            f"database error ({_describe(exc)}); is it running and migrated (`keel db upgrade`)?"
        ) from None
    finally:
        await db.dispose()
    # No log line: the CLI prints the id on stdout, and structlog would print there too.
    return user.id


# --- First run ----------------------------------------------------------------------------

_HINT = """\
keel: no accounts yet. Create an admin with
  keel users create-admin --email you@example.com
or register one (self-service accounts get the `user` role):
  curl -X POST {base}/api/v2/auth/register -H 'Content-Type: application/json' \\
    -d '{{"email": "you@example.com", "password": "<12+ characters>", "full_name": "You"}}'"""


def _base_url(host: str, port: int) -> str:
    if host in ("", "0.0.0.0", "::"):  # noqa: S104 - naming the wildcard, not binding it
        host = "127.0.0.1"
    elif ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


async def first_run_hint(settings: Settings, *, host: str, port: int) -> str | None:
    """In development, with no account and no bootstrap admin configured, how to make one."""
    if settings.env is not Environment.DEVELOPMENT or settings.admin_email is not None:
        return None
    db = Database.from_settings(settings)
    try:
        async with db.sessionmaker() as session:
            if await repository.any_exist(session):
                return None
    except _DATABASE_ERRORS:
        return None  # the server reports database problems itself
    finally:
        await db.dispose()
    return _HINT.format(base=_base_url(host, port))


def first_run_hint_sync(settings: Settings, *, host: str, port: int) -> str | None:
    """For the CLI, before uvicorn starts its own event loop."""
    return asyncio.run(first_run_hint(settings, host=host, port=port))
