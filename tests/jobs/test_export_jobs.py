"""POST /products/export-jobs on both backends: 202 and a job, whose file is what
GET /products/export streams for the same caller and filters."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import anyio
import httpx
import orjson
import pytest
from fastapi import FastAPI

from keel.platform.queue.context import JobContext
from keel.products import export
from keel.users.models import Role
from tests.catalog import PRODUCTS, create_product, product_url, share
from tests.conftest import ClientFactory
from tests.identity import Accounts, TestUser
from tests.jobs.conftest import EXPORT_JOBS, job_url, read_job, run_jobs, submit_export

pytestmark = pytest.mark.usefixtures("settle_queue")


@pytest.fixture
async def shopper(accounts: Accounts) -> TestUser:
    """A user of one's own (so the rows an export holds are known exactly)."""
    return await accounts.create()


def category() -> str:
    return f"cat-{secrets.token_hex(4)}"


async def test_an_export_job_is_accepted_with_202_and_location(
    client: httpx.AsyncClient, owner: TestUser
) -> None:
    response = await client.post(
        EXPORT_JOBS, json={"format": "ndjson", "async_processing": True}, headers=owner.headers
    )
    assert response.status_code == 202, response.text
    data = response.json()["data"]
    assert data == {"job_id": data["job_id"], "status": "queued"}
    assert response.headers["Location"] == job_url(data["job_id"])
    assert (await read_job(client, owner, data["job_id"]))["kind"] == "products.export"


@pytest.mark.parametrize("format", ["csv", "ndjson"])
async def test_the_file_is_what_the_streamed_export_gives(
    app: FastAPI, client: httpx.AsyncClient, shopper: TestUser, stranger: TestUser, format: str
) -> None:
    tag = category()
    mine = [await create_product(client, shopper, category=tag, price=f"{i}.50") for i in range(3)]
    await create_product(client, shopper, category=tag, price="99.00")  # filtered out by max_price
    theirs = await create_product(client, stranger, category=tag)
    shared = await create_product(client, stranger, category=tag, name="Shared with the shopper")
    await share(client, stranger, product_url(shared["id"]), shopper, "viewer")

    filters = {"category": tag, "max_price": "50"}
    job_id = await submit_export(client, shopper, format=format, filters=filters)
    assert await run_jobs(app) >= 1

    job = await read_job(client, shopper, job_id)
    assert (job["status"], job["progress"], job["error"]) == ("succeeded", 100, None)
    download = await client.get(job_url(job_id, "/download"), headers=shopper.headers)
    assert download.status_code == 200
    assert download.headers["Content-Disposition"].startswith("attachment;")
    assert job["result"] == {
        "rows": 4,
        "bytes": len(download.content),
        "format": format,
        "download": job_url(job_id, "/download"),
    }
    streamed = await client.get(
        f"{PRODUCTS}/export", params={"format": format, **filters}, headers=shopper.headers
    )
    assert download.content == streamed.content

    ids = {product["id"] for product in mine} | {shared["id"]}
    if format == "ndjson":
        assert {orjson.loads(line)["id"] for line in download.content.splitlines()} == ids
    assert theirs["id"].encode() not in download.content


async def test_an_export_of_nothing_is_a_header_only_csv(
    app: FastAPI, client: httpx.AsyncClient, shopper: TestUser
) -> None:
    job_id = await submit_export(client, shopper, filters={"category": category()})
    await run_jobs(app)
    job = await read_job(client, shopper, job_id)
    assert job["result"]["rows"] == 0
    download = await client.get(job_url(job_id, "/download"), headers=shopper.headers)
    assert download.content.startswith(b"id,name,")


