"""``keel`` command line: serve, worker, database migrations, accounts, demo data, OpenAPI export."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
from typing import Annotated

import typer

from keel.settings import Settings, SettingsError, load_settings

app = typer.Typer(help="Keel API service.", no_args_is_help=True, add_completion=False)
db_app = typer.Typer(help="Database schema migrations.", no_args_is_help=True)
app.add_typer(db_app, name="db")
users_app = typer.Typer(help="User accounts.", no_args_is_help=True)
app.add_typer(users_app, name="users")
demo_app = typer.Typer(help="Demo data to try the API on.", no_args_is_help=True)
app.add_typer(demo_app, name="demo")


def _settings() -> Settings:
    try:
        settings = load_settings()
        settings.signing_key  # noqa: B018 - fail now, not on the first request
    except SettingsError as exc:
        typer.echo(f"keel: {exc}", err=True)
        raise typer.Exit(code=2) from None
    return settings


async def _upgrade(settings: Settings, revision: str) -> None:
    from keel.platform.db.engine import create_engine
    from keel.platform.db.migrate import upgrade

    engine = create_engine(settings)
    try:
        await upgrade(engine, revision)
    finally:
        await engine.dispose()


@db_app.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Argument(help="Target revision.")] = "head") -> None:
    """Apply migrations up to REVISION (safe to run from several replicas at once)."""
    settings = _settings()
    asyncio.run(_upgrade(settings, revision))
    typer.echo(f"database upgraded to {revision}")


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, max=64, help="Worker processes.")] = 1,
    reload: Annotated[bool, typer.Option(help="Restart on code changes (development).")] = False,
) -> None:
    """Serve the API with uvicorn (uvloop + httptools)."""
    import uvicorn

    settings = _settings()
    if settings.should_auto_migrate:
        # Once, here, before any worker process starts: replicas never race on DDL.
        asyncio.run(_upgrade(settings, "head"))
    from keel.users.bootstrap import first_run_hint_sync

    hint = first_run_hint_sync(settings, host=host, port=port)
    if hint:
        typer.echo(hint, err=True)
    if workers > 1 and settings.redis_url is None and settings.caches_reads:
        # Each process would keep its own copy and miss the others' invalidations.
        os.environ["KEEL_CACHE_ENABLED"] = "false"
        typer.echo(
            "keel: the read cache is off with several workers and no KEEL_REDIS_URL "
            "(set it to share one cache between them).",
            err=True,
        )
    if workers > 1 and "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="keel-metrics-")
    uvicorn.run(
        "keel.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=None if reload else workers,
        reload=reload,
        loop="uvloop" if sys.platform != "win32" else "asyncio",
        http="httptools",
        proxy_headers=False,  # Keel applies KEEL_TRUSTED_PROXIES itself
        server_header=False,
        access_log=False,
        log_config=None,
        timeout_graceful_shutdown=30,
        # The WebSocket frame cap, enforced by the protocol before a frame is buffered
        # (1009), not only by the route after it arrived.
        ws_max_size=settings.realtime_max_frame_bytes,
    )


@app.command()
def worker(
    concurrency: Annotated[
        int | None,
        typer.Option(min=1, max=256, help="Jobs run at once (default KEEL_WORKER_CONCURRENCY)."),
    ] = None,
) -> None:
    """Run background jobs until SIGTERM/SIGINT (then finish or release running ones)."""
    from keel import worker as worker_process

    settings = _settings()
    if settings.should_auto_migrate:
        asyncio.run(_upgrade(settings, "head"))
    if sys.platform != "win32":
        import uvloop

        uvloop.run(worker_process.run(settings, concurrency=concurrency))
    else:
        asyncio.run(worker_process.run(settings, concurrency=concurrency))


@users_app.command("create-admin")
def users_create_admin(
    email: Annotated[str, typer.Option(help="Login e-mail of the new admin.")],
    password: Annotated[
        str,
        typer.Option(
            prompt=True,
            hide_input=True,
            confirmation_prompt=True,
            help="12..128 characters, not a common password (prompted for when omitted, which "
            "keeps it out of the shell history).",
        ),
    ],
    full_name: Annotated[str, typer.Option(help="Display name.")] = "Administrator",
) -> None:
    """Create an admin account and print its id (exit code 2 if refused)."""
    from keel.users.bootstrap import AdminRefused, DatabaseUnavailable, create_admin_command

    settings = _settings()
    if settings.should_auto_migrate:
        asyncio.run(_upgrade(settings, "head"))
    try:
        user_id = asyncio.run(
            create_admin_command(settings, email=email, password=password, full_name=full_name)
        )
    except AdminRefused as exc:
        typer.echo(f"keel: {exc}", err=True)
        raise typer.Exit(code=2) from None
    except DatabaseUnavailable as exc:
        typer.echo(f"keel: {exc}", err=True)
        raise typer.Exit(code=1) from None
    typer.echo(str(user_id))


@demo_app.command("seed")
def demo_seed(
    products: Annotated[int, typer.Option(min=0, max=1_000_000, help="Products to add.")] = 200,
    email: Annotated[
        str, typer.Option(help="The account: created when missing, else the products are added to it.")
    ] = "demo@example.com",
    password: Annotated[
        str | None,
        typer.Option(help="Password of a new account (default: generated and printed); 12..128 characters."),
    ] = None,
) -> None:
    """Create a demo account (once), its folders (once) and PRODUCTS products in them."""
    from keel.demo import DATABASE_ERRORS, SeedRefused, describe_database_error, seed, summary

    settings = _settings()
    if settings.should_auto_migrate:
        asyncio.run(_upgrade(settings, "head"))

    def progress(done: int, total: int) -> None:
        if total > 5_000:
            typer.echo(f"  {done:,}/{total:,} products", err=True)

    try:
        result = asyncio.run(
            seed(settings, products=products, email=email, password=password, progress=progress)
        )
    except SeedRefused as exc:
        typer.echo(f"keel: {exc}", err=True)
        raise typer.Exit(code=2) from None
    except DATABASE_ERRORS as exc:
        typer.echo(
            f"keel: database error ({describe_database_error(exc)}); "
            "is it running and migrated (`keel db upgrade`)?",
            err=True,
        )
        raise typer.Exit(code=1) from None
    typer.echo(summary(result))


@app.command()
def openapi(indent: Annotated[int, typer.Option(help="JSON indentation.")] = 2) -> None:
    """Print the OpenAPI schema as JSON."""
    from keel.app import create_app

    settings = load_settings(env="test", log_level="WARNING")
    typer.echo(json.dumps(create_app(settings).openapi(), indent=indent or None))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
