"""The jobs API on both backends: a user sees and cancels only their own jobs; admins see
everyone's and retry the dead ones."""

from __future__ import annotations

import uuid

import httpx
import pytest
from fastapi import FastAPI

from keel.platform.queue import JobContext, Retry, enqueue, task
from keel.platform.resources import Resources
from tests.identity import TestUser
from tests.jobs.conftest import EXPORT_JOBS, JOBS, job_url, read_job, run_jobs, submit_export

pytestmark = pytest.mark.usefixtures("settle_queue")

ADMIN_JOBS = "/api/v2/admin/jobs"
DOOMED = "tests.jobs.doomed"


@task(DOOMED, max_attempts=1)
async def doomed(ctx: JobContext) -> None:
    raise Retry("the receiving system is down")


async def dead_job(app: FastAPI, owner: TestUser) -> str:
    """A job of ``owner`` whose only attempt failed."""
    resources: Resources = app.state.resources
    async with resources.db.writer() as session:
        job_id = await enqueue(session, DOOMED, {}, owner_id=owner.id)
        await session.commit()
    await run_jobs(app)
    return str(job_id)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", JOBS),
        ("GET", f"{JOBS}/webhook-secret"),
        ("GET", job_url(str(uuid.uuid4()))),
        ("POST", job_url(str(uuid.uuid4()), "/cancel")),
        ("GET", job_url(str(uuid.uuid4()), "/download")),
        ("GET", ADMIN_JOBS),
        ("POST", f"{ADMIN_JOBS}/{uuid.uuid4()}/retry"),
        ("POST", EXPORT_JOBS),
    ],
)
async def test_anonymous_gets_401_on_every_jobs_endpoint(
    client: httpx.AsyncClient, method: str, path: str
) -> None:
    response = await client.request(method, path, json={} if method == "POST" else None)
    assert response.status_code == 401, response.text
    assert response.json()["errors"][0]["code"] == "AUTHENTICATION_REQUIRED"


async def test_a_job_shows_status_progress_and_a_self_link_with_an_etag(
    client: httpx.AsyncClient, owner: TestUser
) -> None:
    job_id = await submit_export(client, owner)
    response = await client.get(job_url(job_id), headers=owner.headers)
    assert response.status_code == 200
    data = response.json()["data"]
    assert set(data) == {
        "id",
        "kind",
        "status",
        "progress",
        "result",
        "error",
        "attempts",
        "max_attempts",
        "created_at",
        "started_at",
        "finished_at",
        "run_at",
    }
    assert data["id"] == job_id
    assert (data["kind"], data["status"], data["progress"], data["attempts"]) == (
        "products.export",
        "queued",
        0,
        0,
    )
    assert data["created_at"].endswith("Z")
    assert {"href": job_url(job_id), "rel": "self", "method": "GET"} in response.json()["links"]
    again = await client.get(
        job_url(job_id), headers={**owner.headers, "If-None-Match": response.headers["ETag"]}
    )
    assert again.status_code == 304


async def test_the_list_holds_only_your_own_jobs_newest_first(
    client: httpx.AsyncClient, owner: TestUser, stranger: TestUser
) -> None:
    first = await submit_export(client, owner)
    second = await submit_export(client, owner)
    theirs = await submit_export(client, stranger)
    response = await client.get(JOBS, params={"per_page": 100}, headers=owner.headers)
    assert response.status_code == 200
    ids = [job["id"] for job in response.json()["data"]]
    assert theirs not in ids
    assert ids.index(second) < ids.index(first)
    assert response.json()["meta"]["pagination"]["total"] == len(ids)


async def test_the_list_filters_by_status_and_kind_and_pages_by_cursor(
    client: httpx.AsyncClient, owner: TestUser
) -> None:
    cancelled = await submit_export(client, owner)
    assert (await client.post(job_url(cancelled, "/cancel"), headers=owner.headers)).status_code == 200
    response = await client.get(
        JOBS, params={"status": "cancelled", "kind": "products.export"}, headers=owner.headers
    )
    assert cancelled in [job["id"] for job in response.json()["data"]]
    assert {job["status"] for job in response.json()["data"]} == {"cancelled"}
    none = await client.get(JOBS, params={"kind": "documents.process"}, headers=owner.headers)
    assert none.json()["data"] == []

    seen: list[str] = []
    params: dict[str, str | int] = {"cursor": "", "per_page": 1, "status": "cancelled"}
    while True:
        page = (await client.get(JOBS, params=params, headers=owner.headers)).json()
        seen += [job["id"] for job in page["data"]]
        if not page["meta"]["pagination"]["has_next"]:
            break
        params["cursor"] = page["meta"]["pagination"]["next_cursor"]
    assert cancelled in seen
    assert len(seen) == len(set(seen))


