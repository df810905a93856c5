"""Page-mode pagination: parameters, meta, links and the Link header."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import Integer, String, event, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from starlette.responses import Response

from keel.platform.http.envelope import Link, ok
from keel.platform.http.handlers import install_exception_handlers
from keel.platform.http.pagination import (
    PageParams,
    PageParamsDep,
    count,
    link_header,
    page_links,
    page_meta,
    paginate,
)


def params(page: int = 1, per_page: int = 20, **query: str) -> PageParams:
    return PageParams(page=page, per_page=per_page, path="/api/v2/things", query=tuple(query.items()))


def rels(links: list[Link]) -> dict[str, str]:
    return {link.rel: link.href for link in links}


# --- meta ---------------------------------------------------------------------------


def test_meta_counts_pages_and_neighbours() -> None:
    assert page_meta(45, params(page=2, per_page=20)) == {
        "pagination": {"total": 45, "page": 2, "per_page": 20, "pages": 3, "has_next": True, "has_prev": True}
    }


def test_meta_on_the_last_page_has_no_next() -> None:
    meta = page_meta(40, params(page=2, per_page=20))["pagination"]
    assert (meta["pages"], meta["has_next"], meta["has_prev"]) == (2, False, True)


def test_meta_of_an_empty_result_has_zero_pages() -> None:
    meta = page_meta(0, params())["pagination"]
    assert (meta["total"], meta["pages"], meta["has_next"], meta["has_prev"]) == (0, 0, False, False)


def test_meta_past_the_end_has_prev_but_no_next() -> None:
    meta = page_meta(5, params(page=9, per_page=2))["pagination"]
    assert (meta["pages"], meta["has_next"], meta["has_prev"]) == (3, False, True)


# --- links --------------------------------------------------------------------------


def test_links_on_a_middle_page() -> None:
    links = rels(page_links(45, params(page=2, per_page=20)))
    assert links == {
        "first": "/api/v2/things?page=1&per_page=20",
        "prev": "/api/v2/things?page=1&per_page=20",
        "next": "/api/v2/things?page=3&per_page=20",
        "last": "/api/v2/things?page=3&per_page=20",
    }


def test_first_page_has_no_prev_and_last_page_no_next() -> None:
    assert set(rels(page_links(45, params(page=1)))) == {"first", "next", "last"}
    assert set(rels(page_links(45, params(page=3)))) == {"first", "prev", "last"}


def test_empty_result_links_first_and_last_to_page_one() -> None:
    links = rels(page_links(0, params()))
    assert links == {
        "first": "/api/v2/things?page=1&per_page=20",
        "last": "/api/v2/things?page=1&per_page=20",
    }


def test_page_past_the_end_links_back_to_the_last_page() -> None:
    links = rels(page_links(5, params(page=9, per_page=2)))
    assert links["prev"].endswith("page=3&per_page=2")
    assert "next" not in links


def test_links_keep_the_other_query_parameters_encoded() -> None:
    links = rels(page_links(45, params(page=2, role="admin", q="a&b c")))
    assert links["next"] == "/api/v2/things?role=admin&q=a%26b+c&page=3&per_page=20"


def test_link_header_is_rfc_8288() -> None:
    header = link_header(page_links(45, params(page=2)))
    assert header == (
        '</api/v2/things?page=1&per_page=20>; rel="first", '
        '</api/v2/things?page=1&per_page=20>; rel="prev", '
        '</api/v2/things?page=3&per_page=20>; rel="next", '
        '</api/v2/things?page=3&per_page=20>; rel="last"'
    )


# --- SQL ----------------------------------------------------------------------------


class _Base(DeclarativeBase):
    pass


class Thing(_Base):
    __tablename__ = "things"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(20))


@pytest.fixture
async def db_session() -> AsyncIterator[AsyncSession]:
    engine = create_async_engine("sqlite+aiosqlite://")
    statements: list[str] = []
    event.listen(engine.sync_engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    async with engine.begin() as connection:
        await connection.run_sync(_Base.metadata.create_all)
    async with async_sessionmaker(engine)() as session:
        session.add_all([Thing(id=index, name=f"thing-{index}") for index in range(1, 8)])
        await session.commit()
        statements.clear()
        session.info["statements"] = statements
        yield session
    await engine.dispose()


async def test_count_is_done_by_the_database(db_session: AsyncSession) -> None:
    total = await count(db_session, select(Thing).where(Thing.id > 2).order_by(Thing.id))
    assert total == 5
    (statement,) = db_session.info["statements"]
    assert "count(*)" in statement.lower()


async def test_paginate_returns_the_requested_slice_and_the_total(db_session: AsyncSession) -> None:
    page = await paginate(db_session, select(Thing).order_by(Thing.id), params(page=2, per_page=3))
    assert [thing.id for thing in page.items] == [4, 5, 6]
    assert page.total == 7
    assert page.meta["pagination"]["pages"] == 3
    assert page.headers["Link"] == link_header(page.links)


async def test_paginate_past_the_end_skips_the_rows_query(db_session: AsyncSession) -> None:
    page = await paginate(db_session, select(Thing).order_by(Thing.id), params(page=5, per_page=3))
    assert (page.items, page.total) == ([], 7)
    assert len(db_session.info["statements"]) == 1


async def test_map_converts_items_and_keeps_the_rest(db_session: AsyncSession) -> None:
    page = await paginate(db_session, select(Thing).order_by(Thing.id), params(per_page=2))
    names = page.map(lambda thing: thing.name)
    assert (names.items, names.total, names.params) == (["thing-1", "thing-2"], 7, page.params)


# --- The dependency -----------------------------------------------------------------


@pytest.fixture(scope="module")
async def paged_client() -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI()
    install_exception_handlers(app)

    @app.get("/api/v2/things")
    async def things(page: PageParamsDep) -> Response:
        return ok({"page": page.page, "per_page": page.per_page, "path": page.path, "query": page.query})

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        yield client


async def get_data(client: httpx.AsyncClient, query: str) -> dict[str, Any]:
    response = await client.get(f"/api/v2/things{query}")
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


async def test_dependency_defaults_to_page_one_of_twenty(paged_client: httpx.AsyncClient) -> None:
    data = await get_data(paged_client, "")
    assert (data["page"], data["per_page"]) == (1, 20)


async def test_dependency_keeps_the_path_and_other_parameters(paged_client: httpx.AsyncClient) -> None:
    data = await get_data(paged_client, "?tag=a&page=3&per_page=5&tag=b")
    assert (data["page"], data["per_page"], data["path"]) == (3, 5, "/api/v2/things")
    assert data["query"] == [["tag", "a"], ["tag", "b"]]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("?page=0", "page"),
        ("?page=100001", "page"),
        ("?page=x", "page"),
        ("?per_page=0", "per_page"),
        ("?per_page=101", "per_page"),
    ],
)
async def test_out_of_range_is_a_422_not_a_clamp(
    paged_client: httpx.AsyncClient, query: str, field: str
) -> None:
    response = await paged_client.get(f"/api/v2/things{query}")
    assert response.status_code == 422
    assert [(error["code"], error["field"]) for error in response.json()["errors"]] == [
        ("VALIDATION_ERROR", field)
    ]


async def test_the_largest_values_are_accepted(paged_client: httpx.AsyncClient) -> None:
    data = await get_data(paged_client, "?page=100000&per_page=100")
    assert (data["page"], data["per_page"]) == (100000, 100)
