"""Hostile uploads against a real server process (uvicorn on a socket, its in-process
worker, extraction in a child process), on both backends: an endless chunked body is
refused after about the cap with bounded disk use, and decompression bombs end `failed`
quickly while the server's memory stays bounded and it keeps answering."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import httpx
import pytest

from tests.conftest import LiveServer, running_live_server
from tests.documents import files
from tests.identity import PASSWORD, unique_email

pytestmark = pytest.mark.live

MiB = files.MiB
# KEEL_UPLOAD_MAX_BYTES's default: the server runs with it.
CAP = 20 * MiB
DOCUMENTS = "/api/v2/documents"


@pytest.fixture(scope="module")
def storage_dir(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp(f"hostile-storage-{backend}")


@pytest.fixture(scope="module")
def server(
    backend_settings: dict[str, Any], storage_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    log_dir = tmp_path_factory.mktemp("hostile-live")
    # The worker in the server on both backends: its memory is the one a bomb must spare.
    with running_live_server(
        backend_settings, log_dir, storage_dir=storage_dir, worker_in_process=True
    ) as live:
        yield live


@pytest.fixture(scope="module")
def api(server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        email = unique_email("hostile")
        body = {"email": email, "password": PASSWORD, "full_name": "Hostile"}
        client.post("/api/v2/auth/register", json=body).raise_for_status()
        login = client.post("/api/v2/auth/login", json={"email": email, "password": PASSWORD})
        login.raise_for_status()
        client.headers["Authorization"] = f"Bearer {login.json()['data']['access_token']}"
        yield client


def rss_bytes(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    line = next(line for line in status.splitlines() if line.startswith("VmRSS:"))
    return int(line.split()[1]) * 1024


def disk_use(directory: Path) -> int:
    return sum(path.stat().st_size for path in directory.rglob("*") if path.is_file())


def test_an_endless_chunked_upload_is_413_after_about_the_cap_with_disk_use_bounded(
    api: httpx.Client, storage_dir: Path
) -> None:
    sent = 0
    most_on_disk = 0

    def body() -> Iterator[bytes]:
        nonlocal sent, most_on_disk
        yield b'--b\r\nContent-Disposition: form-data; name="file"; filename="endless.txt"\r\n\r\n'
        block = b"a" * MiB
        for _ in range(200):  # 200 MiB, with no Content-Length (chunked)
            most_on_disk = max(most_on_disk, disk_use(storage_dir))
            sent += MiB
            yield block
        yield b"\r\n--b--\r\n"

    started = time.monotonic()
    response = api.post(
        DOCUMENTS, content=body(), headers={"Content-Type": "multipart/form-data; boundary=b"}
    )
    assert response.status_code == 413, response.text
    assert response.json()["errors"][0]["code"] == "PAYLOAD_TOO_LARGE"
    assert response.headers["connection"] == "close"
    # The server stops reading at the cap; what the client got out beyond it sat in the
    # sockets' buffers (a few MiB on loopback), not in the server.
    assert sent < CAP + 16 * MiB, f"{sent / MiB:.0f} MiB were sent before the refusal"
    assert most_on_disk <= CAP + MiB
    assert disk_use(storage_dir) == 0, "the refused upload left a file behind"
    assert time.monotonic() - started < 30
    assert api.get("/health").status_code == 200


def pdf_bomb(_directory: Path) -> bytes:
    """1 GiB of zeros in a FlateDecode content stream of about 1 MiB."""
    return files.pdf(files.zeros_deflate(1024 * MiB), flate=True)


def docx_zip_bomb(directory: Path) -> bytes:
    """A Word document with a 40 MiB entry of zeros, about 40 KiB compressed."""
    source = files.make_docx(directory / "good.docx")
    with (
        files.rewrite_zip(source, directory / "bomb.docx") as archive,
        archive.open("word/media/x.bin", "w") as entry,
    ):
        block = bytes(MiB)
        for _ in range(40):
            entry.write(block)
    return (directory / "bomb.docx").read_bytes()


def docx_billion_laughs(directory: Path) -> bytes:
    return files.billion_laughs_docx(directory).read_bytes()


class Bomb(NamedTuple):
    name: str
    make: Callable[[Path], bytes]
    reason: str  # the document's `error`


BOMBS = [
    Bomb("bomb.pdf", pdf_bomb, "memory limit exceeded"),
    Bomb("bomb.docx", docx_zip_bomb, "archive rejected: compression ratio too high"),
    Bomb("laughs.docx", docx_billion_laughs, "corrupt or unsupported file"),
]


@pytest.mark.parametrize("bomb", BOMBS, ids=[bomb.name for bomb in BOMBS])
def test_a_bomb_fails_quickly_while_the_server_keeps_answering_in_bounded_memory(
    api: httpx.Client, server: LiveServer, tmp_path: Path, bomb: Bomb
) -> None:
    # Warm up first (the first PDF and DOCX load their libraries into the server), so the
    # growth measured is the bomb's.
    warm = api.post(DOCUMENTS, files={"file": ("warm.pdf", files.text_pdf("warm"))})
    assert warm.status_code == 202, warm.text
    content = bomb.make(tmp_path)
    before = rss_bytes(server.process.pid)

    started = time.monotonic()
    response = api.post(DOCUMENTS, files={"file": (bomb.name, content)})
    assert response.status_code == 202, response.text
    document_url = f"{DOCUMENTS}/{response.json()['data']['id']}"
    slowest_health = 0.0
    while True:
        asked = time.monotonic()
        assert api.get("/health").status_code == 200
        slowest_health = max(slowest_health, time.monotonic() - asked)
        document = api.get(document_url).json()["data"]
        if document["status"] in ("ready", "failed") or time.monotonic() - started > 60:
            break
        time.sleep(0.1)
    elapsed = time.monotonic() - started

    assert (document["status"], document["error"]) == ("failed", bomb.reason)
    assert elapsed < 15, f"the bomb took {elapsed:.1f} s to fail"
    assert slowest_health < 2, f"/health took {slowest_health:.2f} s while the bomb was handled"
    grown = rss_bytes(server.process.pid) - before
    assert grown < 48 * MiB, f"the server grew by {grown / MiB:.0f} MiB"
