"""``report NAME -o report.html``, ``alerts list`` and ``alerts check NAME``."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from livemodel.cli.output import console, print_json
from livemodel.errors import ConfigError

if TYPE_CHECKING:
    from livemodel.alerts.check import CheckOutcome
    from livemodel.alerts.store import StoredAlert
    from livemodel.config import Settings

JSON = typer.Option(False, "--json", help="Print JSON for machines.")
alerts_app = typer.Typer(
    help="Alerts: rules over monitoring results, notifiers.", no_args_is_help=True
)
_STYLE = {"critical": "bold red", "warning": "yellow", "info": "cyan"}


def install(app: typer.Typer) -> None:
    app.command("report")(report)
    app.add_typer(alerts_app, name="alerts")


def report(
    name: str = typer.Argument(..., help="Model name."),
    output: Path = typer.Option(Path("report.html"), "-o", "--output", help="HTML file to write."),
    since: str = typer.Option("30d", "--since", help="Start: a duration ago (30d) or ISO time."),
    until: str | None = typer.Option(None, "--until", help="End (default: now)."),
    window: str | None = typer.Option(None, "--window", help="Window spec of the stored results."),
    version: int | None = typer.Option(
        None, "--version", min=1, help="Default: the served alias's version."
    ),
    protected: str | None = typer.Option(
        None, "--protected", help="Feature to audit fairness on (or [report] protected)."
    ),
    fairness_metric: str | None = typer.Option(
        None, "--fairness-metric", help="accuracy, true_positive_rate, selection_rate, ..."
    ),
    explain: bool = typer.Option(True, "--explain/--no-explain", help="SHAP importance."),
) -> None:
    """Write ONE self-contained HTML report (opens offline) of a model's monitoring."""
    from livemodel.alerts.store import AlertStore
    from livemodel.cli.monitor_commands import parse_time
    from livemodel.config import Settings
    from livemodel.monitor.resultstore import ResultStore
    from livemodel.registry.refs import check_name
    from livemodel.report.build import ReportOptions, build_report
    from livemodel.report.render import write_report
    from livemodel.store.rollouts import RolloutStore
    from livemodel.wiring import connect, log_reader, served_alias

    check_name(name)
    settings = Settings.from_env()
    table = _report_table(settings)
    now = datetime.now(UTC)
    start, end = parse_time(since, now), parse_time(until, now) if until else now
    options = ReportOptions(
        window=window,
        version=version,
        alias=served_alias(settings)(name),
        protected=protected or _text(table, "protected", settings),
        fairness_metric=fairness_metric or _text(table, "fairness_metric", settings) or "accuracy",
        explain=explain,
    )
    registry = connect(settings)
    db = registry.metadata.db
    with console.status(f"building the report of {name}"):
        data = build_report(
            registry, log_reader(settings), ResultStore(db), name, since=start, until=end,
            options=options, rollouts=RolloutStore(db), alerts=AlertStore(db),
        )  # fmt: skip
        path = write_report(data, output)
    summary = data.sections["summary"]
    console.print(
        f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB) of {name}@{data.sections['version']}: "
        f"{summary['windows']} window(s), "
        f"{len(summary['drifted_latest'])} feature(s) drifted in the latest"
    )
    if not summary["windows"]:
        console.print(
            f"no monitoring results of {name} in this period: `livemodel monitor run {name}` "
            "computes them from the prediction log",
            markup=False,
        )


@alerts_app.command("list")
def list_alerts(
    model: str | None = typer.Option(None, "--model", help="Only this model."),
    state: str | None = typer.Option(None, "--state", help="sent, failed or suppressed."),
    since: str | None = typer.Option(None, "--since", help="Recorded after: 7d or ISO time."),
    only_open: bool = typer.Option(False, "--open", help="Only alerts within their cooldown."),
    limit: int = typer.Option(50, "--limit", min=1, max=100_000),
    as_json: bool = JSON,
) -> None:
    """Recorded alerts, newest first."""
    from livemodel.alerts.store import AlertStore
    from livemodel.cli.monitor_commands import parse_time
    from livemodel.wiring import connect

    store = AlertStore(connect().metadata.db)
    if only_open:
        rows = store.open(model)[:limit]
    else:
        start = parse_time(since, datetime.now(UTC)) if since else None
        rows = store.query(model, since=start, state=state, limit=limit)
    if as_json:
        print_json([r.to_dict() for r in rows])
        return
    console.print(_alerts_table(rows) if rows else "no alerts recorded")


@alerts_app.command("check")
def check(
    name: str = typer.Argument(..., help="Model name."),
    horizon: str = typer.Option("35d", "--horizon", help="Look for results this far back."),
    as_json: bool = JSON,
) -> None:
    """Evaluate the [alerts] rules on NAME's latest results and notify (exit 1 if a
    delivery failed)."""
    from livemodel.alerts.check import check_model
    from livemodel.alerts.config import load_alerts_config
    from livemodel.alerts.store import AlertStore
    from livemodel.config import Settings
    from livemodel.monitor.resultstore import ResultStore
    from livemodel.monitor.windows import parse_duration
    from livemodel.registry.refs import check_name
    from livemodel.wiring import connect

    check_name(name)
    lookback = parse_duration(horizon)
    settings = Settings.from_env()
    config = load_alerts_config(settings.project, settings.config_file)
    registry = connect(settings)
    db = registry.metadata.db
    outcomes = check_model(
        name, registry=registry, results=ResultStore(db), store=AlertStore(db), config=config,
        horizon=lookback,
    )  # fmt: skip
    if as_json:
        print_json([_outcome(o) for o in outcomes])
    elif outcomes:
        console.print(_alerts_table([o.stored for o in outcomes]))
    else:
        console.print(f"no alert for {name} ({len(config.rules)} rule(s) checked)")
    if any(o.state == "failed" for o in outcomes):
        raise typer.Exit(1)


def _outcome(o: CheckOutcome) -> dict[str, Any]:
    return {**o.stored.to_dict(), "deliveries": [d.to_dict() for d in o.deliveries]}


def _alerts_table(rows: list[StoredAlert]) -> Any:
    from rich.table import Table

    table = Table("recorded", "severity", "model", "rule", "state", "attempts", "message")
    for r in rows:
        state = r.state if r.state != "failed" else f"[bold red]failed[/]: {r.last_error or ''}"
        if r.state == "suppressed":
            state = f"[dim]suppressed ({r.last_error or ''})[/]"
        table.add_row(
            f"{r.at:%Y-%m-%d %H:%M}", f"[{_STYLE.get(r.severity, '')}]{r.severity}[/]", r.model,
            r.rule, state, str(r.attempts), r.message,
        )  # fmt: skip
    return table


def _report_table(settings: Settings) -> Mapping[str, Any]:
    table = settings.project.get("report", {})
    if not isinstance(table, Mapping):
        raise ConfigError(f"[report] in {settings.config_file} must be a table")
    unknown = sorted(set(table) - {"protected", "fairness_metric"})
    if unknown:
        raise ConfigError(f"[report] in {settings.config_file}: unknown settings {unknown}")
    return table


def _text(table: Mapping[str, Any], key: str, settings: Settings) -> str | None:
    value = table.get(key)
    if value is not None and (not isinstance(value, str) or not value):
        raise ConfigError(f"[report] {key} in {settings.config_file} must be a non-empty string")
    return value
