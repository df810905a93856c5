"""Every pooled database connection busy: requests get 503 with `Retry-After`, not a
500, whether the wait happens in a route or while authenticating; once a connection is
free again they are served. On both backends."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text

from keel.app import create_app
from keel.platform.resources import Resources
from tests.conftest import make_settings, serve_app
from tests.identity import Accounts

PRODUCTS = "/api/v2/products"


async def test_a_full_pool_is_503_with_retry_after_then_serves_again(
    backend_settings: dict[str, Any],
) -> None:
    settings = make_settings(**backend_settings, db_pool_size=1, db_max_overflow=0, db_pool_timeout=0.2)
    app = create_app(settings)
    async with serve_app(app) as client:
        resources: Resources = app.state.resources
        user = await Accounts(app, client).create()
        assert (await client.get(PRODUCTS, headers=user.headers)).status_code == 200

        async with resources.db.engine.connect() as held:
            await held.execute(text("SELECT 1"))
            response = await client.get(PRODUCTS, headers=user.headers)
            assert response.status_code == 503, response.text
            assert response.headers["retry-after"] == "1"
            body = response.json()
            assert body["errors"][0]["code"] == "SERVICE_UNAVAILABLE"
            assert "Traceback" not in response.text
            assert "QueuePool" not in response.text

        assert (await client.get(PRODUCTS, headers=user.headers)).status_code == 200
