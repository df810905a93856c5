"""``keel demo seed``: an account with folders and products to try the API on (or to
load for ``make bench``).

The account and its folders go through the services, as a request would make them.
Products are bulk-inserted with SQLAlchemy Core in batches: one request per product
would take minutes for the 10,000 the bench lists, and the product rules the service
enforces (folder access, validated fields) hold by construction here.
"""

from __future__ import annotations

import random
import secrets
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

from pydantic import EmailStr, TypeAdapter, ValidationError
from sqlalchemy import Table, insert, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from keel.audit import service as audit
from keel.audit.service import SYSTEM
from keel.folders import service as folders
from keel.folders.models import Folder
from keel.folders.schemas import FolderCreate
from keel.platform.db.base import utcnow
from keel.platform.db.engine import SQLITE_BEGIN_OPTION, Database
from keel.platform.db.ids import new_id
from keel.platform.http.errors import Conflict, ValidationFailed
from keel.platform.security.passwords import Passwords
from keel.platform.security.permissions import effective_permissions
from keel.platform.security.principal import Principal
from keel.products.models import Product
from keel.settings import Settings
from keel.users import service as users
from keel.users.models import Role, User

DEFAULT_EMAIL = "demo@example.com"
DEFAULT_PRODUCTS = 200
MAX_PRODUCTS = 1_000_000
BATCH_SIZE = 5_000
FULL_NAME = "Demo User"
# Products are spread over this many days back, so sorting by date means something.
SPREAD_DAYS = 180

# Top-level folder -> its sub-folders. Re-running a seed reuses folders with these names.
FOLDER_TREE: dict[str, tuple[str, ...]] = {
    "Electronics": ("Phones", "Laptops"),
    "Home": ("Kitchen", "Garden"),
    "Outdoor": ("Camping", "Cycling"),
}

_ADJECTIVES = (
    "Compact", "Deluxe", "Classic", "Rugged", "Smart", "Portable", "Vintage", "Modern", "Ultra",
    "Eco", "Pro", "Mini", "Heavy-duty", "Wireless", "Foldable", "Silent", "Premium", "Budget",
)  # fmt: skip
_MATERIALS = (
    "Bamboo", "Steel", "Oak", "Carbon", "Ceramic", "Linen", "Leather", "Glass", "Copper",
    "Wool", "Titanium", "Cotton", "Walnut", "Aluminium", "Granite",
)  # fmt: skip
_NOUNS = (
    "Lamp", "Kettle", "Backpack", "Headphones", "Chair", "Tent", "Bottle", "Charger", "Desk",
    "Knife", "Blanket", "Speaker", "Helmet", "Notebook", "Watch", "Pan", "Stool", "Lantern",
    "Keyboard", "Planter", "Bicycle bell", "Camera strap", "Phone case", "Laptop sleeve",
)  # fmt: skip
_CATEGORIES = (
    "electronics", "home", "kitchen", "garden", "outdoor", "sports", "office", "toys", "books",
)  # fmt: skip
_TAGS = (
    "new", "sale", "eco", "bestseller", "limited", "refurbished", "gift", "bundle", "imported",
    "handmade",
)  # fmt: skip
_CURRENCIES = ("EUR", "USD", "GBP", "CHF", "JPY", "SEK")
_CURRENCY_WEIGHTS = (40, 30, 12, 8, 5, 5)

_EMAIL: TypeAdapter[str] = TypeAdapter(EmailStr)


class SeedRefused(Exception):
    """The seed cannot run as asked; the message names the option at fault."""


@dataclass
class SeedResult:
    user_id: uuid.UUID
    email: str
    created_user: bool
    # Only when this run generated it: an existing account's password is never known.
    password: str | None
    folder_ids: list[uuid.UUID] = field(default_factory=list)
    folders_created: int = 0
    products_created: int = 0


Progress = Callable[[int, int], None]


def _valid_email(email: str) -> str:
    try:
        return users.normalize_email(_EMAIL.validate_python(email))
    except ValidationError:
        raise SeedRefused(f"--email: {email!r} is not a valid e-mail address") from None


LOCK_WAIT_SECONDS = 60.0


async def _begin(db: Database, session: AsyncSession) -> None:
    if db.is_sqlite:
        # Take the write lock before the first read: a deferred transaction that read
        # and then writes fails at once (SQLITE_BUSY) when a running server wrote first.
        await session.connection(execution_options={SQLITE_BEGIN_OPTION: "IMMEDIATE"})


