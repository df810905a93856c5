"""Documents over HTTP, on both backends: upload (content-checked types, size cap, no temp
file left behind), processing into chunks, reads, download, visibility and deletion."""

from __future__ import annotations

import hashlib
import itertools
import os
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from fastapi import FastAPI

from keel.app import create_app
from keel.documents import flows, repository, service
from keel.documents.models import Status
from keel.documents.router import content_disposition
from keel.documents.tasks import SWEEP_UPLOADS_TASK
from keel.platform.db.base import utcnow
from keel.platform.queue import enqueue
from keel.platform.queue.worker import claim, drain, reap
from keel.platform.resources import Resources
from keel.platform.storage import LocalStorage
from keel.tasks import registry
from keel.users.models import Role
from tests.catalog import create_product, product_url, share, single_error
from tests.conftest import make_settings, serve_app
from tests.documents_api.conftest import CHUNK_OVERLAP, CHUNK_SIZE
from tests.documents_api.files import ELF, LONG_TEXT, text_pdf, word_docx
from tests.identity import Accounts, TestUser

DOCUMENTS = "/api/v2/documents"
DOCX_TYPE = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


def document_url(document_id: str) -> str:
    return f"{DOCUMENTS}/{document_id}"


@pytest.fixture(scope="module")
async def owner(accounts: Accounts) -> TestUser:
    return await accounts.create()


@pytest.fixture(scope="module")
async def stranger(accounts: Accounts) -> TestUser:
    return await accounts.create()


@pytest.fixture(scope="module")
def resources(app: FastAPI) -> Resources:
    resources: Resources = app.state.resources
    return resources


async def upload(
    client: httpx.AsyncClient,
    user: TestUser,
    content: bytes,
    filename: str = "notes.txt",
    *,
    url: str = DOCUMENTS,
    headers: Mapping[str, str] | None = None,
    **fields: str,
) -> httpx.Response:
    return await client.post(
        url,
        files={"file": (filename, content, "application/octet-stream")},
        data=fields,
        headers={**user.headers, **(headers or {})},
    )


async def uploaded(
    client: httpx.AsyncClient, user: TestUser, content: bytes, filename: str = "notes.txt", **fields: str
) -> dict[str, Any]:
    # mypy cannot tell that **fields never holds `url` or `headers`.
    response = await upload(client, user, content, filename, **fields)  # type: ignore[arg-type]
    assert response.status_code in (201, 202), response.text
    data: dict[str, Any] = response.json()["data"]
    return data


async def read(client: httpx.AsyncClient, user: TestUser, document_id: str) -> dict[str, Any]:
    response = await client.get(document_url(document_id), headers=user.headers)
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


async def chunks(client: httpx.AsyncClient, user: TestUser, document_id: str) -> list[dict[str, Any]]:
    response = await client.get(
        f"{document_url(document_id)}/chunks", params={"per_page": 100}, headers=user.headers
    )
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["data"]
    return items


def temp_files(storage_dir: Path) -> list[Path]:
    return list((storage_dir / "tmp").iterdir())


def assert_sane(items: list[dict[str, Any]]) -> None:
    assert [item["index"] for item in items] == list(range(len(items)))
    for item in items:
        assert 0 < len(item["text"]) <= CHUNK_SIZE
        assert item["end_char"] - item["start_char"] == len(item["text"])
    for previous, following in itertools.pairwise(items):
        # Overlapping, by at most the configured overlap, and moving forward.
        assert previous["start_char"] < following["start_char"] < previous["end_char"]
        assert previous["end_char"] - following["start_char"] <= CHUNK_OVERLAP


# --- Upload and processing ---------------------------------------------------------------


def fixed(content: bytes) -> Callable[[Path], bytes]:
    return lambda _directory: content


