"""``serve``, ``predictions``, ``review list``, ``token create|list|revoke``."""

from __future__ import annotations

import os
import shutil
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import typer

from livemodel.cli.output import console, print_json
from livemodel.errors import InvalidInputError

JSON = typer.Option(False, "--json", help="Print JSON for machines.")
review_app = typer.Typer(help="Low-confidence predictions awaiting a human.", no_args_is_help=True)
token_app = typer.Typer(help="API tokens for the server.", no_args_is_help=True)


def install(app: typer.Typer) -> None:
    app.command()(serve)
    app.command()(predictions)
    app.add_typer(review_app, name="review")
    app.add_typer(token_app, name="token")


def serve(
    host: str = typer.Option("127.0.0.1", "--host"),
    port: int = typer.Option(8000, "--port", min=1, max=65535),
    workers: int = typer.Option(1, "--workers", min=1, max=64),
    config: Path | None = typer.Option(None, "--config", help="livemodel.toml to read."),
    with_controller: bool = typer.Option(
        False, "--with-controller", help="Also follow rollouts here (single machine)."
    ),
) -> None:
    """Serve every model that has its serving alias (default 'production')."""
    import uvicorn

    from livemodel.config import Settings
    from livemodel.serving.options import ServerOptions

    if config is not None:
        os.environ["LIVEMODEL_CONFIG"] = str(config.absolute())
    if with_controller:
        os.environ["LIVEMODEL_SERVE_CONTROLLER"] = "1"
    settings = Settings.from_env()
    ServerOptions.parse(settings.serving)  # refuse a bad config before starting anything
    # One model call runs at a time per model (micro-batching gives the parallelism), so an
    # OpenMP/BLAS pool per call only contends with the server's own threads and with other
    # workers: on a busy 2-core machine a boosted-tree call took ~10x longer with it. A value
    # the user set wins.
    for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(variable, "1")
    metrics_dir = None
    if workers > 1:
        # prometheus-client reads this at import time, in every worker.
        metrics_dir = tempfile.mkdtemp(prefix="livemodel-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    from livemodel.wiring import connect

    connect(settings).models()  # fail fast, with one line, if the database is unreachable
    console.print(f"serving on http://{host}:{port} with {workers} worker(s); Ctrl-C stops")
    try:
        uvicorn.run(
            "livemodel.wiring:serving_app",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=10,
            # uvicorn kills a worker that misses a 5 s ping and starts another: on a busy
            # machine a worker still importing numpy/sklearn missed it every time, so a
            # 2-worker server never listened (seen at load 12 on 2 cores).
            timeout_worker_healthcheck=60,
        )
    finally:
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)


def predictions(
    name: str = typer.Argument(..., help="Model name."),
    since: str | None = typer.Option(None, "--since", help="ISO time or a duration: 2d, 6h, 30m."),
    version: int | None = typer.Option(None, "--version", min=1),
    limit: int | None = typer.Option(None, "--limit", min=1),
    as_json: bool = JSON,
    parquet: Path | None = typer.Option(None, "--parquet", help="Write Parquet to this file."),
    include_failures: bool = typer.Option(
        False,
        "--include-failures",
        help="Also export what no client got as an answer: rows a version failed on with "
        "no fallback answering (flags model_error, nan_output or timeout, no outputs; a "
        "request no version answered leaves only these) and rollout probes.",
    ),
) -> None:
    """Export the predictions of a model that clients got, with their (latest) labels."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from livemodel.registry.refs import check_name
    from livemodel.store.answered import answered
    from livemodel.wiring import connect, log_reader

    check_name(name)
    if not as_json and parquet is None:
        raise InvalidInputError("choose --json or --parquet FILE")
    connect().aliases(name)  # an unknown model is an error here as in every other command
    reader = log_reader()
    if include_failures:
        table = reader.window(name, version=version, start=parse_since(since), with_labels=True)
    else:  # an id's answer may come from another version (a fallback): read them all first
        table = answered(reader.window(name, start=parse_since(since), with_labels=True))
        if version is not None:
            table = table.filter(pc.equal(table.column("version"), version))
    if limit is not None:
        table = table.slice(max(0, table.num_rows - limit))
    if parquet is not None:
        pq.write_table(table, parquet)
        console.print(f"wrote {table.num_rows:,} predictions to {parquet}")
    if as_json:
        print_json(table.to_pylist())


@review_app.command("list")
def review_list(
    model: str | None = typer.Option(None, "--model"),
    days: int = typer.Option(7, "--days", min=1),
    limit: int = typer.Option(100, "--limit", min=1),
    as_json: bool = JSON,
) -> None:
    """Low-confidence predictions that have no label yet."""
    from livemodel.wiring import log_reader

    reader = log_reader()
    names = [model] if model else reader.models()
    since = datetime.now(UTC) - timedelta(days=days)
    items = []
    for name in names:
        table = reader.window(name, start=since, with_labels=True)
        for row in table.to_pylist():
            if "low_confidence" in (row.get("flags") or []) and row.get("label") is None:
                items.append(row)
    items = sorted(items, key=lambda r: r["time"], reverse=True)[:limit]
    if as_json:
        print_json(items)
        return
    from rich.table import Table

    table_out = Table("model", "prediction id", "time", "version")
    for row in items:
        table_out.add_row(row["model"], row["prediction_id"], str(row["time"]), str(row["version"]))
    console.print(table_out if items else "no predictions awaiting review")


@token_app.command("create")
def token_create(
    name: str = typer.Argument(..., help="What the token is for, e.g. 'ci' or 'checkout-svc'."),
    scope: list[str] = typer.Option(["predict"], "--scope", help="predict, feedback or admin."),
) -> None:
    """Create a token; its secret is printed once and stored only as a hash."""
    from livemodel.store.tokens import TokenStore
    from livemodel.wiring import connect

    secret, info = TokenStore(connect().metadata.db).create(name, scope)
    console.print(
        f"token {info.id} ({', '.join(info.scopes)}) for {name!r}; keep it, it is not shown again:"
    )
    print(secret)


@token_app.command("list")
def token_list(as_json: bool = JSON) -> None:
    from livemodel.store.tokens import TokenStore
    from livemodel.wiring import connect

    infos = TokenStore(connect().metadata.db).list()
    if as_json:
        print_json(
            [
                {
                    "id": t.id,
                    "name": t.name,
                    "scopes": list(t.scopes),
                    "revoked": t.revoked,
                    "created_at": t.created_at.isoformat(),
                }
                for t in infos
            ]
        )
        return
    for t in infos:
        state = "revoked" if t.revoked else "active"
        console.print(f"{t.id}  {t.name}  {','.join(t.scopes)}  {state}")


@token_app.command("revoke")
def token_revoke(token_id: int = typer.Argument(..., min=1)) -> None:
    from livemodel.store.tokens import TokenStore
    from livemodel.wiring import connect

    TokenStore(connect().metadata.db).revoke(token_id)
    console.print(f"token {token_id} revoked (servers stop accepting it within 10 s)")


def parse_since(value: str | None) -> datetime | None:
    """``2d``, ``6h``, ``30m``, ``45s`` ago, or an ISO 8601 time."""
    if value is None:
        return None
    units = {"d": "days", "h": "hours", "m": "minutes", "s": "seconds"}
    number, unit = value[:-1], value[-1:]
    if unit in units and number.isdigit():
        return datetime.now(UTC) - timedelta(**{units[unit]: int(number)})
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise InvalidInputError(
            f"--since {value!r} is neither a duration (2d, 6h) nor ISO 8601"
        ) from exc
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed
