"""Product lists on both backends: page mode edges, cursor (keyset) mode, stable sorting,
every filter, the weak ETag, and a bounded number of queries per request."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import orjson
import pytest
from fastapi import FastAPI
from sqlalchemy import event
from sqlalchemy.pool import ConnectionPoolEntry

from keel.platform.cache import TotalCache
from keel.platform.http.listing import ListParams
from keel.platform.http.pagination import PageParams
from keel.products import repository
from keel.users.service import acting_principal
from tests.catalog import PRODUCTS, create_folder, create_product, folder_url, share, single_error
from tests.identity import Accounts, TestUser


async def listing(client: httpx.AsyncClient, user: TestUser, **params: Any) -> httpx.Response:
    response = await client.get(PRODUCTS, params=params, headers=user.headers)
    assert response.status_code == 200, response.text
    return response


async def names(client: httpx.AsyncClient, user: TestUser, **params: Any) -> list[str]:
    return [item["name"] for item in (await listing(client, user, **params)).json()["data"]]


async def seeded(client: httpx.AsyncClient, accounts: Accounts, count: int, **fields: Any) -> TestUser:
    user = await accounts.create()
    for index in range(count):
        await create_product(client, user, name=f"item {index:02d}", **fields)
    return user


async def all_pages_by_cursor(client: httpx.AsyncClient, user: TestUser, **params: Any) -> list[str]:
    seen: list[str] = []
    cursor = ""
    for _ in range(100):
        body = (await listing(client, user, cursor=cursor, **params)).json()
        seen += [item["id"] for item in body["data"]]
        pagination = body["meta"]["pagination"]
        assert set(pagination) == {"per_page", "next_cursor", "has_next"}
        if not pagination["has_next"]:
            assert pagination["next_cursor"] is None
            return seen
        cursor = pagination["next_cursor"]
    raise AssertionError("cursor pages never ended")


# --- Page mode -----------------------------------------------------------------------------


async def test_an_empty_list_has_total_zero_and_first_and_last_links(
    client: httpx.AsyncClient, accounts: Accounts
) -> None:
    user = await accounts.create()
    response = await listing(client, user)
    body = response.json()
    assert body["data"] == []
    assert body["meta"]["pagination"] == {
        "total": 0,
        "page": 1,
        "per_page": 20,
        "pages": 0,
        "has_next": False,
        "has_prev": False,
    }
    assert [link["rel"] for link in body["links"]] == ["first", "last"]
    assert 'rel="first"' in response.headers["Link"]


async def test_an_exact_multiple_ends_on_a_full_last_page(
    client: httpx.AsyncClient, accounts: Accounts
) -> None:
    user = await seeded(client, accounts, 6)
    last = (await listing(client, user, per_page=3, page=2)).json()
    assert len(last["data"]) == 3
    assert last["meta"]["pagination"] | {} == {
        "total": 6,
        "page": 2,
        "per_page": 3,
        "pages": 2,
        "has_next": False,
        "has_prev": True,
    }
    assert [link["rel"] for link in last["links"]] == ["first", "prev", "last"]
    past = (await listing(client, user, per_page=3, page=3)).json()
    assert past["data"] == []
    assert past["meta"]["pagination"]["total"] == 6


async def test_a_partial_last_page_and_links_that_keep_the_filters(
    client: httpx.AsyncClient, accounts: Accounts
) -> None:
    user = await seeded(client, accounts, 5, category="books")
    response = await listing(client, user, per_page=2, page=3, category="books", sort="name")
    body = response.json()
    assert [item["name"] for item in body["data"]] == ["item 04"]
    prev = next(link["href"] for link in body["links"] if link["rel"] == "prev")
    assert "category=books" in prev
    assert "sort=name" in prev
    assert "page=2" in prev
    assert f"<{prev}>" in response.headers["Link"]


@pytest.mark.parametrize(
    "params",
    [{"per_page": 0}, {"per_page": 101}, {"page": 0}, {"page": "x"}, {"sort": "colour"}, {"sort": "-"}],
)
async def test_out_of_range_pages_and_unknown_sorts_are_422(
    client: httpx.AsyncClient, accounts: Accounts, params: dict[str, Any]
) -> None:
    user = await accounts.create(login=True)
    response = await client.get(PRODUCTS, params=params, headers=user.headers)
    assert response.status_code == 422
    assert response.json()["errors"][0]["code"] == "VALIDATION_ERROR"


async def test_sort_by_and_sort_order_is_the_same_as_sort(
    client: httpx.AsyncClient, accounts: Accounts
) -> None:
    user = await accounts.create()
    for price in ("3.00", "1.00", "2.00"):
        await create_product(client, user, name=f"p{price}", price=price)
    expected = ["p3.00", "p2.00", "p1.00"]
    assert await names(client, user, sort="-price") == expected
    assert await names(client, user, sort_by="price", sort_order="desc") == expected
    both = await client.get(PRODUCTS, params={"sort": "price", "sort_by": "name"}, headers=user.headers)
    assert both.status_code == 422


async def test_multi_field_sort_with_mixed_directions(client: httpx.AsyncClient, accounts: Accounts) -> None:
    user = await accounts.create()
    for name, price in (("b", "1.00"), ("a", "1.00"), ("c", "2.00")):
        await create_product(client, user, name=name, price=price)
    assert await names(client, user, sort="-price,name") == ["c", "a", "b"]
    assert await names(client, user, sort="price,-name") == ["b", "a", "c"]


async def test_equal_sort_keys_give_stable_pages_with_no_repeats_or_gaps(
    client: httpx.AsyncClient, accounts: Accounts
) -> None:
    user = await accounts.create()
    ids = [(await create_product(client, user, name="same", price="5.00"))["id"] for _ in range(7)]
    pages = []
    for page in (1, 2, 3):
        body = (await listing(client, user, sort="price", per_page=3, page=page)).json()
        pages += [item["id"] for item in body["data"]]
    assert sorted(pages) == sorted(ids)
    assert len(set(pages)) == 7
    again = []
    for page in (1, 2, 3):
        body = (await listing(client, user, sort="price", per_page=3, page=page)).json()
        again += [item["id"] for item in body["data"]]
    assert again == pages


# --- Cursor mode ---------------------------------------------------------------------------


async def test_cursor_pages_cover_every_row_once_in_order(
    client: httpx.AsyncClient, accounts: Accounts
) -> None:
    user = await accounts.create()
    for index in range(7):
        await create_product(client, user, name=f"n{index % 3}", price=f"{index % 2}.00")
    everything = [
        item["id"] for item in (await listing(client, user, sort="-price,name", per_page=100)).json()["data"]
    ]
    by_cursor = await all_pages_by_cursor(client, user, sort="-price,name", per_page=2)
    assert by_cursor == everything
    by_cursor_default = await all_pages_by_cursor(client, user, per_page=3)
    default_order = [item["id"] for item in (await listing(client, user, per_page=100)).json()["data"]]
    assert by_cursor_default == default_order


async def test_cursor_mode_has_next_link_and_no_total(client: httpx.AsyncClient, accounts: Accounts) -> None:
    user = await seeded(client, accounts, 3)
    response = await listing(client, user, cursor="", per_page=2)
    body = response.json()
    assert "total" not in body["meta"]["pagination"]
    next_link = next(link["href"] for link in body["links"] if link["rel"] == "next")
    assert f"cursor={body['meta']['pagination']['next_cursor']}" in next_link
    assert 'rel="next"' in response.headers["Link"]


def _forge(order: str, values: list[Any], last_id: str) -> str:
    raw = orjson.dumps([order, values, last_id])
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@pytest.mark.parametrize(
    "cursor",
    [
        "!!!",
        "bm90IGpzb24",  # "not json"
        _forge("-created_at", ["yesterday"], "0" * 32),
        _forge("-created_at", [], "0" * 32),
        _forge("-created_at", [1], "0" * 32),
        _forge("-created_at", ["2026-01-01T00:00:00"], "0" * 32),  # naive
        _forge("-created_at", ["2026-01-01T00:00:00+00:00"], "not-hex"),
        _forge("price", [100], "0" * 32),  # made for another order
        "A" * 1025,
    ],
)
async def test_a_tampered_or_foreign_cursor_is_422(
    client: httpx.AsyncClient, accounts: Accounts, cursor: str
) -> None:
    user = await accounts.create()
    response = await client.get(PRODUCTS, params={"cursor": cursor}, headers=user.headers)
    assert response.status_code == 422
    assert single_error(response)["field"] == "cursor"


async def test_a_cursor_crafted_by_hand_still_shows_only_what_the_caller_may_see(
    client: httpx.AsyncClient, accounts: Accounts
) -> None:
    owner = await seeded(client, accounts, 2)
    stranger = await accounts.create()
    origin = _forge("-created_at", [(datetime.now(UTC) + timedelta(days=1)).isoformat()], "f" * 32)
    response = await client.get(PRODUCTS, params={"cursor": origin}, headers=stranger.headers)
    assert response.status_code == 200
    assert response.json()["data"] == []
    assert len((await listing(client, owner, cursor=origin)).json()["data"]) == 2


async def test_page_and_cursor_together_are_refused(client: httpx.AsyncClient, accounts: Accounts) -> None:
    user = await accounts.create()
    response = await client.get(PRODUCTS, params={"cursor": "", "page": 2}, headers=user.headers)
    assert response.status_code == 422


# --- Filters -------------------------------------------------------------------------------


async def test_every_filter_selects_exactly_its_rows(client: httpx.AsyncClient, accounts: Accounts) -> None:
    user = await accounts.create()
    folder = await create_folder(client, user)
    await create_product(
        client, user, name="Red Kettle", price="10.00", category="kitchen", tags=["red"], stock=0
    )
    await create_product(
        client, user, name="Blue cup", description="A KETTLE companion", price="3.50", stock=2
    )
    await create_product(client, user, name="100% wool_hat", price="20.00", folder_id=folder["id"], stock=1)
    assert sorted(await names(client, user, q="kettle")) == ["Blue cup", "Red Kettle"]
    assert await names(client, user, q="100%") == ["100% wool_hat"]
    assert await names(client, user, q="w_ol") == []  # LIKE wildcards are literal
    assert await names(client, user, q="_") == ["100% wool_hat"]
    assert await names(client, user, category="kitchen") == ["Red Kettle"]
    assert sorted(await names(client, user, min_price="10")) == ["100% wool_hat", "Red Kettle"]
    assert await names(client, user, max_price="3.50") == ["Blue cup"]
    assert sorted(await names(client, user, min_price="3.5", max_price="10")) == ["Blue cup", "Red Kettle"]
    assert await names(client, user, folder_id=folder["id"]) == ["100% wool_hat"]
    assert await names(client, user, tag="red") == ["Red Kettle"]
    assert await names(client, user, tag="re") == []
    assert await names(client, user, in_stock="false") == ["Red Kettle"]
    assert sorted(await names(client, user, in_stock="true")) == ["100% wool_hat", "Blue cup"]


async def test_created_range_filters(client: httpx.AsyncClient, accounts: Accounts) -> None:
    user = await accounts.create()
    first = await create_product(client, user, name="first")
    await asyncio.sleep(0.01)
    second = await create_product(client, user, name="second")
    middle = second["created_at"]
    assert await names(client, user, created_after=middle) == ["second"]
    assert await names(client, user, created_before=middle) == ["first"]
    assert first["created_at"] < middle
    naive = await client.get(PRODUCTS, params={"created_after": "2026-01-01T00:00:00"}, headers=user.headers)
    assert naive.status_code == 422


@pytest.mark.parametrize(
    "params",
    [
        {"min_price": "-1"},
        {"created_after": "0.5"},
        {"in_stock": "maybe"},
        {"folder_id": "nope"},
        {"q": "x" * 101},
        {"tag": "t" * 51},
        {"created_before": "yesterday"},
    ],
)
async def test_invalid_filters_are_422(
    client: httpx.AsyncClient, accounts: Accounts, params: dict[str, str]
) -> None:
    user = await accounts.create()
    response = await client.get(PRODUCTS, params=params, headers=user.headers)
    assert response.status_code == 422


async def test_an_empty_range_is_an_empty_list_not_an_error(
    client: httpx.AsyncClient, accounts: Accounts
) -> None:
    user = await seeded(client, accounts, 2)
    assert await names(client, user, min_price="5", max_price="4") == []
    reversed_dates = {"created_after": "2026-02-01T00:00:00Z", "created_before": "2026-01-01T00:00:00Z"}
    assert await names(client, user, **reversed_dates) == []


async def test_search_syntax_is_plain_text(client: httpx.AsyncClient, accounts: Accounts) -> None:
    user = await seeded(client, accounts, 1)
    for text in ('AND ( "', "%", "\\", "' OR 1=1 --"):
        response = await client.get(PRODUCTS, params={"q": text}, headers=user.headers)
        assert response.status_code == 200
        assert response.json()["data"] == []


# --- Caching and cost ----------------------------------------------------------------------


async def test_list_weak_etag_gives_304_until_something_changes(
    client: httpx.AsyncClient, accounts: Accounts
) -> None:
    user = await seeded(client, accounts, 2)
    first = await listing(client, user)
    etag = first.headers["ETag"]
    assert etag.startswith('W/"')
    cached = await client.get(PRODUCTS, headers={**user.headers, "If-None-Match": etag})
    assert cached.status_code == 304
    await create_product(client, user, name="new")
    changed = await client.get(PRODUCTS, headers={**user.headers, "If-None-Match": etag})
    assert changed.status_code == 200


@asynccontextmanager
async def count_selects(app: FastAPI) -> AsyncIterator[list[str]]:
    """Every SELECT sent while inside: through SQLAlchemy (its cursor event), and straight
    through asyncpg on a pooled connection (the driver's query logger), as the product
    list reads on PostgreSQL."""
    engine = app.state.resources.db.engine.sync_engine
    statements: list[str] = []

    def keep(statement: str) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            statements.append(statement)

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        keep(statement)

    def logged(query: asyncpg.connection.LoggedQuery) -> None:
        keep(query.query)

    def checkout(_dbapi: Any, pooled: ConnectionPoolEntry, _proxy: Any) -> None:
        if isinstance(pooled.driver_connection, asyncpg.Connection):
            pooled.driver_connection.add_query_logger(logged)

    def checkin(_dbapi: Any, pooled: ConnectionPoolEntry) -> None:
        if isinstance(pooled.driver_connection, asyncpg.Connection):
            pooled.driver_connection.remove_query_logger(logged)

    listeners = (("before_cursor_execute", record), ("checkout", checkout), ("checkin", checkin))
    for name, listener in listeners:
        event.listen(engine, name, listener)
    try:
        yield statements
        await asyncio.sleep(0)  # asyncpg calls its query loggers soon, not at once
    finally:
        for name, listener in listeners:
            event.remove(engine, name, listener)


async def test_a_page_costs_one_query_whatever_its_size(
    client: httpx.AsyncClient, accounts: Accounts, app: FastAPI
) -> None:
    user = await seeded(client, accounts, 25, tags=["a", "b"])
    folder = await create_folder(client, user)
    await create_product(client, user, folder_id=folder["id"])
    async with count_selects(app) as statements:
        body = (await listing(client, user, per_page=1)).json()
    # The session lookup, then the page with its total as a column.
    assert len([s for s in statements if "products" in s]) == 1, statements
    assert body["meta"]["pagination"]["total"] == 26
    for per_page in (1, 26):
        async with count_selects(app) as statements:
            body = (await listing(client, user, per_page=per_page)).json()
        assert len(statements) == 1, statements  # the total counted moments ago is reused
        assert body["meta"]["pagination"]["total"] == 26
    async with count_selects(app) as statements:
        body = (await listing(client, user, per_page=10, page=4, in_stock="false")).json()
    assert len(statements) == 2, statements  # past the end, uncounted: no row carries the total
    assert body["meta"]["pagination"]["total"] == 26
    async with count_selects(app) as statements:
        await listing(client, user, cursor="", per_page=26)
    assert len(statements) == 1, statements


async def test_pages_asked_for_together_share_one_count(
    client: httpx.AsyncClient, accounts: Accounts, app: FastAPI
) -> None:
    user = await seeded(client, accounts, 7)
    resources = app.state.resources
    async with resources.db.sessionmaker() as session:
        principal = await acting_principal(session, user.id)
    assert principal is not None
    order = repository.SORTING.parse(None, None, None)
    pages = [ListParams(page=PageParams(page=n, per_page=2), sort=order) for n in (1, 2, 3, 4, 5)]
    totals = TotalCache(ttl=60)
    async with count_selects(app) as statements:
        # Each call asks for the total before its first query: all five miss together.
        listed = await asyncio.gather(
            *(repository.list_page(resources.db, principal, None, params, totals) for params in pages)
        )
    assert [page.total for page in listed] == [7] * 5
    assert [len(page.items) for page in listed] == [2, 2, 2, 1, 0]
    counts = [s for s in statements if "count(" in s.lower()]
    assert len(counts) == 1, statements


async def test_a_write_through_the_api_shows_in_the_next_total_at_once(
    client: httpx.AsyncClient, accounts: Accounts
) -> None:
    user = await seeded(client, accounts, 2)
    assert (await listing(client, user)).json()["meta"]["pagination"]["total"] == 2
    created = await create_product(client, user)
    assert (await listing(client, user)).json()["meta"]["pagination"]["total"] == 3
    assert (await client.delete(f"{PRODUCTS}/{created['id']}", headers=user.headers)).status_code == 204
    assert (await listing(client, user)).json()["meta"]["pagination"]["total"] == 2


async def login(client: httpx.AsyncClient, user: TestUser) -> dict[str, str]:
    response = await client.post("/api/v2/auth/login", json={"email": user.email, "password": user.password})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['data']['access_token']}"}


async def test_another_replicas_write_shows_in_totals_within_the_cache_period(
    client_with: Any, accounts: Accounts
) -> None:
    user = await accounts.create()
    body = {"name": "replicated", "price": "1", "currency": "EUR", "tags": ["replica"]}
    async with client_with(list_total_cache_ms=60_000) as this, client_with() as replica:
        mine, theirs = await login(this, user), await login(replica, user)
        assert (await this.post(PRODUCTS, json=body, headers=mine)).status_code == 201
        counted = await this.get(PRODUCTS, params={"tag": "replica"}, headers=mine)
        assert counted.json()["meta"]["pagination"]["total"] == 1
        assert (await replica.post(PRODUCTS, json=body, headers=theirs)).status_code == 201
        again = (await this.get(PRODUCTS, params={"tag": "replica"}, headers=mine)).json()
        assert again["meta"]["pagination"]["total"] == 1  # counted moments ago, by this process
        assert len(again["data"]) == 2  # the rows themselves are always read fresh
    async with client_with(list_total_cache_ms=0) as uncached:
        fresh = await uncached.get(PRODUCTS, params={"tag": "replica"}, headers=await login(uncached, user))
        assert fresh.json()["meta"]["pagination"]["total"] == 2


async def test_the_total_counts_owned_and_shared_rows_once(
    client: httpx.AsyncClient, accounts: Accounts
) -> None:
    owner = await seeded(client, accounts, 3)
    reader = await seeded(client, accounts, 2)
    folder = await create_folder(client, owner)
    shared = await create_product(client, owner, folder_id=folder["id"])
    await share(client, owner, folder_url(folder["id"]), reader, "viewer")
    await share(client, owner, f"{PRODUCTS}/{shared['id']}", reader, "viewer")  # reached twice
    body = (await listing(client, reader, per_page=2)).json()
    assert body["meta"]["pagination"]["total"] == 3
    ids = [item["id"] for item in (await listing(client, reader, per_page=100)).json()["data"]]
    assert len(ids) == len(set(ids)) == 3