HTML_PAGE = f"<!doctype html><html><body><h1>Title</h1><p>{LONG_TEXT}</p></body></html>"
# (file name, how to make the file in a directory, detected type, text a chunk holds)
UPLOADS = [
    ("long.txt", fixed(LONG_TEXT.encode()), "text/plain", "Section 5."),
    ("notes.md", fixed(("# Notes\n\n" + LONG_TEXT).encode()), "text/markdown", "Section 3."),
    ("page.html", fixed(HTML_PAGE.encode()), "text/html", "Section 2."),
    ("report.pdf", fixed(text_pdf("Hello from a PDF")), "application/pdf", "Hello from a PDF"),
    ("report.docx", word_docx, DOCX_TYPE, "Revenue grew"),
]


@pytest.mark.parametrize("case", UPLOADS, ids=[case[0] for case in UPLOADS])
async def test_upload_is_accepted_then_processed_into_sane_chunks(
    client: httpx.AsyncClient,
    owner: TestUser,
    resources: Resources,
    tmp_path: Path,
    case: tuple[str, Callable[[Path], bytes], str, str],
) -> None:
    filename, make, media_type, expected = case
    content = make(tmp_path)
    response = await upload(client, owner, content, filename)
    assert response.status_code == 202, response.text
    document = response.json()["data"]
    assert document["status"] == "pending"
    assert document["media_type"] == media_type
    assert document["size_bytes"] == len(content)
    assert document["sha256"] == hashlib.sha256(content).hexdigest()
    assert document["title"] == filename
    assert response.headers["Location"] == f"/api/v2/jobs/{document['job_id']}"
    assert {"rel": "monitor", "href": response.headers["Location"], "method": "GET"} in [
        {key: link.get(key) for key in ("rel", "href", "method")} for link in response.json()["links"]
    ]

    await drain(resources)

    processed = await read(client, owner, document["id"])
    assert processed["status"] == "ready", processed
    items = await chunks(client, owner, document["id"])
    assert processed["chunk_count"] == len(items) > 0
    assert_sane(items)
    assert any(expected in item["text"] for item in items)


async def test_long_text_spans_several_overlapping_chunks(
    client: httpx.AsyncClient, owner: TestUser, resources: Resources
) -> None:
    document = await uploaded(client, owner, LONG_TEXT.encode(), "long.txt", async_processing="false")
    items = await chunks(client, owner, document["id"])
    assert len(items) > 3
    assert_sane(items)


async def test_synchronous_processing_answers_201_with_the_ready_document(
    client: httpx.AsyncClient, owner: TestUser
) -> None:
    response = await upload(
        client, owner, b"Processed at once.", "now.txt", async_processing="false", title="Now"
    )
    assert response.status_code == 201, response.text
    document = response.json()["data"]
    assert document["status"] == "ready"
    assert document["title"] == "Now"
    assert document["chunk_count"] == 1
    assert document["processed_at"] is not None


async def test_script_content_never_reaches_a_chunk(client: httpx.AsyncClient, owner: TestUser) -> None:
    html = (
        b"<html><head><script>var secret = 1;</script><style>.secret{}</style></head>"
        b"<body><p>Visible words.</p><script>secret()</script></body></html>"
    )
    document = await uploaded(client, owner, html, "page.html", async_processing="false")
    assert document["status"] == "ready"
    items = await chunks(client, owner, document["id"])
    assert items
    assert all("secret" not in item["text"] for item in items)
    assert any("Visible words." in item["text"] for item in items)


async def test_an_executable_renamed_pdf_is_415_and_leaves_no_temp_file(
    client: httpx.AsyncClient, owner: TestUser, storage_dir: Path
) -> None:
    response = await upload(client, owner, ELF, "invoice.pdf")
    assert response.status_code == 415, response.text
    assert single_error(response)["code"] == "UNSUPPORTED_MEDIA_TYPE"
    assert temp_files(storage_dir) == []


async def test_a_broken_pdf_header_is_415(client: httpx.AsyncClient, owner: TestUser) -> None:
    response = await upload(client, owner, b"%PDF-1.7\nnot really a pdf", "x.pdf")
    assert response.status_code == 415


