"""``monitor run`` (once, or ``--every 5m`` until Ctrl-C) and ``monitor results``."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import typer

from livemodel.cli.output import console, print_json
from livemodel.errors import InvalidInputError

if TYPE_CHECKING:
    from rich.table import Table

    from livemodel.monitor.results import MetricResult, WindowResult
    from livemodel.monitor.runner import Monitor, RunResult

JSON = typer.Option(False, "--json", help="Print JSON for machines.")
monitor_app = typer.Typer(
    help="Monitor models: drift, data quality, realized and estimated performance.",
    no_args_is_help=True,
)
HEADLINE = {"binary": ("accuracy", "roc_auc"), "multiclass": ("accuracy",), "regression": ("mae",)}


def install(app: typer.Typer) -> None:
    app.add_typer(monitor_app, name="monitor")


def parse_time(value: str, now: datetime) -> datetime:
    """A duration ago (``30d``, ``6h``, ``15m``, ``2w``) or an ISO 8601 time (UTC if naive)."""
    from livemodel.monitor.windows import parse_duration

    try:
        return now - parse_duration(value)
    except InvalidInputError:
        pass
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise InvalidInputError(
            f"{value!r} is neither a duration (30d, 6h, 15m) nor an ISO 8601 time"
        ) from exc
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed


@monitor_app.command("run")
def run(
    name: str = typer.Argument(..., help="Model name."),
    since: str = typer.Option("30d", "--since", help="Start: a duration ago (30d) or ISO time."),
    until: str | None = typer.Option(None, "--until", help="End (default: now)."),
    window: str = typer.Option("1d", "--window", help="1h, 1d, 1w, Nm/Nh/Nd or 10000rows."),
    segment: list[str] = typer.Option([], "--segment", help="Categorical feature to split by."),
    version: int | None = typer.Option(
        None, "--version", min=1, help="Default: the served alias's version."
    ),
    as_json: bool = JSON,
    every: str | None = typer.Option(None, "--every", help="Run again every 5m, 1h, ..."),
    max_runs: int | None = typer.Option(None, "--max-runs", min=1, help="Stop after N runs."),
    engine: str = typer.Option(
        "local", "--engine", help="local, or ray: log segments summarised as Ray Data tasks."
    ),
    ray_address: str | None = typer.Option(
        None, "--ray-address", help="Ray cluster to join (default: start a local one)."
    ),
) -> None:
    """Compute drift, data quality and performance per window; store and print them."""
    from livemodel.engine import check_engine, ray_module
    from livemodel.monitor.windows import parse_duration, parse_window

    parse_window(window)  # a bad window is a usage error before anything is loaded
    interval = parse_duration(every) if every is not None else None
    if check_engine(engine) == "ray":
        ray_module()  # missing Ray is said before anything is loaded
    monitor = _monitor(engine, ray_address)
    runs = 0
    try:
        while True:
            now = datetime.now(UTC)
            start, end = parse_time(since, now), parse_time(until, now) if until else now
            _run_once(monitor, name, start, end, window, segment, version, as_json)
            runs += 1
            if interval is None or (max_runs is not None and runs >= max_runs):
                return
            _wait(interval, runs, as_json)
    except KeyboardInterrupt:
        if interval is None:
            raise
        console.print(f"stopped after {runs} run(s)")


def _monitor(engine: str = "local", ray_address: str | None = None) -> Monitor:
    from livemodel.config import Settings
    from livemodel.monitor.resultstore import ResultStore
    from livemodel.monitor.runner import Monitor
    from livemodel.wiring import connect, log_reader, served_alias

    settings = Settings.from_env()
    registry = connect(settings)
    return Monitor(
        registry,
        log_reader(settings),
        ResultStore(registry.metadata.db),
        engine=engine,
        ray_address=ray_address,
        alias_of=served_alias(settings),
    )


def _run_once(
    monitor: Monitor,
    name: str,
    start: datetime,
    end: datetime,
    window: str,
    segments: Sequence[str],
    version: int | None,
    as_json: bool,
) -> RunResult:
    if as_json:
        result = monitor.run(
            name, since=start, until=end, window=window, segments=segments, version=version
        )
        print_json(result.to_dict())
        return result
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    with Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        console=console, transient=True,
    ) as bar:  # fmt: skip
        task = bar.add_task(f"monitoring {name}", total=None)
        result = monitor.run(
            name, since=start, until=end, window=window, segments=segments, version=version,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )  # fmt: skip
    task_kind = monitor.fitted_suite(name, result.version, segments).reference_.task
    console.print(_table(result, task_kind))
    console.print(
        f"{len(result.windows)} window result(s), {result.rows_saved} numbers stored "
        f"({name}@{result.version}, {start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC)"
    )
    if not any(w.n_rows for w in result.windows):
        console.print(
            f"no predictions of {name}@{result.version} logged in this period "
            "(--version N monitors another version)",
            markup=False,
        )
    if result.concept is not None:
        console.print(_concept_line(result.concept))
    return result


def _concept_line(run: Any) -> str:
    """What the concept-drift detectors found over the version's labelled error stream."""
    if run.note is not None:
        return f"concept drift: not checked ({run.note})"
    scanned = ", ".join(f"{n:,} in {order} order" for order, n in run.rows.items())
    if not any(run.rows.values()):
        return "concept drift: no labelled predictions yet"
    if not run.detections:
        return f"concept drift: no change detected ({scanned} labelled)"
    lines = [f"[yellow]concept drift: {len(run.detections)} detection(s)[/] ({scanned} labelled)"]
    for d in run.detections:
        lines.append(
            f"  {d.detector}, {d.order} order: began at row {d.start.index} (prediction "
            f"{d.start.prediction_id}, {d.start.time:%Y-%m-%d %H:%M}), detected at row "
            f"{d.detected.index}; mean error {_fmt(d.error_before)} -> {_fmt(d.error_after)}"
        )
    return "\n".join(lines)


