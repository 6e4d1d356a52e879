"""``rollout start|status|abort`` and ``controller``."""

from __future__ import annotations

from typing import Any

import typer

from livemodel.cli.output import console, print_json

JSON = typer.Option(False, "--json", help="Print JSON for machines.")
rollout_app = typer.Typer(
    help="Shadow, canary and A/B rollouts of a candidate.", no_args_is_help=True
)


def install(app: typer.Typer) -> None:
    app.add_typer(rollout_app, name="rollout")
    app.command()(controller)


def _controller() -> Any:
    from livemodel.wiring import rollout_controller

    return rollout_controller()


@rollout_app.command("start")
def start(
    name: str = typer.Argument(..., help="Model name."),
    candidate: int = typer.Option(..., "--candidate", min=1, help="Version to roll out."),
    plan: str = typer.Option("shadow,canary:5,25,50,100", "--plan"),
    metric: str | None = typer.Option(None, "--metric", help="A/B outcome: accuracy or label."),
    routing_key: str | None = typer.Option(
        None,
        "--routing-key",
        help="Feature naming the entity (e.g. customer_id) that keeps a user on one side.",
    ),
    alpha: float = typer.Option(0.05, "--alpha"),
    min_step_samples: int = typer.Option(200, "--min-step-samples", min=1),
    as_json: bool = JSON,
) -> None:
    """Start rolling out CANDIDATE against the version the model is served under (its
    serving alias, 'production' unless livemodel.toml names another); promotion moves it."""
    from livemodel.registry.refs import check_name

    check_name(name)
    state = _controller().start(
        name,
        candidate,
        plan,
        metric=metric,
        routing_key=routing_key,
        alpha=alpha,
        min_step_samples=min_step_samples,
    )
    if as_json:
        print_json(state.to_dict())
    else:
        console.print(
            f"rollout {state.id}: {name} v{state.candidate} against v{state.champion}, "
            f"plan {state.plan.to_text()}; follow it with `livemodel rollout status {name}`"
        )


@rollout_app.command("status")
def status(name: str = typer.Argument(...), as_json: bool = JSON) -> None:
    """Where the latest rollout of NAME stands, with its guard readings."""
    from livemodel.errors import NotFoundError
    from livemodel.registry.refs import check_name

    controller = _controller()
    try:
        state, stored = controller.status(check_name(name))
    except NotFoundError:
        aliases = controller.registry.aliases(name)  # an unknown model stays an error
        _no_rollout(name, controller.alias_of(name), aliases, as_json)
        return
    if as_json:
        print_json(
            {
                **state.to_dict(),
                "revision": stored.revision,
                "created_at": stored.created_at.isoformat(),
            }
        )
        return
    from rich.table import Table

    step = f"step {state.step + 1}/{len(state.plan.steps)}"
    console.print(
        f"rollout {state.id} of [bold]{name}[/]: v{state.candidate} vs v{state.champion} — "
        f"[bold]{state.status}[/] at {state.current.label()} ({step})"
    )
    if state.reason:
        console.print(f"reason: {state.reason}")
    table = Table("guard", "verdict", "effect", "CI", "p-value", "n cand", "n champ")
    for r in state.last_readings:
        lo, hi = r.get("ci", [None, None])
        ci = f"{_num(lo)} … {_num(hi)}"
        table.add_row(
            str(r["guard"]),
            str(r["verdict"]),
            _num(r.get("effect")),
            ci,
            _num(r.get("p_value")),
            str(r.get("n_candidate")),
            str(r.get("n_champion")),
        )
    console.print(table)


@rollout_app.command("abort")
def abort_cmd(
    name: str = typer.Argument(...), reason: str | None = typer.Option(None, "--reason")
) -> None:
    """Stop the running rollout: the champion takes all traffic again."""
    state = _controller().abort(name, reason)
    console.print(f"rollout {state.id} aborted; v{state.champion} serves all traffic")


def controller(
    every: float = typer.Option(5.0, "--every", min=0.1, help="Seconds between ticks."),
    max_ticks: int | None = typer.Option(None, "--max-ticks", min=1),
) -> None:
    """Follow rollouts (guards, steps, promote or roll back) and the loop policies of
    livemodel.toml (monitor, retrain, gate); one controller acts at a time."""
    import time

    from livemodel.wiring import controller_tick

    tick = controller_tick()
    console.print(
        f"controller following rollouts and loop policies every {every:g} s; Ctrl-C stops"
    )
    ticks = 0
    try:
        while max_ticks is None or ticks < max_ticks:
            tick()
            ticks += 1
            if max_ticks is None or ticks < max_ticks:
                time.sleep(every)
    finally:
        tick.release()


def _no_rollout(name: str, alias: str, aliases: dict[str, int], as_json: bool) -> None:
    if as_json:
        print_json({"model": name, "status": None, "alias": alias, "aliases": aliases})
        return
    served = f"v{aliases[alias]}" if alias in aliases else "no version"
    console.print(f"no rollout of {name} yet; {alias} is {served}", markup=False)


def _num(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:.4g}" if isinstance(value, float) else str(value)