async def test_an_upload_over_the_cap_is_413_while_streaming_and_leaves_no_temp_file(
    backend_settings: dict[str, Any], tmp_path: Path
) -> None:
    storage_dir = tmp_path / "storage"
    sent = 0

    async def body() -> AsyncIterator[bytes]:
        nonlocal sent
        yield b'--b\r\nContent-Disposition: form-data; name="file"; filename="big.txt"\r\n\r\n'
        for _ in range(64):  # 4 MiB in all, without a Content-Length (chunked)
            sent += 1
            yield b"a" * 65536
        yield b"\r\n--b--\r\n"

    app = create_app(make_settings(**backend_settings, upload_max_bytes=64 * 1024, storage_dir=storage_dir))
    async with serve_app(app) as client:
        user = await Accounts(app, client).create()
        response = await client.post(
            DOCUMENTS,
            content=body(),
            headers={**user.headers, "Content-Type": "multipart/form-data; boundary=b"},
        )
    assert response.status_code == 413, response.text
    assert single_error(response)["code"] == "PAYLOAD_TOO_LARGE"
    assert response.headers["connection"] == "close"
    assert sent < 8  # refused after about the cap, not after reading it all
    assert temp_files(storage_dir) == []


async def test_an_upload_above_the_general_body_limit_is_accepted_on_both_versions(
    client: httpx.AsyncClient, owner: TestUser
) -> None:
    big = ("A line of plain text.\n" * 70_000).encode()  # about 1.5 MiB, over KEEL_MAX_BODY_BYTES
    response = await upload(client, owner, big, "big.txt")
    assert response.status_code == 202, response.text
    legacy = await upload(client, owner, big, "big.txt", url="/api/v1/documents")
    assert legacy.status_code == 202, legacy.text
    assert legacy.json()["sha256"] == hashlib.sha256(big).hexdigest()


async def test_a_webhook_url_on_a_private_address_is_422(
    client: httpx.AsyncClient, owner: TestUser, storage_dir: Path
) -> None:
    response = await upload(client, owner, b"text", webhook_url="http://127.0.0.1:9/hook")
    assert response.status_code == 422, response.text
    assert single_error(response)["field"] == "webhook_url"
    assert temp_files(storage_dir) == []


async def test_invalid_fields_are_422_with_their_field(client: httpx.AsyncClient, owner: TestUser) -> None:
    response = await upload(client, owner, b"text", title="x" * 201)
    assert response.status_code == 422
    assert single_error(response)["field"] == "title"
    response = await upload(client, owner, b"text", colour="blue")
    assert response.status_code == 422
    missing = await client.post(
        DOCUMENTS, data={"title": "No file"}, files={"other": ("a", b"b")}, headers=owner.headers
    )
    assert missing.status_code == 422


async def test_json_instead_of_multipart_is_415(client: httpx.AsyncClient, owner: TestUser) -> None:
    response = await client.post(DOCUMENTS, json={"file": "x"}, headers=owner.headers)
    assert response.status_code == 415


async def test_anonymous_upload_is_401(client: httpx.AsyncClient) -> None:
    response = await client.post(DOCUMENTS, files={"file": ("a.txt", b"text")})
    assert response.status_code == 401


async def test_an_idempotency_key_is_ignored_on_uploads(client: httpx.AsyncClient, owner: TestUser) -> None:
    headers = {"Idempotency-Key": f"upload-{uuid.uuid4()}"}
    first = await upload(client, owner, b"same bytes", headers=headers)
    second = await upload(client, owner, b"same bytes", headers=headers)
    assert first.status_code == second.status_code == 202
    assert "Idempotent-Replayed" not in second.headers
    assert first.json()["data"]["id"] != second.json()["data"]["id"]


