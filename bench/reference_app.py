"""The FastAPI app a user would write without Keel: the yardstick for ``make bench``.

Written the way the FastAPI and SQLAlchemy tutorials show it (``response_model``,
``HTTPBearer`` dependency, PyJWT, async ORM session per request) and served like Keel
(uvicorn, uvloop, httptools, one worker, no access log)::

    REF_DATABASE_URL=sqlite+aiosqlite:////tmp/ref.db REF_JWT_SECRET=... \\
        .venv/bin/python -m uvicorn bench.reference_app:app --loop uvloop --http httptools \\
        --no-access-log --workers 1 --port 8001

Environment:

* ``REF_DATABASE_URL``: SQLAlchemy async URL (aiosqlite or asyncpg); default a SQLite
  file in the temp directory.
* ``REF_JWT_SECRET``: HS256 key for ``GET /items``.
* ``REF_MIDDLEWARE``: ``none`` (default), ``base`` (two ``BaseHTTPMiddleware`` layers)
  or ``asgi`` (the same two layers as pure ASGI middleware).
"""

import datetime as dt
import os
import tempfile
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal

import jwt
from fastapi import Depends, FastAPI, HTTPException, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict
from sqlalchemy import DateTime, Numeric, String, func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MiddlewareVariant = Literal["none", "base", "asgi"]
MIDDLEWARE_VARIANTS: tuple[MiddlewareVariant, ...] = ("none", "base", "asgi")
SEED_ROWS = 100
PAGE_SIZE = 20


# --- Schemas -------------------------------------------------------------------------


class Hello(BaseModel):
    message: str
    version: str


class Item(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    price: Decimal
    created_at: dt.datetime


# --- ORM -----------------------------------------------------------------------------


class Base(DeclarativeBase):
    pass


class ItemRow(Base):
    __tablename__ = "bench_reference_items"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    price: Mapped[Decimal] = mapped_column(Numeric(10, 2))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


async def seed(engine: AsyncEngine) -> None:
    """Create ``bench_reference_items`` if missing and fill it when empty."""
    async with engine.begin() as connection:
        await connection.run_sync(Base.metadata.create_all)
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    async with sessions() as session:
        count = await session.scalar(select(func.count()).select_from(ItemRow))
        if count:
            return
        now = dt.datetime.now(dt.UTC)
        session.add_all(
            ItemRow(
                id=number,
                name=f"item {number}",
                price=Decimal(number * 125) / 100,
                created_at=now - dt.timedelta(minutes=number),
            )
            for number in range(1, SEED_ROWS + 1)
        )
        await session.commit()


# --- Middleware variants -------------------------------------------------------------


class HeaderBaseMiddleware(BaseHTTPMiddleware):
    """One ``BaseHTTPMiddleware`` layer that adds a response header."""

    def __init__(self, app: ASGIApp, header: str) -> None:
        super().__init__(app)
        self.header = header

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        response = await call_next(request)
        response.headers[self.header] = "1"
        return response


class HeaderASGIMiddleware:
    """The same layer as pure ASGI middleware: wraps ``send``, no extra task or stream."""

    def __init__(self, app: ASGIApp, header: str) -> None:
        self.app = app
        self.header = header.lower().encode("latin-1")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_header(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.append((self.header, b"1"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_header)


# --- App -----------------------------------------------------------------------------


def _default_database_url() -> str:
    return f"sqlite+aiosqlite:///{Path(tempfile.gettempdir()) / 'keel-bench-reference.db'}"


def _middleware_variant(value: str) -> MiddlewareVariant:
    variant = value.strip().lower() or "none"
    if variant not in MIDDLEWARE_VARIANTS:
        raise ValueError(f"REF_MIDDLEWARE must be one of {', '.join(MIDDLEWARE_VARIANTS)}, not {value!r}")
    return variant


def create_app(database_url: str, jwt_secret: str, middleware: MiddlewareVariant = "none") -> FastAPI:
    engine = create_async_engine(database_url)
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    bearer = HTTPBearer()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await seed(engine)
        try:
            yield
        finally:
            await engine.dispose()

    async def get_session() -> AsyncIterator[AsyncSession]:
        async with sessions() as session:
            yield session

    def current_user(
        credentials: Annotated[HTTPAuthorizationCredentials, Depends(bearer)],
    ) -> dict[str, Any]:
        try:
            claims: dict[str, Any] = jwt.decode(credentials.credentials, jwt_secret, algorithms=["HS256"])
        except jwt.InvalidTokenError:
            raise HTTPException(
                status_code=status.HTTP_401_UNAUTHORIZED,
                detail="Invalid token",
                headers={"WWW-Authenticate": "Bearer"},
            ) from None
        return claims

    app = FastAPI(title="Reference", version="1", lifespan=lifespan)

    @app.get("/hello", response_model=Hello)
    async def hello() -> Hello:
        return Hello(message="hello", version="1")

    @app.get("/items", response_model=list[Item])
    async def list_items(
        user: Annotated[dict[str, Any], Depends(current_user)],
        session: Annotated[AsyncSession, Depends(get_session)],
    ) -> Sequence[ItemRow]:
        result = await session.scalars(select(ItemRow).order_by(ItemRow.id).limit(PAGE_SIZE))
        return result.all()

    if middleware == "base":
        app.add_middleware(HeaderBaseMiddleware, header="X-Layer-One")
        app.add_middleware(HeaderBaseMiddleware, header="X-Layer-Two")
    elif middleware == "asgi":
        app.add_middleware(HeaderASGIMiddleware, header="X-Layer-One")
        app.add_middleware(HeaderASGIMiddleware, header="X-Layer-Two")
    return app


def app_from_env() -> FastAPI:
    return create_app(
        database_url=os.environ.get("REF_DATABASE_URL") or _default_database_url(),
        jwt_secret=os.environ.get("REF_JWT_SECRET") or "reference-bench-secret-not-for-production",
        middleware=_middleware_variant(os.environ.get("REF_MIDDLEWARE", "none")),
    )


app = app_from_env()
