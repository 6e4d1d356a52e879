"""``livemodel demo``: a model's year in production, on real flights, in a few minutes."""

from __future__ import annotations

import shutil
from pathlib import Path

from rich.table import Table

from livemodel.cli.output import console
from livemodel.errors import InvalidInputError

MARKER = "LIVEMODEL_DEMO"


def run_demo(home: Path, *, first_month: int, last_month: int, per_month: int) -> None:
    from livemodel.demo import lifecycle

    home = home.expanduser().absolute()  # the server runs in it: a relative path would move
    if not 4 <= first_month <= last_month <= 12:
        raise InvalidInputError("months must satisfy 4 <= --from <= --to <= 12")
    if home.exists():
        if not (home / MARKER).exists():
            raise InvalidInputError(f"{str(home)!r} exists and is not a demo folder; pick --home")
        shutil.rmtree(home)
    home.mkdir(parents=True)
    (home / MARKER).write_text("made by `livemodel demo`; safe to delete\n")
    console.rule("[bold]livemodel demo[/]: a flight-delay model's year in production")
    with console.status("working") as status:

        def say(text: str) -> None:
            status.update(text[:100])
            console.print(text)

        result = lifecycle.run(
            home, months=tuple(range(first_month, last_month + 1)), per_month=per_month, say=say
        )
    summary = lifecycle.summarize(result)
    console.rule("what happened (from the audit log)")
    table = Table("month", "event", "why")
    for month, action, reason in result.events:
        table.add_row(month, action, reason[:110])
    console.print(table)
    console.print(
        f"{summary['requests']:,} prediction requests over HTTP, "
        f"[bold]{summary['failed_requests']} failed[/]; {summary['labels']:,} late labels; "
        f"{summary['retrains']} retrain(s), {summary['gates_passed']} gate(s) passed, "
        f"{summary['gates_failed']} failed; {summary['promotions']} promotion(s), "
        f"{summary['rollbacks']} rollback(s)."
    )
    if result.report is not None:
        console.print(f"HTML report: {result.report}")
    console.print(
        f"state is in {home}. See it live: LIVEMODEL_HOME={home} livemodel serve, then open "
        "http://127.0.0.1:8000/ui ; the story: "
        f"LIVEMODEL_HOME={home} livemodel audit flights"
    )