async def test_processing_twice_leaves_one_set_of_chunks(
    client: httpx.AsyncClient, owner: TestUser, resources: Resources
) -> None:
    document = await uploaded(client, owner, LONG_TEXT.encode(), "twice.txt", async_processing="false")
    before = await chunks(client, owner, document["id"])
    document_id = uuid.UUID(document["id"])
    # As if a worker died after storing the chunks but before the job ended: the job runs
    # again on a document still marked processing.
    async with resources.db.writer() as session:
        await repository.update_document(session, document_id, {"status": Status.PROCESSING.value}, utcnow())
        await session.commit()
    result = await flows.process(resources, document_id)
    assert result["status"] == "ready"
    # A rerun after the document is finished does nothing.
    assert (await flows.process(resources, document_id))["status"] == "skipped"
    after = await chunks(client, owner, document["id"])
    assert after == before
    assert (await read(client, owner, document["id"]))["chunk_count"] == len(before)


async def test_a_worker_killed_mid_processing_leaves_the_document_ready_after_its_lease_expires(
    client: httpx.AsyncClient, owner: TestUser, resources: Resources
) -> None:
    document = await uploaded(client, owner, LONG_TEXT.encode(), "killed.txt")
    document_id = uuid.UUID(document["id"])
    # A worker claims the job, marks the document processing, stores part of the chunks
    # (as an interrupted run would have left them) and dies without ending the job.
    async with resources.db.writer() as session:
        await claim(session, "doomed-worker", limit=100, lease=30, now=utcnow())
        await service.start_processing(session, document_id)
        stale = [{"index": 0, "start_char": 0, "end_char": 5, "text": "stale"}]
        await repository.replace_chunks(session, document_id, stale)
        await session.commit()
    later = utcnow() + timedelta(minutes=5)
    async with resources.db.writer() as session:
        assert await reap(session, later) >= 1
        await session.commit()

    await drain(resources, now=later)

    processed = await read(client, owner, document["id"])
    assert processed["status"] == "ready"
    items = await chunks(client, owner, document["id"])
    assert len(items) == processed["chunk_count"] > 3
    assert all(item["text"] != "stale" for item in items)
    assert_sane(items)
    job = (await client.get(f"/api/v2/jobs/{document['job_id']}", headers=owner.headers)).json()["data"]
    assert (job["status"], job["attempts"]) == ("succeeded", 2)


async def test_a_document_deleted_before_its_job_runs_ends_the_job_quietly(
    client: httpx.AsyncClient, owner: TestUser, resources: Resources
) -> None:
    document = await uploaded(client, owner, b"Short-lived.", "gone.txt")
    assert (await client.delete(document_url(document["id"]), headers=owner.headers)).status_code == 204
    await drain(resources)
    job = await client.get(f"/api/v2/jobs/{document['job_id']}", headers=owner.headers)
    assert job.json()["data"]["status"] == "succeeded", job.text
    assert job.json()["data"]["result"]["status"] == "skipped"


# --- Reads ---------------------------------------------------------------------------------


async def test_get_returns_an_etag_and_304_on_if_none_match(
    client: httpx.AsyncClient, owner: TestUser
) -> None:
    document = await uploaded(client, owner, b"Tagged.", "tag.txt")
    response = await client.get(document_url(document["id"]), headers=owner.headers)
    etag = response.headers["ETag"]
    assert etag.startswith('"')
    again = await client.get(document_url(document["id"]), headers={**owner.headers, "If-None-Match": etag})
    assert again.status_code == 304


async def test_content_streams_the_upload_with_safe_headers(
    client: httpx.AsyncClient, owner: TestUser
) -> None:
    content = text_pdf("Download me")
    name = "Résumé final.pdf"
    document = await uploaded(client, owner, content, name)
    response = await client.get(f"{document_url(document['id'])}/content", headers=owner.headers)
    assert response.status_code == 200
    assert response.content == content
    assert response.headers["Content-Type"] == "application/pdf"
    assert response.headers["Content-Length"] == str(len(content))
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    disposition = response.headers["Content-Disposition"]
    assert disposition.startswith("attachment; ")
    assert f"filename*=UTF-8''{quote(document['filename'], safe='')}" in disposition
    assert 'filename="R_sum_ final.pdf"' in disposition