async def _account(
    db: Database, passwords: Passwords, email: str, password: str | None
) -> tuple[User, bool, str | None]:
    """The account with this e-mail, created when missing: (user, created, new password)."""
    async with db.sessionmaker() as session:
        await _begin(db, session)
        user = await users.get_by_email(session, email)
        if user is not None:
            return user, False, None
        generated = password is None
        password = password or secrets.token_urlsafe(15)
        try:
            user = await users.create(
                session, passwords, email=email, password=password, full_name=FULL_NAME, role=Role.USER
            )
        except ValidationFailed as exc:
            raise SeedRefused(f"--password: refused: {exc.message}") from None
        audit.record(
            session,
            SYSTEM,
            action="user.bootstrapped",
            actor_type="system",
            user_id=user.id,
            resource_type="user",
            resource_id=user.id,
            detail={"via": "demo"},
        )
        await session.commit()
        return user, True, password if generated else None


async def _folders(db: Database, principal: Principal) -> tuple[list[uuid.UUID], int]:
    """The demo folder tree of the account, creating what is missing: (ids, created)."""
    async with db.sessionmaker() as session:
        await _begin(db, session)
        rows = (
            await session.execute(
                select(Folder.id, Folder.name, Folder.parent_id).where(Folder.owner_id == principal.user_id)
            )
        ).all()
        existing: dict[tuple[uuid.UUID | None, str], uuid.UUID] = {
            (row.parent_id, row.name): row.id for row in rows
        }
        ids: list[uuid.UUID] = []
        created = 0

        async def ensure(name: str, parent_id: uuid.UUID | None) -> uuid.UUID:
            nonlocal created
            found = existing.get((parent_id, name))
            if found is not None:
                return found
            data = FolderCreate(name=name, description=f"Demo folder: {name.lower()}.", parent_id=parent_id)
            row = await folders.create(session, principal, data=data)
            created += 1
            folder_id: uuid.UUID = row.id
            return folder_id

        for top, children in FOLDER_TREE.items():
            top_id = await ensure(top, None)
            ids.append(top_id)
            for child in children:
                ids.append(await ensure(child, top_id))
        await session.commit()
    return ids, created


def _price_cents(rng: random.Random) -> int:
    # Log-uniform from ~1 to ~10,000, ending in .99 or .00 like real price tags.
    cents = int(10 ** rng.uniform(2, 6))
    return max(99, cents - cents % 100 + rng.choice((99, 99, 0)))


