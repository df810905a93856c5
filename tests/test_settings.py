"""Configuration is validated at start-up and every error names its variable."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from keel.settings import Settings, SettingsError, load_settings

GOOD_SECRET = "k3Jd9-vQ2xR7mN4pL8sT1wY6zB0cF5hG"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("KEEL_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # no stray .env or .keel/ from the work tree


def load(monkeypatch: pytest.MonkeyPatch, **env: str) -> Settings:
    for name, value in env.items():
        monkeypatch.setenv(f"KEEL_{name}", value)
    return load_settings(_env_file=None)


def test_defaults_are_the_embedded_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load(monkeypatch)
    assert settings.database_url == "sqlite+aiosqlite:///./keel.db"
    assert settings.redis_url is None
    assert settings.max_body_bytes == 1_048_576
    assert settings.should_auto_migrate is True
    assert settings.effective_log_format == "console"


def test_production_without_secret_refuses_to_start(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(SettingsError, match="KEEL_SECRET_KEY is required in production"):
        load(monkeypatch, ENV="production")


def test_production_with_short_secret_refuses(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(SettingsError, match="KEEL_SECRET_KEY must be at least 32"):
        load(monkeypatch, ENV="production", SECRET_KEY="x1y2z3" * 3)


@pytest.mark.parametrize(
    "placeholder", ["changethis" * 4, "secret" * 6, "a" * 40, "abcabcabcabcabcabcabcabcabcabcabcabc"]
)
def test_production_with_placeholder_secret_refuses(
    monkeypatch: pytest.MonkeyPatch, placeholder: str
) -> None:
    with pytest.raises(SettingsError, match="KEEL_SECRET_KEY is a known placeholder"):
        load(monkeypatch, ENV="production", SECRET_KEY=placeholder)


def test_production_with_strong_secret_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load(monkeypatch, ENV="production", SECRET_KEY=GOOD_SECRET)
    assert settings.signing_key == GOOD_SECRET
    assert settings.effective_log_format == "json"


def test_development_secret_is_generated_once_and_kept_private(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    key_file = tmp_path / "state" / "secret_key"
    first = load(monkeypatch, SECRET_KEY_FILE=str(key_file)).signing_key
    second = load(monkeypatch, SECRET_KEY_FILE=str(key_file)).signing_key
    assert first == second
    assert len(first) >= 32
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600


def test_test_environment_never_writes_a_secret_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    key_file = tmp_path / "secret_key"
    assert len(load(monkeypatch, ENV="test", SECRET_KEY_FILE=str(key_file)).signing_key) >= 32
    assert not key_file.exists()


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("MAX_BODY_BYTES", "lots"),
        ("MAX_BODY_BYTES", "10"),
        ("ENV", "staging"),
        ("DATABASE_URL", "mysql://root@localhost/keel"),
        ("REDIS_URL", "http://localhost:6379"),
        ("TRUSTED_PROXIES", "10.0.0.0/8,not-a-network"),
        ("LOG_FORMAT", "xml"),
        ("LOG_LEVEL", "chatty"),
        ("DB_POOL_SIZE", "0"),
        # Too small for the extraction child to load its readers: every document would fail.
        ("EXTRACTION_MEMORY_MB", "96"),
    ],
)
def test_bad_value_names_the_setting(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    with pytest.raises(SettingsError) as info:
        load(monkeypatch, **{name: value})
    assert f"KEEL_{name}" in str(info.value)


def test_lists_accept_commas_or_json(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load(
        monkeypatch,
        CORS_ORIGINS="https://a.example.com, https://b.example.com",
        TRUSTED_HOSTS='["api.example.com", "*.example.com"]',
        TRUSTED_PROXIES="10.0.0.0/8,192.168.1.1",
    )
    assert settings.cors_origins == ["https://a.example.com", "https://b.example.com"]
    assert settings.trusted_hosts == ["api.example.com", "*.example.com"]
    assert [str(n) for n in settings.trusted_proxy_networks] == ["10.0.0.0/8", "192.168.1.1/32"]


def test_dotenv_file_is_read(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("KEEL_MAX_BODY_BYTES=2048\nKEEL_LOG_LEVEL=debug\n")
    settings = load_settings()
    assert settings.max_body_bytes == 2048
    assert settings.log_level == "DEBUG"


def test_postgres_is_not_auto_migrated_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load(monkeypatch, DATABASE_URL="postgresql+asyncpg://postgres@127.0.0.1/keel")
    assert settings.should_auto_migrate is False


@pytest.mark.parametrize(
    ("env", "caches"),
    [
        ({}, True),  # SQLite: one host
        (
            {"DATABASE_URL": "postgresql+asyncpg://postgres@127.0.0.1/keel"},
            False,
        ),  # replicas, no shared cache
        (
            {
                "DATABASE_URL": "postgresql+asyncpg://postgres@127.0.0.1/keel",
                "REDIS_URL": "redis://127.0.0.1/0",
            },
            True,
        ),
        ({"DATABASE_URL": "postgresql+asyncpg://postgres@127.0.0.1/keel", "CACHE_ENABLED": "true"}, True),
        ({"CACHE_ENABLED": "false"}, False),
    ],
)
def test_the_read_cache_is_on_only_where_it_is_shared_or_alone(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], caches: bool
) -> None:
    assert load(monkeypatch, **env).caches_reads is caches


def test_document_settings_are_checked_together(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(SettingsError, match="KEEL_DOCUMENT_CHUNK_OVERLAP"):
        load(monkeypatch, DOCUMENT_CHUNK_SIZE="500", DOCUMENT_CHUNK_OVERLAP="500")
    monkeypatch.delenv("KEEL_DOCUMENT_CHUNK_SIZE")
    monkeypatch.delenv("KEEL_DOCUMENT_CHUNK_OVERLAP")
    with pytest.raises(SettingsError, match="KEEL_S3_BUCKET"):
        load(monkeypatch, STORAGE_BACKEND="s3")
