"""``keel demo seed``: the seed function on a migrated SQLite file, read back through the
API; and the command once as the operator runs it."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from keel.app import create_app
from keel.demo import FOLDER_TREE, SeedRefused, seed
from keel.folders.models import Folder
from keel.platform.db.engine import Database
from keel.products.models import Product
from keel.settings import Settings
from keel.users.models import User
from tests import services
from tests.conftest import make_settings, migrate, serve_app
from tests.identity import PASSWORD, unique_email
from tests.test_cli import keel

PRODUCTS = "/api/v2/products"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    settings = make_settings(database_url=f"sqlite+aiosqlite:///{tmp_path}/keel.db")
    migrate(settings)
    return settings


async def _scalar(settings: Settings, statement: Any) -> Any:
    db = Database.from_settings(settings)
    try:
        async with db.sessionmaker() as session:
            return (await session.execute(statement)).scalar_one()
    finally:
        await db.dispose()


async def _rows(settings: Settings, statement: Any) -> list[Any]:
    db = Database.from_settings(settings)
    try:
        async with db.sessionmaker() as session:
            return list((await session.execute(statement)).all())
    finally:
        await db.dispose()


async def _login(client: httpx.AsyncClient, email: str, password: str) -> dict[str, str]:
    response = await client.post("/api/v2/auth/login", json={"email": email, "password": password})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['data']['access_token']}"}


async def test_seed_creates_an_account_nested_folders_and_products(settings: Settings) -> None:
    email = unique_email("demo")
    result = await seed(settings, products=60, email=email, password=PASSWORD, rng=random.Random(7))

    assert (result.created_user, result.password, result.products_created) == (True, None, 60)
    assert await _scalar(settings, select(func.count()).select_from(User).where(User.email == email)) == 1
    folders = await _rows(
        settings,
        select(Folder.id, Folder.name, Folder.parent_id, Folder.depth).where(
            Folder.owner_id == result.user_id
        ),
    )
    by_id = {row.id: row for row in folders}
    tops = {row.name: row.id for row in folders if row.parent_id is None}
    assert set(tops) == set(FOLDER_TREE)
    assert {row.depth for row in folders if row.parent_id is None} == {1}
    for name, children in FOLDER_TREE.items():
        below = {row.name for row in folders if row.parent_id == tops[name]}
        assert below == set(children)
    assert {row.depth for row in folders if row.parent_id is not None} == {2}
    assert sorted(result.folder_ids, key=str) == sorted(by_id, key=str)

    products = await _rows(
        settings,
        select(Product.folder_id, Product.stock, Product.currency, Product.created_at, Product.version).where(
            Product.owner_id == result.user_id
        ),
    )
    assert len(products) == 60
    places = Counter(row.folder_id for row in products)
    assert None in places  # some at the root
    assert len(places) > 5  # and spread over the folders
    assert set(places) - {None} <= set(by_id)
    assert {row.version for row in products} == {1}
    assert len({row.currency for row in products}) > 1
    created = [row.created_at for row in products]
    assert (max(created) - min(created)).days >= 7  # sorting by date means something

    async with serve_app(create_app(settings)) as client:
        headers = await _login(client, email, PASSWORD)
        listed = (await client.get(PRODUCTS, params={"per_page": 5}, headers=headers)).json()
        assert listed["meta"]["pagination"]["total"] == 60
        first = listed["data"][0]
        one = await client.get(f"{PRODUCTS}/{first['id']}", headers=headers)
        assert one.status_code == 200, one.text
        assert one.json()["data"] == first
        by_price = (await client.get(PRODUCTS, params={"sort": "price"}, headers=headers)).json()["data"]
        prices = [float(product["price"]) for product in by_price]
        assert prices == sorted(prices)


async def test_seeding_the_same_email_again_adds_products_to_the_same_account(settings: Settings) -> None:
    email = unique_email("demo")
    first = await seed(settings, products=30, email=email, password=PASSWORD)
    again = await seed(settings, products=30, email=email.upper(), password="ignored for an existing one")

    assert (again.user_id, again.created_user, again.password) == (first.user_id, False, None)
    assert (again.folders_created, again.folder_ids) == (0, first.folder_ids)
    assert await _scalar(settings, select(func.count()).select_from(User)) == 1
    assert await _scalar(settings, select(func.count()).select_from(Folder)) == 9
    count = select(func.count()).select_from(Product).where(Product.owner_id == first.user_id)
    assert await _scalar(settings, count) == 60
    ids = await _rows(settings, select(Product.id))
    assert len({row.id for row in ids}) == 60

    async with serve_app(create_app(settings)) as client:
        headers = await _login(client, email, PASSWORD)
        listed = (await client.get(PRODUCTS, headers=headers)).json()
        assert listed["meta"]["pagination"]["total"] == 60


async def test_a_generated_password_is_returned_and_logs_in(settings: Settings) -> None:
    email = unique_email("demo")
    result = await seed(settings, products=3, email=email)
    assert result.password is not None
    assert len(result.password) >= 12
    async with serve_app(create_app(settings)) as client:
        headers = await _login(client, email, result.password)
        listed = (await client.get(PRODUCTS, headers=headers)).json()
        assert listed["meta"]["pagination"]["total"] == 3


async def test_batches_cover_counts_that_are_not_a_multiple_of_the_batch(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("keel.demo.BATCH_SIZE", 7)
    seen: list[tuple[int, int]] = []
    result = await seed(
        settings,
        products=23,
        email=unique_email("demo"),
        password=PASSWORD,
        progress=lambda d, t: seen.append((d, t)),
    )
    assert seen == [(7, 23), (14, 23), (21, 23), (23, 23)]
    count = select(func.count()).select_from(Product).where(Product.owner_id == result.user_id)
    assert await _scalar(settings, count) == 23


async def test_seed_on_postgresql_lists_through_the_api(postgres_url: str, redis_url: str) -> None:
    """The shared test database holds other tests' rows: count only this account's."""
    settings = make_settings(
        database_url=postgres_url, redis_url=redis_url, redis_key_prefix=services.REDIS_PREFIX
    )
    email = unique_email("demo")
    result = await seed(settings, products=40, email=email, password=PASSWORD)
    again = await seed(settings, products=10, email=email)
    assert (again.user_id, again.created_user, again.folder_ids) == (result.user_id, False, result.folder_ids)
    owned = select(func.count()).select_from(Product).where(Product.owner_id == result.user_id)
    assert await _scalar(settings, owned) == 50
    assert len(await _rows(settings, select(Folder.id).where(Folder.owner_id == result.user_id))) == 9

    async with serve_app(create_app(settings)) as client:
        headers = await _login(client, email, PASSWORD)
        listed = (await client.get(PRODUCTS, params={"tag": "sale"}, headers=headers)).json()
        assert all("sale" in product["tags"] for product in listed["data"])
        listed = (await client.get(PRODUCTS, headers=headers)).json()
        assert listed["meta"]["pagination"]["total"] == 50


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"email": "demo@keel.local"}, "--email"),
        ({"email": "not an address"}, "--email"),
        ({"password": "password1234"}, "--password"),
        ({"products": -1}, "--products"),
        ({"products": 1_000_001}, "--products"),
    ],
)
async def test_bad_input_is_refused_naming_the_option(
    settings: Settings, options: dict[str, Any], named: str
) -> None:
    values: dict[str, Any] = {"email": unique_email("demo"), "products": 1, **options}
    with pytest.raises(SeedRefused, match=named):
        await seed(settings, **values)
    assert await _scalar(settings, select(func.count()).select_from(User)) == 0


def test_the_command_migrates_seeds_and_prints_how_to_list(tmp_path: Path) -> None:
    database = f"sqlite+aiosqlite:///{tmp_path}/fresh.db"
    env = {"KEEL_ENV": "test", "KEEL_DATABASE_URL": database}

    first = keel("demo", "seed", "--products", "12", env=env, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "demo@example.com (created" in first.stdout
    assert "password: " in first.stdout
    assert "products: 12 added" in first.stdout
    assert "/api/v2/products" in first.stdout

    again = keel("demo", "seed", "--products", "5", env=env, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "demo@example.com (existing" in again.stdout
    assert "password: " not in again.stdout
    assert "folders: 9 (0 created)" in again.stdout


def test_the_command_refuses_a_bad_email_with_exit_code_2(tmp_path: Path) -> None:
    env = {"KEEL_ENV": "test", "KEEL_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/fresh.db"}
    result = keel("demo", "seed", "--email", "root@localhost", env=env, cwd=tmp_path)
    assert result.returncode == 2
    assert "--email" in result.stderr
    assert "Traceback" not in result.stderr
