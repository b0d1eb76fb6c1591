"""Service commands: ``serve``, ``keys create|list|revoke``, ``store migrate|purge``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer

from engine.cli.support import EXIT_BAD_INPUT, cli_errors, fail
from engine.settings import Settings, get_settings

keys_app = typer.Typer(help="API keys (stored hashed; shown once).", no_args_is_help=True)
store_app = typer.Typer(help="The decision log and review queue.", no_args_is_help=True)

DatabaseOption = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        help="Default: LIVEGUARD_DATABASE_URL, else sqlite:///liveguard.db.",
        show_default=False,
    ),
]


def _settings(**overrides: object) -> Settings:
    base = get_settings()
    return base.model_copy(update={k: v for k, v in overrides.items() if v is not None})


def _engine(database_url: str | None):  # type: ignore[no-untyped-def]
    from sqlalchemy.exc import SQLAlchemyError

    from engine.store.db import StoreUnavailable, make_engine, prepare_store

    engine = make_engine(_settings(database_url=database_url).database_url)
    try:
        prepare_store(engine)
    except SQLAlchemyError as exc:
        reason = str(exc.orig if getattr(exc, "orig", None) else exc).splitlines()[0]
        raise StoreUnavailable(f"{engine.url.render_as_string()}: {reason}") from None
    return engine


@keys_app.command("create")
@cli_errors
def keys_create(
    role: Annotated[str, typer.Option("--role", "-r", help="decide, review, audit or admin.")],
    label: Annotated[str, typer.Option(help="Who or what holds the key.")] = "",
    database_url: DatabaseOption = None,
) -> None:
    """Create an API key; the key is printed once, as the last line."""
    from engine.store.keys import ROLES, create_key

    if role not in ROLES:
        raise fail(f"--role: expected one of {', '.join(ROLES)}, got {role!r}")
    engine = _engine(database_url)
    key_id, key = create_key(engine, role, label)
    engine.dispose()
    typer.echo(f"created key {key_id} with role {role}; store it now, it is not shown again:")
    typer.echo(key)


@keys_app.command("list")
@cli_errors
def keys_list(database_url: DatabaseOption = None) -> None:
    """List key ids and roles (never the keys)."""
    from engine.store.keys import list_keys

    engine = _engine(database_url)
    for key_id, role, label in list_keys(engine):
        typer.echo(f"{key_id}  {role:<7} {label}")
    engine.dispose()


@keys_app.command("revoke")
@cli_errors
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="The key's id (from 'keys list').")],
    database_url: DatabaseOption = None,
) -> None:
    """Revoke a key: refused from its next request on, on every replica of the store."""
    from engine.store.keys import revoke_key

    engine = _engine(database_url)
    try:
        found = revoke_key(engine, key_id)
    finally:
        engine.dispose()
    if found is None:
        raise fail(f"KEY_ID: no key {key_id!r}; 'liveguard keys list' shows the ids")
    role, already = found
    if already is not None:
        typer.echo(f"key {key_id} ({role}) was already revoked at {already.isoformat()}")
    else:
        typer.echo(f"revoked key {key_id} ({role}); it is refused from its next request on")


@store_app.command("migrate")
@cli_errors
def store_migrate(database_url: DatabaseOption = None) -> None:
    """Bring the store's schema up to date (alembic)."""
    from engine.store.db import current_revision

    engine = _engine(database_url)
    typer.echo(f"schema at revision {current_revision(engine)} ({engine.dialect.name})")
    engine.dispose()


@store_app.command("purge")
@cli_errors
def store_purge(
    database_url: DatabaseOption = None,
    now: Annotated[
        str | None, typer.Option(help="Purge as of this ISO time (default: now).")
    ] = None,
) -> None:
    """Delete (or strip fields of) what is past each policy's declared retention."""
    from engine.store.retention import purge

    try:
        as_of = datetime.fromisoformat(now) if now else datetime.now(UTC)
    except ValueError:
        raise fail(f"--now: expected an ISO time like 2027-06-01T00:00:00Z, got {now!r}") from None
    if as_of.tzinfo is None:
        as_of = as_of.replace(tzinfo=UTC)
    engine = _engine(database_url)
    typer.echo(purge(engine, as_of).line())
    engine.dispose()


def _iso_time(option: str, value: str) -> datetime:
    try:
        t = datetime.fromisoformat(value)
    except ValueError:
        raise fail(
            f"{option}: expected an ISO time like 2027-06-01T00:00:00Z, got {value!r}"
        ) from None
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t