async def test_progress_is_reported_while_the_export_runs(
    app: FastAPI,
    client: httpx.AsyncClient,
    shopper: TestUser,
    export_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tag = category()
    for _ in range(5):
        await create_product(client, shopper, category=tag)
    job_id = await submit_export(client, shopper, filters={"category": tag})
    monkeypatch.setattr(export, "BATCH_SIZE", 2)
    seen: list[tuple[str, int]] = []
    report = JobContext.progress

    async def observed(ctx: JobContext, percent: int) -> None:
        await report(ctx, percent)
        job = await read_job(client, shopper, job_id)  # what a polling client sees meanwhile
        seen.append((job["status"], job["progress"]))

    monkeypatch.setattr(JobContext, "progress", observed)
    await run_jobs(app)
    assert seen == [("running", 40), ("running", 80), ("running", 99)]
    assert (await read_job(client, shopper, job_id))["progress"] == 100
    # Written under a temporary name, then renamed: nothing else is left behind.
    assert [path.name async for path in anyio.Path(export_dir).iterdir()] == [f"{job_id}.csv"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"format": "xml"}, "format"),
        ({"async_processing": False}, "async_processing"),
        ({"filters": {"colour": "red"}}, "filters.colour"),
        ({"filters": {"min_price": "-1"}}, "filters.min_price"),
        ({"webhook_url": "ftp://example.com/hook"}, "webhook_url"),
        ({"webhook_url": "https://user:pw@example.com/hook"}, "webhook_url"),
        ({"surprise": True}, "surprise"),
    ],
)
async def test_invalid_export_jobs_are_refused_with_a_field_error(
    client: httpx.AsyncClient, owner: TestUser, body: dict[str, Any], field: str
) -> None:
    response = await client.post(EXPORT_JOBS, json=body, headers=owner.headers)
    assert response.status_code == 422, response.text
    assert field in [error["field"] for error in response.json()["errors"]]


async def test_a_guest_without_jobs_write_gets_403(client: httpx.AsyncClient, accounts: Accounts) -> None:
    guest = await accounts.create(role=Role.GUEST)
    response = await client.post(EXPORT_JOBS, json={}, headers=guest.headers)
    assert response.status_code == 403


async def test_a_loopback_webhook_url_is_refused_unless_the_operator_allows_it(
    client: httpx.AsyncClient, owner: TestUser, client_with: ClientFactory
) -> None:
    created = await client.post(
        "/api/v2/api-keys",
        json={"name": "exports", "scopes": ["products:read", "jobs:write"]},
        headers=owner.headers,
    )
    key = {"X-API-Key": created.json()["data"]["secret"]}
    body = {"webhook_url": "http://127.0.0.1/"}
    async with client_with() as strict:
        response = await strict.post(EXPORT_JOBS, json=body, headers=key)
    assert response.status_code == 422, response.text
    error = response.json()["errors"][0]
    assert (error["code"], error["field"]) == ("VALIDATION_ERROR", "webhook_url")
    assert "private or reserved" in error["message"]
    # This module's app allows private targets (for its loopback receivers).
    assert (await client.post(EXPORT_JOBS, json=body, headers=key)).status_code == 202


async def test_a_retried_submission_with_an_idempotency_key_makes_one_job(
    client: httpx.AsyncClient, owner: TestUser
) -> None:
    headers = {**owner.headers, "Idempotency-Key": f"export-{secrets.token_hex(6)}"}
    first = await client.post(EXPORT_JOBS, json={"format": "csv"}, headers=headers)
    again = await client.post(EXPORT_JOBS, json={"format": "csv"}, headers=headers)
    assert (first.status_code, again.status_code) == (202, 202)
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["data"]["job_id"] == first.json()["data"]["job_id"]


async def test_v1_clients_get_the_plain_shapes_and_v1_locations(
    client: httpx.AsyncClient, owner: TestUser
) -> None:
    response = await client.post("/api/v1/products/export-jobs", json={}, headers=owner.headers)
    assert response.status_code == 202
    job_id = response.json()["job_id"]
    assert response.headers["Location"] == f"/api/v1/jobs/{job_id}"
    job = await client.get(f"/api/v1/jobs/{job_id}", headers=owner.headers)
    assert (job.json()["id"], job.json()["status"]) == (job_id, "queued")
