"""``score``: batch inference over Parquet, validated, logged and audited like serving."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.table import Table

from livemodel.cli.output import console, print_json
from livemodel.errors import InvalidInputError

if TYPE_CHECKING:
    from livemodel.batch import ScoreResult


def install(app: typer.Typer) -> None:
    app.command()(score)


def score(
    name: str = typer.Argument(..., help="Model name, or NAME@VERSION / NAME@ALIAS."),
    input_path: Path = typer.Option(
        ..., "--input", "-i", help="A Parquet file, or a directory of Parquet files."
    ),
    output: Path = typer.Option(
        ..., "--output", "-o", help="Directory to write (one Parquet part per partition)."
    ),
    version: int | None = typer.Option(None, "--version", help="Score with this version."),
    alias: str | None = typer.Option(
        None, "--alias", help="Score with this alias (default: the serving alias, 'production')."
    ),
    engine: str = typer.Option("local", "--engine", help="local (this process) or ray."),
    keep: str | None = typer.Option(
        None, "--keep", help="Input columns to copy to the output, comma-separated (default all)."
    ),
    batch_size: int = typer.Option(65_536, "--batch-size", help="Rows per chunk in memory."),
    partition_rows: int = typer.Option(
        1_048_576, "--partition-rows", help="Rows per partition (a Ray task; whole row groups)."
    ),
    ray_address: str | None = typer.Option(
        None, "--ray-address", help="Ray cluster to join (default: a local one)."
    ),
    no_log: bool = typer.Option(
        False, "--no-log", help="Do not log the predictions (no monitoring, no feedback)."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output."),
    config: Path | None = typer.Option(None, "--config", help="livemodel.toml to read."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON for machines."),
) -> None:
    """Score a Parquet file or directory: validated, logged and audited as the server does."""
    from livemodel.batch import ScoreOptions
    from livemodel.batch import score as run_score
    from livemodel.config import Settings
    from livemodel.engine import check_engine
    from livemodel.registry.refs import ModelRef
    from livemodel.serving.options import ServerOptions
    from livemodel.wiring import connect

    if config is not None:
        os.environ["LIVEMODEL_CONFIG"] = str(config.absolute())
    engine = check_engine(engine)
    ref = ModelRef.parse(name)
    if (ref.version is not None or ref.alias is not None) and (version or alias):
        raise InvalidInputError(f"{name!r} already names a version: drop --version/--alias")
    if version is not None and alias is not None:
        raise InvalidInputError("choose --version or --alias, not both")
    settings = Settings.from_env()
    model_options = ServerOptions.parse(settings.serving).for_model(ref.name)
    if version is not None:
        ref = ModelRef.parse(f"{ref.name}@{version}")
    elif ref.version is None and ref.alias is None:
        ref = ModelRef.parse(f"{ref.name}@{alias or model_options.alias}")
    columns = None if keep is None else tuple(c.strip() for c in keep.split(",") if c.strip())
    options = ScoreOptions(
        keep=columns,
        batch_size=batch_size,
        partition_rows=partition_rows,
        overwrite=overwrite,
        validation=model_options,
        ray_address=ray_address,
    )
    registry = connect(settings)
    log_root = None if no_log else settings.log_dir
    show = engine == "local" and not as_json
    with _progress_bar(input_path, show) as progress:
        result = run_score(
            registry,
            log_root,
            str(ref),
            input_path,
            output,
            engine=engine,
            options=options,
            progress=progress,
        )
    if as_json:
        print_json(result.to_dict())
    else:
        _print_summary(result)


@contextmanager
def _progress_bar(input_path: Path, show: bool) -> Iterator[Callable[[int], None] | None]:
    """A rich progress bar on a terminal's stderr, advanced by rows done."""
    err = Console(stderr=True)
    if not show or not err.is_terminal:
        yield None
        return
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from livemodel.batch.source import open_input

    total = open_input(input_path).rows
    count = TextColumn("{task.completed:,}/{task.total:,} rows")
    columns = (TextColumn("scoring"), BarColumn(), count, TimeRemainingColumn())
    with Progress(*columns, console=err, transient=True) as bar:
        task = bar.add_task("score", total=total)
        yield lambda rows: bar.advance(task, rows)


def _print_summary(result: ScoreResult) -> None:
    table = Table(title=f"scored {result.model}@{result.version}", show_header=False)
    table.add_column(style="bold")
    table.add_column()
    rate = result.rows / result.seconds if result.seconds > 0 else float("nan")
    rows = [
        ("input", f"{result.input} ({result.rows:,} rows, sha256 {result.fingerprint[:12]})"),
        ("output", result.output),
        ("engine", f"{result.engine}, {result.partitions} partition(s)"),
        ("scored", f"{result.scored:,} ({result.flagged:,} flagged)"),
        ("rejected", f"{result.rejected:,}"),
        ("errors", f"{result.errors:,}"),
        ("logged", "yes" if result.logged else "no (--no-log)"),
        ("time", f"{result.seconds:.1f} s ({rate:,.0f} rows/s)"),
        ("run", result.run_id),
    ]
    for kind, count in list(result.violations.items())[:5]:
        rows.append(("violation", f"{kind}: {count:,} row(s)"))
    for key, value in rows:
        table.add_row(key, value)
    console.print(table)