def product_rows(
    owner_id: uuid.UUID,
    folder_ids: list[uuid.UUID],
    count: int,
    *,
    rng: random.Random,
    now: datetime,
) -> Iterator[dict[str, Any]]:
    """``count`` product rows, every column given: the timestamps are spread on purpose
    (the model's defaults would stamp them all "now"), and the rows of one executemany
    must share their keys."""
    # About a quarter of the products stay at the root, the rest spread over the folders.
    places: list[uuid.UUID | None] = [None] * max(1, len(folder_ids) // 3) + list(folder_ids)
    spread = timedelta(days=SPREAD_DAYS).total_seconds()
    for _ in range(count):
        adjective, material, noun = rng.choice(_ADJECTIVES), rng.choice(_MATERIALS), rng.choice(_NOUNS)
        created_at = now - timedelta(seconds=rng.uniform(0, spread))
        updated_at = created_at
        if rng.random() < 0.3:
            updated_at = created_at + (now - created_at) * rng.random()
        yield {
            "id": new_id(),
            "owner_id": owner_id,
            "folder_id": rng.choice(places),
            "name": f"{adjective} {material} {noun}",
            "description": (
                None
                if rng.random() < 0.2
                else f"A {adjective.lower()} {noun.lower()} in {material.lower()}, for everyday use."
            ),
            "price_cents": _price_cents(rng),
            "currency": rng.choices(_CURRENCIES, _CURRENCY_WEIGHTS)[0],
            "stock": 0 if rng.random() < 0.15 else rng.randint(1, 500),
            "category": None if rng.random() < 0.1 else rng.choice(_CATEGORIES),
            "tags": rng.sample(_TAGS, rng.choice((0, 1, 1, 2, 2, 3, 4))),
            "version": 1,
            "created_at": created_at,
            "updated_at": updated_at,
            "deleted_at": None,
        }


async def _products(
    db: Database,
    owner_id: uuid.UUID,
    folder_ids: list[uuid.UUID],
    count: int,
    *,
    rng: random.Random,
    progress: Progress | None,
) -> int:
    rows = product_rows(owner_id, folder_ids, count, rng=rng, now=utcnow())
    table = cast(Table, Product.__table__)
    done = 0
    while done < count:
        batch = [row for _, row in zip(range(BATCH_SIZE), rows, strict=False)]
        # One transaction per batch: a running server (SQLite: one writer at a time)
        # gets its turn between batches, and an interrupted seed keeps what it wrote.
        async with db.engine.begin() as connection:
            await connection.execute(insert(table), batch)
        done += len(batch)
        if progress is not None:
            progress(done, count)
    return done


async def _vacuum_analyze(db: Database) -> None:
    """PostgreSQL plans from table statistics, and counts with index-only scans only
    where the visibility map is set. After a bulk load both are stale until autovacuum
    gets round to the table (a minute or more), and until then a list can pick a plan
    that sorts every visible row: bring the table to the state a live one is in."""
    autocommit = await db.engine.connect()
    try:
        # VACUUM refuses to run inside a transaction block.
        await autocommit.execution_options(isolation_level="AUTOCOMMIT")
        await autocommit.execute(text(f"VACUUM (ANALYZE) {Product.__tablename__}"))
    finally:
        await autocommit.close()


async def seed(
    settings: Settings,
    *,
    products: int = DEFAULT_PRODUCTS,
    email: str = DEFAULT_EMAIL,
    password: str | None = None,
    rng: random.Random | None = None,
    progress: Progress | None = None,
) -> SeedResult:
    """Find or create the account, make sure its demo folders exist, add ``products``.

    Raises ``SeedRefused`` for bad input and lets database errors through.
    """
    if not 0 <= products <= MAX_PRODUCTS:
        raise SeedRefused(f"--products: must be 0..{MAX_PRODUCTS:,}")
    email = _valid_email(email)
    passwords = Passwords(
        memory_kib=settings.password_hash_memory_kib,
        time_cost=settings.password_hash_time_cost,
        parallelism=settings.password_hash_parallelism,
    )
    # Beside a running server, wait for its writers as long as an operator would, not the
    # seconds a request waits (on SQLite the busy timeout is the pool timeout).
    patient = max(settings.db_pool_timeout, LOCK_WAIT_SECONDS)
    db = Database.from_settings(settings.model_copy(update={"db_pool_timeout": patient}))
    try:
        try:
            user, created, new_password = await _account(db, passwords, email, password)
        except Conflict:
            # Created by someone else between our look-up and our insert: use it.
            user, created, new_password = await _account(db, passwords, email, password)
        principal = Principal(
            user_id=user.id,
            role=user.role,
            plan=user.plan,
            permissions=effective_permissions(user.role),
        )
        folder_ids, folders_created = await _folders(db, principal)
        inserted = await _products(
            db,
            user.id,
            folder_ids,
            products,
            rng=rng or random.Random(),  # noqa: S311 - demo data, not secrets
            progress=progress,
        )
        if inserted and not db.is_sqlite:
            await _vacuum_analyze(db)
    finally:
        await db.dispose()
    return SeedResult(
        user_id=user.id,
        email=email,
        created_user=created,
        password=new_password,
        folder_ids=folder_ids,
        folders_created=folders_created,
        products_created=inserted,
    )


DATABASE_ERRORS = (DBAPIError, OSError, TimeoutError)


def describe_database_error(exc: BaseException) -> str:
    # A DBAPIError's text carries the statement and its parameters (a password hash,
    # for the account INSERT): show only the driver's message.
    cause = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    return f"{type(cause).__name__}: {cause}"


def summary(result: SeedResult, *, base_url: str = "http://127.0.0.1:8000") -> str:
    """What the CLI prints: the account, the counts, and how to list the products."""
    lines = [
        f"account: {result.email} ({'created' if result.created_user else 'existing'}, id {result.user_id})",
    ]
    if result.password is not None:
        lines.append(f"password: {result.password}")
    lines += [
        f"folders: {len(result.folder_ids)} ({result.folders_created} created)",
        f"products: {result.products_created:,} added",
        "",
        "List them (with the server running):",
    ]
    password = result.password if result.password is not None else "<password>"
    credentials = f'{{"email": "{result.email}", "password": "{password}"}}'
    lines += [
        f"  TOKEN=$(curl -s -X POST {base_url}/api/v2/auth/login -H 'content-type: application/json' \\",
        f"    -d '{credentials}' | "
        'python3 -c \'import json, sys; print(json.load(sys.stdin)["data"]["access_token"])\')',
        f"  curl -s '{base_url}/api/v2/products?per_page=5&sort=-price' -H \"Authorization: Bearer $TOKEN\"",
    ]
    return "\n".join(lines)
