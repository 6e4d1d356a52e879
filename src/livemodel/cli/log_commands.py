"""``logs ship [NAME]``: compact this machine's closed log segments, ship them to the URL."""

from __future__ import annotations

import typer

from livemodel.cli.output import console, print_json
from livemodel.errors import ConfigError

logs_app = typer.Typer(
    help="The prediction and label log of this machine: shipping to object storage.",
    no_args_is_help=True,
)


def install(app: typer.Typer) -> None:
    app.add_typer(logs_app, name="logs")


@logs_app.command("ship")
def ship_logs(
    name: str | None = typer.Argument(None, help="Model name (default: every model)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON for machines."),
) -> None:
    """Compact closed segments (and those of dead writers on this host) and ship them to
    LIVEMODEL_LOG_URL; each local copy is removed once its object is verified.

    Servers ship on their own as segments close; this is for batch outputs, leftovers
    of failed uploads, and spools of replicas that were shut down.
    """
    from livemodel.config import Settings
    from livemodel.store.logsegments import compact
    from livemodel.store.logship import ship, spool_models
    from livemodel.store.predlog import check_model_name
    from livemodel.wiring import remote_log

    settings = Settings.from_env()
    remote = remote_log(settings)
    if remote is None:
        raise ConfigError("LIVEMODEL_LOG_URL is not set: there is nowhere to ship the log to")
    spool = settings.log_dir
    models = [check_model_name(name)] if name is not None else spool_models(spool)
    compacted = sum(len(compact(spool, model)) for model in models)
    shipped = ship(spool, remote, name)
    if as_json:
        print_json({"compacted": compacted, "shipped": shipped})
    else:
        console.print(
            f"compacted {compacted} segment(s), shipped {len(shipped)} to {remote.url}",
            markup=False,
        )
