"""``vidgate``: serve, worker, keys, projects, models, check, generate."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import structlog
import typer
from rich.table import Column, Table
from sqlalchemy.ext.asyncio import AsyncEngine

from vidgate import cli_limits, cli_worker
from vidgate.accounts.keys import DEFAULT_TENANT, NewKey, create_key, revoke
from vidgate.cli_common import DataDir as DataDir
from vidgate.cli_common import _checked as _checked
from vidgate.cli_common import _print_table as _print_table
from vidgate.cli_common import _settings as _settings
from vidgate.cli_common import _with_database as _with_database
from vidgate.cli_common import err as err
from vidgate.cli_common import out as out
from vidgate.cli_projects import projects_app
from vidgate.core.access import parse_expires_in, resolve_models
from vidgate.core.errors import InvalidParameter
from vidgate.core.keys import ROLES, KeyMode, KeyRecord, Role
from vidgate.core.limits import Limits
from vidgate.db.database import create_engine
from vidgate.db.deployments import HealthRecord, deployment_health_all
from vidgate.db.keys import count_keys, list_keys
from vidgate.logging import configure_logging

if TYPE_CHECKING:
    from vidgate.services.models import DeploymentStatus

app = typer.Typer(
    no_args_is_help=True, add_completion=False, help="vidgate: one API for video models."
)
keys_app = typer.Typer(no_args_is_help=True, help="Create, list and revoke API keys.")
app.add_typer(keys_app, name="keys")
app.add_typer(projects_app, name="projects")

log = structlog.get_logger("vidgate.api")


async def _create_key(
    db: AsyncEngine,
    *,
    name: str,
    mode: KeyMode,
    role: Role,
    tenant: str,
    models: list[str] | None,
    expires_in: datetime.timedelta | None,
    limits: dict[str, int | None] | None = None,
) -> NewKey:
    async with db.begin() as conn:
        new = await create_key(
            conn,
            name=name,
            mode=mode,
            role=role,
            tenant=tenant,
            models=models,
            expires_in=expires_in,
        )
        if limits:
            await cli_limits.set_key_limits(conn, new.id, limits)
        return new


async def _first_key(db: AsyncEngine) -> NewKey | None:
    async with db.begin() as conn:
        if await count_keys(conn) > 0:
            return None
        return await create_key(conn, name="default", mode="test")


@app.command()
def serve(
    data_dir: DataDir = None,
    host: Annotated[str | None, typer.Option(help="Address to listen on.")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on.")] = None,
    no_worker: Annotated[bool, typer.Option("--no-worker", help="Run the API only.")] = False,
) -> None:
    """Start the gateway: API and worker in one process, on embedded defaults."""
    import uvicorn

    from vidgate.api.app import create_app
    from vidgate.api.protocol import ConnectionLimits, protocol_class
    from vidgate.engine.app import worker_beside
    from vidgate.engine.shutdown import Shutdown
    from vidgate.heap import freeze_startup_heap
    from vidgate.process_exit import SignalFreeServer, run_then_leave, stop_on_signals
    from vidgate.runtime import open_runtime, prepare_database

    settings = _settings(data_dir, host=host, port=port)
    configure_logging(settings.log_level, json=settings.log_json)
    # A misconfigured models file stops the gateway here; an upstream that is down does
    # not (no probes: routing's health checks take care of it).
    _checked(settings)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    url = asyncio.run(prepare_database(settings))

    async def first_key() -> NewKey | None:
        db = create_engine(url, pool_size=1)
        try:
            return await _first_key(db)
        finally:
            await db.dispose()

    created = asyncio.run(first_key())
    if created is not None:
        out.print("Created a test API key (it routes every model to the sandbox; shown once):")
        out.print(created.secret, highlight=False, soft_wrap=True)
    out.print(
        f"vidgate listening on http://{settings.host}:{settings.port}  (data: {settings.data_dir})"
    )
    out.print(f"console: http://{settings.host}:{settings.port}/ui/", highlight=False)
    sys.stdout.flush()
    limits = ConnectionLimits(
        max_connections=settings.max_connections,
        header_timeout_s=settings.header_timeout_s,
        body_timeout_s=settings.body_timeout_s,
        max_header_bytes=settings.max_header_bytes,
        max_header_count=settings.max_header_count,
    )

    shutdown = Shutdown(settings.shutdown_timeout_s)

    async def main() -> None:
        # One event loop: the runtime, the worker beside the API, and the server. On
        # SIGTERM or Ctrl-C the server stops accepting and drains its requests while the
        # worker stops taking work and finishes or hands back its steps (both within
        # the shutdown bound, process_exit.py), then the runtime closes.
        async with open_runtime(settings, url, supervise_database=True) as runtime:
            server = SignalFreeServer(
                uvicorn.Config(
                    create_app(runtime.services, settings),
                    host=settings.host,
                    port=settings.port,
                    log_config=None,
                    access_log=False,
                    lifespan="on",
                    http=protocol_class(limits),
                    # uvicorn's type: whole seconds (rounded down, within the bound).
                    timeout_graceful_shutdown=int(shutdown.drain_s),
                )
            )
            stop_on_signals(shutdown, also=lambda: setattr(server, "should_exit", True))
            beside = worker_beside(runtime.engine, shutdown)
            async with contextlib.nullcontext() if no_worker else beside:
                freeze_startup_heap()
                log.info("vidgate.ready", worker=not no_worker)
                await server.serve()

    # Until main() handles it: SIGTERM is a normal exit, so that atexit handlers run (the
    # last process using the embedded PostgreSQL stops it).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    run_then_leave(main(), shutdown, _event_loop_factory())


@app.command()
def worker(
    data_dir: DataDir = None,
    concurrency: Annotated[
        int | None,
        typer.Option(help="Webhook deliveries at once (deprecated: VIDGATE_WEBHOOK_CONCURRENCY)."),
    ] = None,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            help="Serve this process's metrics at /metrics on this port, on VIDGATE_HOST"
            " (also VIDGATE_METRICS_PORT)."
        ),
    ] = None,
    queues: cli_worker.QueuesOption = None,
) -> None:
    """Run job workers only (scale-out: many of these beside `serve --no-worker`)."""
    from vidgate.engine.app import run_worker
    from vidgate.engine.shutdown import Shutdown
    from vidgate.heap import freeze_startup_heap
    from vidgate.metrics import serve_process_metrics
    from vidgate.process_exit import run_then_leave, stop_on_signals
    from vidgate.runtime import open_runtime, prepare_database

    settings = _settings(data_dir, worker_concurrency=concurrency, metrics_port=metrics_port)
    configure_logging(settings.log_level, json=settings.log_json)
    chosen = cli_worker.chosen_queues(queues, settings)
    if settings.metrics_port is not None:
        serve_process_metrics(settings.host, settings.metrics_port)
    _checked(settings)
    shutdown = Shutdown(settings.shutdown_timeout_s)

    async def main() -> None:
        # SIGTERM or Ctrl-C: the worker stops taking work and finishes or hands back
        # its steps, within the shutdown bound (engine/shutdown.py).
        stop_on_signals(shutdown)
        url = await prepare_database(settings)
        async with open_runtime(settings, url, supervise_database=True) as runtime:
            freeze_startup_heap()
            await run_worker(runtime.engine, queues=chosen, shutdown=shutdown)

    with contextlib.suppress(KeyboardInterrupt, asyncio.CancelledError):
        run_then_leave(main(), shutdown, _event_loop_factory())


def _event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop where installed (uvicorn[standard] brings it on CPython/Unix), the loop
    ``serve`` runs on too: in B3's worker profile the default selector loop's
    register/unregister per database wait was ~3 % of the CPU."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Option("--name", help="A label for the key.")],
    test: Annotated[bool, typer.Option("--test", help="Sandbox-only key (default).")] = False,
    live: Annotated[bool, typer.Option("--live", help="Key that reaches real providers.")] = False,
    admin: Annotated[bool, typer.Option("--admin", help="Short for --role admin.")] = False,
    role: Annotated[
        str | None,
        typer.Option(
            "--role",
            help="operator (every project), admin (its project), member (create and read"
            " videos; the default) or reader (read only).",
        ),
    ] = None,
    tenant: Annotated[
        str, typer.Option("--tenant", help="Tenant the key belongs to.")
    ] = DEFAULT_TENANT,
    models: Annotated[
        str | None,
        typer.Option("--models", help="Limit the key to these models (m1,m2); default: all."),
    ] = None,
    expires_in: Annotated[
        str | None,
        typer.Option("--expires-in", help="Expire the key after 30d, 12h, 90m...; default: never."),
    ] = None,
    rpm: Annotated[int | None, typer.Option("--rpm", min=1, help="Creates per minute.")] = None,
    max_concurrent: Annotated[
        int | None, typer.Option("--max-concurrent", min=1, help="Jobs in flight at once.")
    ] = None,
    data_dir: DataDir = None,
) -> None:
    """Create a key and print its secret (last line; shown once, only a hash is kept)."""
    if test and live:
        err.print("choose one of --test and --live")
        raise typer.Exit(2)
    if role is not None and role not in ROLES:
        err.print(f"--role must be one of {', '.join(ROLES)}; got {role!r}")
        raise typer.Exit(2)
    if admin and role not in (None, "admin"):
        err.print(f"--admin means --role admin; it cannot be combined with --role {role}")
        raise typer.Exit(2)
    chosen: Role = "admin" if admin else (role or "member")
    mode: KeyMode = "live" if live else "test"
    settings = _settings(data_dir)
    configure_logging("WARNING")
    allowed: list[str] | None = None
    lifetime: datetime.timedelta | None = None
    try:
        if expires_in is not None:
            lifetime = parse_expires_in(expires_in, param="--expires-in")
        if models is not None:
            catalog = _checked(settings).catalog
            assert catalog is not None
            names = [m.strip() for m in models.split(",") if m.strip()]
            allowed = resolve_models(catalog, names, param="--models")
    except InvalidParameter as exc:
        err.print(exc.message, highlight=False)
        raise typer.Exit(2) from None
    new = _with_database(
        settings,
        lambda db: _create_key(
            db,
            name=name,
            mode=mode,
            role=chosen,
            tenant=tenant,
            models=allowed,
            expires_in=lifetime,
            limits=cli_limits.limit_values(rpm, max_concurrent),
        ),
    )
    rights = "" if chosen == "member" else f" with role {chosen}"
    out.print(f"Created {mode} key {new.id} ({new.name}) for tenant {new.tenant}{rights}.")
    if new.record is not None and new.record.models is not None:
        out.print(f"It may use only: {', '.join(new.record.models)}.", highlight=False)
    if new.record is not None and new.record.expires_at is not None:
        out.print(f"It expires at {new.record.expires_at:%Y-%m-%d %H:%M:%S %Z}.")
    out.print("Store the secret now; it is not shown again:")
    print(new.secret)


@keys_app.command("list")
def keys_list(data_dir: DataDir = None) -> None:
    """List keys (never their secrets)."""
    settings = _settings(data_dir)
    configure_logging("WARNING")

    async def work(db: AsyncEngine) -> list[KeyRecord]:
        async with db.connect() as conn:
            return await list_keys(conn)

    table = Table(
        Column("id", no_wrap=True),
        "name",
        "tenant",
        "mode",
        "role",
        "models",
        "prefix",
        "created",
        "expires",
        "revoked",
    )
    for k in _with_database(settings, work):
        table.add_row(
            k.id,
            k.name,
            k.tenant_name,
            k.mode,
            k.role,
            ",".join(k.models) if k.models is not None else "all",
            k.prefix + "…",
            k.created_at.strftime("%Y-%m-%d %H:%M"),
            k.expires_at.strftime("%Y-%m-%d %H:%M") if k.expires_at else "",
            k.revoked_at.strftime("%Y-%m-%d %H:%M") if k.revoked_at else "",
        )
    _print_table(table)


@keys_app.command("revoke")
def keys_revoke(key_id: str, data_dir: DataDir = None) -> None:
    """Revoke a key by id; every process refuses it within a second."""
    settings = _settings(data_dir)
    configure_logging("WARNING")

    async def work(db: AsyncEngine) -> bool:
        async with db.begin() as conn:
            return await revoke(conn, key_id) is not None

    if not _with_database(settings, work):
        err.print(f"no active key {key_id}")
        raise typer.Exit(1)
    out.print(f"revoked {key_id}")


@app.command()
def models(data_dir: DataDir = None) -> None:
    """Show the model catalogue: limits, prices, deployments."""
    from vidgate.core.deployment_refs import DeploymentRefs
    from vidgate.providers.registry import ADAPTERS, SANDBOX
    from vidgate.services.models import model_entry

    settings = _settings(data_dir)
    configure_logging("WARNING")
    report = _checked(settings)
    assert report.catalog is not None
    catalog = report.catalog
    # The deployments a gateway would build from this configuration, as the runtime
    # hands them to the API's ModelService (the sandbox included).
    built = {d.name: d.provider for d in report.deployments if d.state == "ok"}
    refs = DeploymentRefs({SANDBOX: SANDBOX, **built}, ADAPTERS)
    for left_out in report.deployments:
        if left_out.state != "ok":
            err.print(f"deployment {left_out.name}: {left_out.detail}", highlight=False)

    async def read_health(db: AsyncEngine) -> dict[str, HealthRecord]:
        async with db.connect() as conn:
            return await deployment_health_all(conn)

    # Circuit breakers live in the database, shared by every gateway process.
    health = _with_database(settings, read_health) if built else {}
    now = datetime.datetime.now(datetime.UTC)

    def state(status: DeploymentStatus) -> str:
        if not status.configured:
            return "not configured"
        if status.healthy:
            return "healthy"
        until = f" until {status.circuit_open_until:%H:%M:%S}" if status.circuit_open_until else ""
        return f"unhealthy{until}: {status.last_error or 'circuit open'}"

    table = Table(
        # Model ids are what users copy: never truncate or wrap them (80 columns when piped).
        Column("model", no_wrap=True),
        "durations (s)",
        "resolutions",
        "aspect ratios",
        "fps",
        "modes",
        "USD per video at the default length",
        "deployments",
    )
    for card in catalog.models():
        modes = [
            m for m in ("text_to_video", "image_to_video", "remix", "extend") if getattr(card, m)
        ]
        table.add_row(
            card.id,
            card.durations.describe(),
            ", ".join(card.resolutions),
            ", ".join(card.aspect_ratios),
            ", ".join(map(str, card.fps)),
            ", ".join(
                m.replace("_to_", "→")
                .replace("text", "t")
                .replace("image", "i")
                .replace("video", "v")
                for m in modes
            ),
            ", ".join(
                f"{r} {price:.2f}"
                for r in card.resolutions
                if (price := card.estimate(r, card.default_seconds)) is not None
            )
            + f" ({card.default_seconds} s)"
            if card.pricing is not None
            else "no list price",
            ", ".join(
                # The API's own reading (GET /v1/models), so both say the same.
                f"{d.ref.provider} ({state(d)})"
                for d in model_entry(card, refs, health, now).deployments
                if d.ref.provider != SANDBOX
            )
            or "(sandbox via test keys)",
        )
    _print_table(table)


_LABELS = {
    "ok": "ok",
    "auth_failed": "AUTH FAILED",
    "unreachable": "UNREACHABLE",
    "upstream_error": "UPSTREAM ERROR",
    "failed": "FAILED",
    "skipped": "NOT CONFIGURED",
    "invalid": "INVALID",
}


@app.command()
def check(data_dir: DataDir = None) -> None:
    """Check the configuration as `serve` would load it (the models file, the
    environment's deployments) and probe each deployment with one authenticated call.

    Exit status: 0 all well; 1 a deployment is left out (unset variables, values its
    adapter refuses) or failed its probe (unreachable, credentials refused); 2 the
    models file is invalid (the place of each mistake is printed)."""
    settings = _settings(data_dir)
    configure_logging("ERROR")
    report = _checked(settings, probe=True)
    for error in report.errors:
        typer.echo(f"error: {error}")
    width = max((len(d.name) for d in report.deployments), default=0)
    kind = max((len(d.provider) for d in report.deployments), default=0)
    for result in report.deployments:
        label = _LABELS[result.state]
        typer.echo(f"{result.name:<{width}}  {result.provider:<{kind}}  {label}: {result.detail}")
    if not report.deployments and not report.errors:
        typer.echo("no deployments configured: test keys run every model on the sandbox")
    bad = sum(d.state != "ok" for d in report.deployments)
    typer.echo(
        f"{len(report.errors)} configuration error(s), {len(report.deployments)} deployment(s)"
        f", {bad} not working"
    )
    raise typer.Exit(report.exit_status)


@app.command()
def generate(
    prompt: Annotated[str, typer.Argument(help="What the video shows.")],
    model: Annotated[str, typer.Option(help="Model id (see `vidgate models`).")] = "sandbox",
    seconds: Annotated[int | None, typer.Option(help="Duration in seconds.")] = None,
    size: Annotated[str | None, typer.Option(help="WIDTHxHEIGHT, e.g. 1280x720.")] = None,
    resolution: Annotated[str | None, typer.Option(help="480p, 720p, 1080p, ...")] = None,
    aspect_ratio: Annotated[
        str | None, typer.Option("--aspect-ratio", help="16:9, 9:16, 1:1, ...")
    ] = None,
    fps: Annotated[int | None, typer.Option(help="Frames per second.")] = None,
    image: Annotated[Path | None, typer.Option(help="First-frame image (image-to-video).")] = None,
    out_path: Annotated[Path, typer.Option("--out", "-o", help="Where to write the MP4.")] = Path(
        "video.mp4"
    ),
    base_url: Annotated[
        str, typer.Option(envvar="VIDGATE_BASE_URL", help="Gateway URL.")
    ] = "http://127.0.0.1:8000",
    api_key: Annotated[str | None, typer.Option(envvar="VIDGATE_API_KEY", help="API key.")] = None,
) -> None:
    """Generate a video through a running gateway, with a progress bar."""
    from vidgate.generate_client import GenerateError, GenerateOptions, run_generate

    if not api_key:
        err.print("an API key is needed: pass --api-key or set VIDGATE_API_KEY")
        raise typer.Exit(2)
    options = GenerateOptions(
        prompt=prompt,
        model=model,
        seconds=seconds,
        size=size,
        resolution=resolution,
        aspect_ratio=aspect_ratio,
        fps=fps,
        image=image,
        out=out_path,
        base_url=base_url,
        api_key=api_key,
    )
    try:
        video_id = run_generate(options, console=err)
    except GenerateError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None
    out.print(f"{video_id} -> {out_path}")


# Rate limits (the work is cli_limits.py's); ``projects_app`` is cli_projects.py's.
LimitOption = Annotated[str | None, typer.Option(help=cli_limits.LIMIT_HELP)]


def _limits_command(
    what: str, work: Callable[[AsyncEngine], Awaitable[Limits | None]], data_dir: Path | None
) -> None:
    configure_logging("WARNING")
    limits = _with_database(_settings(data_dir), work)
    if limits is None:
        err.print(f"no {what}")
        raise typer.Exit(1)
    out.print(f"{what}: {cli_limits.describe(limits)}")


def _limit_changes(rpm: str | None, max_concurrent: str | None) -> dict[str, int | None]:
    try:
        return cli_limits.parse_limit("--rpm", rpm) | cli_limits.parse_limit(
            "--max-concurrent", max_concurrent
        )
    except cli_limits.LimitArgumentError as exc:
        err.print(str(exc))
        raise typer.Exit(2) from None


@projects_app.command("limits")
def projects_limits(
    name: Annotated[str, typer.Argument(help="The project's name (its --tenant).")],
    rpm: LimitOption = None,
    max_concurrent: Annotated[
        str | None, typer.Option("--max-concurrent", help=cli_limits.LIMIT_HELP)
    ] = None,
    data_dir: DataDir = None,
) -> None:
    """Show a project's rate limits, or set them: creates per minute, jobs in flight."""
    changes = _limit_changes(rpm, max_concurrent)
    _limits_command(
        f"project {name}", lambda db: cli_limits.project_limits(db, name, changes), data_dir
    )


@keys_app.command("limits")
def keys_limits(
    key_id: Annotated[str, typer.Argument(help="The key's id.")],
    rpm: LimitOption = None,
    max_concurrent: Annotated[
        str | None, typer.Option("--max-concurrent", help=cli_limits.LIMIT_HELP)
    ] = None,
    data_dir: DataDir = None,
) -> None:
    """Show a key's rate limits, or set them: creates per minute, jobs in flight."""
    changes = _limit_changes(rpm, max_concurrent)
    _limits_command(
        f"key {key_id}", lambda db: cli_limits.key_limits(db, key_id, changes), data_dir
    )


def main() -> None:
    from vidgate.db.migrate import UnsupportedServer

    try:
        app()
    except UnsupportedServer as exc:
        err.print(f"[red]error:[/red] {exc}", highlight=False)
        sys.exit(1)


# Commands of their own modules, registered on ``app`` as they are imported.
from vidgate import cli_budgets, cli_hooks, cli_prices, cli_retention  # noqa: E402, F401