def test_content_disposition_quotes_nothing_a_client_could_misread() -> None:
    header = content_disposition('a"b\\c%d\r\né.txt')
    assert header == "attachment; filename=\"a_b_c_d___.txt\"; filename*=UTF-8''a%22b%5Cc%25d%0D%0A%C3%A9.txt"


async def test_list_filters_by_status_and_product(client: httpx.AsyncClient, accounts: Accounts) -> None:
    user = await accounts.create()
    product = await create_product(client, user)
    attached = await uploaded(client, user, b"On a product.", "p.txt", product_id=product["id"])
    loose = await uploaded(client, user, b"Loose.", "l.txt", async_processing="false")

    def ids(response: httpx.Response) -> set[str]:
        assert response.status_code == 200, response.text
        return {item["id"] for item in response.json()["data"]}

    assert ids(await client.get(DOCUMENTS, headers=user.headers)) == {attached["id"], loose["id"]}
    by_product = await client.get(DOCUMENTS, params={"product_id": product["id"]}, headers=user.headers)
    assert ids(by_product) == {attached["id"]}
    ready = await client.get(DOCUMENTS, params={"status": "ready"}, headers=user.headers)
    assert ids(ready) == {loose["id"]}
    page = await client.get(DOCUMENTS, params={"per_page": 1}, headers=user.headers)
    assert page.json()["meta"]["pagination"]["total"] == 2
    cursor = await client.get(DOCUMENTS, params={"cursor": "", "per_page": 1}, headers=user.headers)
    assert cursor.json()["meta"]["pagination"]["has_next"] is True


# --- Visibility and deletion -------------------------------------------------------------


async def test_a_stranger_gets_404_on_every_document_route(
    client: httpx.AsyncClient, owner: TestUser, stranger: TestUser
) -> None:
    document = await uploaded(client, owner, b"Private.", "private.txt")
    url = document_url(document["id"])
    for path in (url, f"{url}/chunks", f"{url}/content"):
        assert (await client.get(path, headers=stranger.headers)).status_code == 404, path
    assert (await client.delete(url, headers=stranger.headers)).status_code == 404
    listed = await client.get(DOCUMENTS, params={"per_page": 100}, headers=stranger.headers)
    assert document["id"] not in {item["id"] for item in listed.json()["data"]}
    # And it is still there for its owner.
    assert (await read(client, owner, document["id"]))["id"] == document["id"]


async def test_anonymous_reads_are_401(client: httpx.AsyncClient, owner: TestUser) -> None:
    document = await uploaded(client, owner, b"Mine.", "mine.txt")
    url = document_url(document["id"])
    for path in (DOCUMENTS, url, f"{url}/chunks", f"{url}/content"):
        assert (await client.get(path)).status_code == 401, path
    assert (await client.delete(url)).status_code == 401


async def test_a_viewer_of_the_product_sees_the_document_but_may_not_delete_it(
    client: httpx.AsyncClient, accounts: Accounts
) -> None:
    owner, viewer = await accounts.create(), await accounts.create()
    product = await create_product(client, owner)
    await share(client, owner, product_url(product["id"]), viewer, "viewer")
    document = await uploaded(
        client, owner, b"Shared through the product.", "s.txt", product_id=product["id"]
    )
    assert (await read(client, viewer, document["id"]))["product_id"] == product["id"]
    listed = await client.get(DOCUMENTS, headers=viewer.headers)
    assert document["id"] in {item["id"] for item in listed.json()["data"]}
    response = await client.delete(document_url(document["id"]), headers=viewer.headers)
    assert response.status_code == 403
    # Nor may a viewer attach uploads to the product.
    refused = await upload(client, viewer, b"Mine now?", product_id=product["id"])
    assert refused.status_code == 403