@pytest.mark.parametrize("query", [{"per_page": 0}, {"per_page": 101}, {"status": "lost"}, {"sort": "kind"}])
async def test_list_parameters_out_of_range_are_refused(
    client: httpx.AsyncClient, owner: TestUser, query: dict[str, str | int]
) -> None:
    response = await client.get(JOBS, params=query, headers=owner.headers)
    assert response.status_code == 422, response.text


async def test_another_users_job_is_not_found_on_every_route(
    client: httpx.AsyncClient, owner: TestUser, stranger: TestUser
) -> None:
    job_id = await submit_export(client, owner)
    for method, path in (
        ("GET", job_url(job_id)),
        ("POST", job_url(job_id, "/cancel")),
        ("GET", job_url(job_id, "/download")),
    ):
        response = await client.request(method, path, headers=stranger.headers)
        assert response.status_code == 404, (method, path, response.text)
        assert response.json()["errors"][0]["code"] == "NOT_FOUND"
    assert (await read_job(client, owner, job_id))["status"] == "queued"


async def test_cancelling_a_queued_job_cancels_it_once(
    client: httpx.AsyncClient, owner: TestUser, admin: TestUser
) -> None:
    job_id = await submit_export(client, owner)
    response = await client.post(job_url(job_id, "/cancel"), headers=owner.headers)
    assert response.status_code == 200, response.text
    assert response.json()["data"]["status"] == "cancelled"
    assert response.json()["data"]["finished_at"] is not None

    again = await client.post(job_url(job_id, "/cancel"), headers=owner.headers)
    assert again.status_code == 409
    assert again.json()["errors"][0]["code"] == "CONFLICT"

    audit = await client.get(
        "/api/v2/admin/audit-logs", params={"action": "job.cancelled"}, headers=admin.headers
    )
    assert job_id in [entry["resource_id"] for entry in audit.json()["data"]]


async def test_a_finished_job_cannot_be_cancelled(
    app: FastAPI, client: httpx.AsyncClient, owner: TestUser
) -> None:
    job_id = await submit_export(client, owner)
    await run_jobs(app)
    assert (await read_job(client, owner, job_id))["status"] == "succeeded"
    response = await client.post(job_url(job_id, "/cancel"), headers=owner.headers)
    assert response.status_code == 409


async def test_there_is_nothing_to_download_before_the_job_succeeds(
    client: httpx.AsyncClient, owner: TestUser
) -> None:
    job_id = await submit_export(client, owner)
    response = await client.get(job_url(job_id, "/download"), headers=owner.headers)
    assert response.status_code == 404


async def test_an_admin_lists_dead_jobs_and_retries_one(
    app: FastAPI, client: httpx.AsyncClient, owner: TestUser, admin: TestUser
) -> None:
    job_id = await dead_job(app, owner)
    dead = await client.get(ADMIN_JOBS, params={"status": "dead", "kind": DOOMED}, headers=admin.headers)
    assert dead.status_code == 200
    listed = {job["id"]: job for job in dead.json()["data"]}
    assert listed[job_id]["owner_id"] == str(owner.id)
    assert listed[job_id]["error"] == "the receiving system is down"

    response = await client.post(f"{ADMIN_JOBS}/{job_id}/retry", headers=admin.headers)
    assert response.status_code == 200, response.text
    retried = response.json()["data"]
    assert (retried["status"], retried["attempts"]) == ("queued", 0)
    assert retried["error"] == "the receiving system is down"  # kept: why it died

    again = await client.post(f"{ADMIN_JOBS}/{job_id}/retry", headers=admin.headers)
    assert again.status_code == 409
    audit = await client.get(
        "/api/v2/admin/audit-logs", params={"action": "job.retried"}, headers=admin.headers
    )
    assert job_id in [entry["resource_id"] for entry in audit.json()["data"]]


async def test_only_admins_see_everyones_jobs_or_retry(
    app: FastAPI, client: httpx.AsyncClient, owner: TestUser
) -> None:
    job_id = await dead_job(app, owner)
    assert (await client.get(ADMIN_JOBS, headers=owner.headers)).status_code == 403
    response = await client.post(f"{ADMIN_JOBS}/{job_id}/retry", headers=owner.headers)
    assert response.status_code == 403
    assert (await read_job(client, owner, job_id))["status"] == "dead"


async def test_retrying_an_unknown_job_is_404(client: httpx.AsyncClient, admin: TestUser) -> None:
    response = await client.post(f"{ADMIN_JOBS}/{uuid.uuid4()}/retry", headers=admin.headers)
    assert response.status_code == 404


async def test_the_webhook_secret_is_stable_and_per_user(
    client: httpx.AsyncClient, owner: TestUser, stranger: TestUser
) -> None:
    async def secret(user: TestUser) -> str:
        response = await client.get(f"{JOBS}/webhook-secret", headers=user.headers)
        assert response.status_code == 200
        assert response.headers["Cache-Control"] == "private, no-store"
        value: str = response.json()["data"]["secret"]
        return value

    mine = await secret(owner)
    assert mine.startswith("whsec_")
    assert mine == await secret(owner)
    assert mine != await secret(stranger)