@store_app.command("export")
@cli_errors
def store_export(
    since: Annotated[str, typer.Option(help="Decisions at or after this ISO time.")],
    output: Annotated[str, typer.Option("--output", "-o", help="Parquet file to write.")],
    until: Annotated[str | None, typer.Option(help="Before this ISO time.")] = None,
    policy: Annotated[str | None, typer.Option(help="Only this policy id.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many decisions.")] = 1_000_000,
    database_url: DatabaseOption = None,
) -> None:
    """Write past decisions as Parquet, minimized as retained, with review outcomes (for
    replay under a candidate policy version, and for users who leave). The read is audited."""
    from pathlib import Path

    from engine.store.export import export_history

    start = _iso_time("--since", since)
    end = _iso_time("--until", until) if until else None
    engine = _engine(database_url)
    try:
        report = export_history(
            engine, Path(output), since=start, until=end, policy=policy, limit=limit
        )
    except ValueError as exc:
        raise fail(str(exc)) from None
    finally:
        engine.dispose()
    typer.echo(report.line())


@cli_errors
def serve(
    host: Annotated[str | None, typer.Option(help="Default: LIVEGUARD_HOST or 127.0.0.1.")] = None,
    port: Annotated[int | None, typer.Option(help="Default: LIVEGUARD_PORT or 8181.")] = None,
    database_url: DatabaseOption = None,
    insecure_dev: Annotated[
        bool,
        typer.Option("--insecure-dev", help="Serve without API keys (everyone is admin)."),
    ] = False,
    allow_unsigned: Annotated[
        bool,
        typer.Option(
            "--allow-unsigned",
            help="Serve policy versions without a board sign-off (logged, shown on /health).",
        ),
    ] = False,
    log_level: Annotated[str | None, typer.Option(help="debug, info, warning, error.")] = None,
) -> None:
    """Serve decisions over HTTP (FastAPI + uvicorn)."""
    import uvicorn

    from engine.api import create_app
    from engine.store.keys import count_keys

    settings = _settings(
        host=host,
        port=port,
        database_url=database_url,
        insecure_dev=insecure_dev or None,
        allow_unsigned=allow_unsigned or None,
        log_level=log_level,
    )
    engine = _engine(settings.database_url)
    keys = count_keys(engine)
    engine.dispose()
    if settings.insecure_dev:
        from engine.service.insecure import insecure_mode_problems

        problems = insecure_mode_problems(settings, keys)
        if problems:
            raise fail(
                ["refusing to start in insecure dev mode (--insecure-dev / "
                 "LIVEGUARD_INSECURE_DEV):", *(f"  {p}" for p in problems)],
                EXIT_BAD_INPUT,
            )  # fmt: skip
        typer.echo(
            "WARNING: INSECURE DEV MODE: no authentication, every caller is admin "
            f"(loopback {settings.host} only). Never in production.",
            err=True,
        )
    if keys == 0 and not settings.insecure_dev:
        raise fail(
            [
                "no API keys exist, so nobody could call the service; create one with "
                "'liveguard keys create --role decide' (or pass --insecure-dev for local "
                "development only)"
            ],
            EXIT_BAD_INPUT,
        )
    _check_signoffs(settings)
    app = create_app(settings)
    from engine.api.protocol import front_door_protocol

    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        access_log=False,
        # httptools with the header bounds uvicorn lacks (size → 431, time → 408/close).
        http=front_door_protocol(settings),
        timeout_keep_alive=settings.keep_alive_s,
        # Our middleware bounds admitted and not-yet-admitted work; this caps sockets.
        limit_concurrency=settings.max_connections,
        # Live streams: a larger WebSocket message is refused (1009) before it is read whole.
        ws_max_size=settings.stream_max_frame_bytes,
        timeout_graceful_shutdown=10,
    )


def _check_signoffs(settings: Settings) -> None:
    """Refuse in one clear line before the server starts (``Runtime.start`` checks again)."""
    from engine.policy.repository import PolicyRepository
    from governance.signoff import check_serving

    repo = PolicyRepository(settings.policies)
    failed = repo.preload()
    live = [(pid, repo.get(pid).digest) for pid in repo.ids() if pid not in failed]
    check = check_serving(settings.policies, live, allow_unsigned=settings.allow_unsigned)
    if not check.allowed:
        raise fail(
            ["refusing to serve policy versions without a board sign-off (sign them off "
             "with 'liveguard governance sign-off', or pass --allow-unsigned, which is "
             "logged and shown on /health):", *(f"  {p}" for p in check.problems())],
            EXIT_BAD_INPUT,
        )  # fmt: skip
    if check.unsigned:
        typer.echo(
            f"WARNING: serving {len(check.unsigned)} policy version(s) without a board "
            "sign-off (--allow-unsigned)",
            err=True,
        )


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
    app.add_typer(keys_app, name="keys")
    app.add_typer(store_app, name="store")