async def test_an_owner_level_grantee_may_delete_a_document_on_the_product(
    client: httpx.AsyncClient, accounts: Accounts
) -> None:
    owner, co_owner = await accounts.create(), await accounts.create()
    product = await create_product(client, owner)
    await share(client, owner, product_url(product["id"]), co_owner, "owner")
    document = await uploaded(client, owner, b"Co-owned.", "c.txt", product_id=product["id"])
    assert (await client.delete(document_url(document["id"]), headers=co_owner.headers)).status_code == 204


async def test_uploading_to_an_invisible_product_is_404(
    client: httpx.AsyncClient, owner: TestUser, stranger: TestUser
) -> None:
    product = await create_product(client, owner)
    response = await upload(client, stranger, b"Sneaky.", product_id=product["id"])
    assert response.status_code == 404
    assert single_error(response)["field"] == "product_id"


async def test_an_admin_sees_and_deletes_any_document(
    client: httpx.AsyncClient, owner: TestUser, accounts: Accounts
) -> None:
    admin = await accounts.create(role=Role.ADMIN)
    document = await uploaded(client, owner, b"Admins see this.", "a.txt")
    assert (await read(client, admin, document["id"]))["id"] == document["id"]
    assert (await client.delete(document_url(document["id"]), headers=admin.headers)).status_code == 204


async def test_delete_removes_chunks_and_the_stored_file(
    client: httpx.AsyncClient, owner: TestUser, resources: Resources
) -> None:
    content = b"Delete me entirely, " + uuid.uuid4().bytes.hex().encode()
    document = await uploaded(client, owner, content, "d.txt", async_processing="false")
    assert document["chunk_count"] == 1
    assert await resources.storage.exists(document["sha256"])
    response = await client.delete(document_url(document["id"]), headers=owner.headers)
    assert response.status_code == 204
    assert (await client.get(document_url(document["id"]), headers=owner.headers)).status_code == 404
    async with resources.db.reader() as session:
        rows = (await session.execute(repository.chunks_of(uuid.UUID(document["id"])))).all()
    assert rows == []
    assert not await resources.storage.exists(document["sha256"])


async def test_a_file_shared_by_two_documents_stays_until_the_last_is_deleted(
    client: httpx.AsyncClient, owner: TestUser, accounts: Accounts, resources: Resources
) -> None:
    other = await accounts.create()
    content = b"Shared bytes " + uuid.uuid4().bytes.hex().encode()
    first = await uploaded(client, owner, content, "one.txt")
    second = await uploaded(client, other, content, "two.txt")
    assert first["sha256"] == second["sha256"]
    assert (await client.delete(document_url(first["id"]), headers=owner.headers)).status_code == 204
    assert await resources.storage.exists(first["sha256"])
    download = await client.get(f"{document_url(second['id'])}/content", headers=other.headers)
    assert download.content == content
    assert (await client.delete(document_url(second["id"]), headers=other.headers)).status_code == 204
    assert not await resources.storage.exists(first["sha256"])


async def test_storage_is_the_local_backend_under_the_configured_directory(
    resources: Resources, storage_dir: Path
) -> None:
    assert isinstance(resources.storage, LocalStorage)
    assert resources.storage.root == storage_dir


async def test_the_hourly_sweep_removes_only_abandoned_upload_files(
    resources: Resources, storage_dir: Path
) -> None:
    assert registry.periodic[SWEEP_UPLOADS_TASK].every == timedelta(hours=1)
    abandoned = await resources.storage.new_temp_file()
    in_progress = await resources.storage.new_temp_file()
    two_hours_ago = time.time() - 7200
    os.utime(abandoned, (two_hours_ago, two_hours_ago))
    try:
        async with resources.db.writer() as session:
            await enqueue(session, SWEEP_UPLOADS_TASK, {})
            await session.commit()
        await drain(resources)
        assert temp_files(storage_dir) == [in_progress]
    finally:
        abandoned.unlink(missing_ok=True)
        in_progress.unlink(missing_ok=True)