def _wait(interval: timedelta, runs: int, quiet: bool) -> None:
    if quiet:
        time.sleep(interval.total_seconds())
        return
    deadline = time.monotonic() + interval.total_seconds()
    with console.status("") as status:
        while (left := deadline - time.monotonic()) > 0:
            status.update(f"run {runs} done; next in {left:,.0f} s (Ctrl-C stops)")
            time.sleep(min(1.0, left))


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _band(r: MetricResult | None) -> str:
    if r is None:
        return "-"
    if r.value is None:
        return f"[dim]{(r.reason or 'undefined')[:40]}[/]"
    text = f"{r.value:.3f} [{_fmt(r.lower)}, {_fmt(r.upper)}]"
    return f"[bold red]{text}[/]" if r.alert else text


def _table(result: RunResult, task: str | None) -> Table:
    from rich.table import Table

    table = Table(title=f"{result.model}@{result.version}, windows of {result.window}")
    for column in ("window start", "segment", "rows", "labelled", "drifted columns", "quality"):
        table.add_column(column)
    metrics = HEADLINE.get(task or "", ())
    for metric in metrics:
        table.add_column(f"{metric} realized")
        table.add_column(f"{metric} estimated")
    table.add_column("multivariate")
    for w in result.windows:
        table.add_row(*_cells(w, metrics))
    return table


def _cells(w: WindowResult, metrics: Sequence[str]) -> list[str]:
    from livemodel.monitor.results import ALL, DATA_QUALITY, ESTIMATED, MULTIVARIATE, REALIZED

    def find(calculator: str, metric: str) -> Any:
        return next(
            (r for r in w.results if r.calculator == calculator and r.metric == metric), None
        )

    quality = sorted({r.column or "" for r in w.by_calculator(DATA_QUALITY) if r.alert})
    drifted = ", ".join(w.drifted_columns) or "-"
    cells = [
        f"{w.start:%Y-%m-%d %H:%M}" if w.segment == ALL else "",
        "all" if w.segment == ALL else w.segment,
        f"{w.n_rows:,}",
        f"{w.n_labelled:,}",
        f"[yellow]{drifted}[/]" if w.drifted_columns else drifted,
        f"[yellow]{', '.join(quality)}[/]" if quality else "ok",
    ]
    for metric in metrics:
        cells += [_band(find(REALIZED, metric)), _band(find(ESTIMATED, metric))]
    cells.append(_band(find(MULTIVARIATE, "pca_reconstruction_error")))
    return cells


@monitor_app.command("results")
def results(
    name: str = typer.Argument(..., help="Model name."),
    since: str | None = typer.Option(None, "--since", help="Windows starting after this."),
    calculator: str | None = typer.Option(None, "--calculator"),
    segment: str | None = typer.Option(None, "--segment", help="'*' is the whole window."),
    alerts: bool = typer.Option(False, "--alerts", help="Only numbers that alert."),
    as_json: bool = JSON,
) -> None:
    """Stored monitoring results of a model, oldest window first."""
    from rich.table import Table

    from livemodel.monitor.resultstore import ResultStore
    from livemodel.wiring import connect

    store = ResultStore(connect().metadata.db)
    start = parse_time(since, datetime.now(UTC)) if since else None
    rows = store.query(
        name, since=start, calculator=calculator, segment=segment, alerts_only=alerts
    )
    if as_json:
        print_json([r.to_dict() for r in rows])
        return
    table = Table("window start", "segment", "calculator", "metric", "column", "value", "band")
    for r in rows:
        band = f"[{_fmt(r.lower)}, {_fmt(r.upper)}]"
        value = _fmt(r.value) if r.value is not None else f"[dim]{r.reason or '-'}[/]"
        table.add_row(
            f"{r.start:%Y-%m-%d %H:%M}", r.segment, r.calculator, r.metric, r.column or "",
            f"[bold red]{value}[/]" if r.alert else value, band,
        )  # fmt: skip
    console.print(table if rows else "no stored results")
