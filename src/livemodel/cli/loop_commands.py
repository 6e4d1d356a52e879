"""``retrain NAME [--reason]``, ``retrain NAME --replay VERSION``, ``loop status|tick``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import typer

from livemodel.cli.inputs import at_time
from livemodel.cli.output import console, print_json
from livemodel.errors import ConfigError, InvalidInputError

if TYPE_CHECKING:
    from livemodel.loop.controller import LoopController, TickOutcome

JSON = typer.Option(False, "--json", help="Print JSON for machines.")
AT = typer.Option(
    None, "--at", help="Act as if it were this ISO 8601 time (replayed traffic); default now."
)
loop_app = typer.Typer(help="Continuous training: policies, runs, cooldowns.", no_args_is_help=True)


def install(app: typer.Typer) -> None:
    app.command()(retrain)
    app.add_typer(loop_app, name="loop")


def _loop() -> LoopController:
    from livemodel.config import Settings
    from livemodel.wiring import loop_controller

    settings = Settings.from_env()
    controller = loop_controller(settings)
    if controller is None:
        where = settings.config_file or "livemodel.toml"
        raise ConfigError(f"no loop policies: add [loop.models.NAME] tables to {where}")
    return controller


def retrain(
    name: str = typer.Argument(..., help="Model name."),
    reason: str | None = typer.Option(None, "--reason", help="Why (recorded in the audit log)."),
    replay: int | None = typer.Option(
        None, "--replay", min=1, help="Rebuild VERSION from its lineage and verify it."
    ),
    register: bool = typer.Option(
        False, "--register", help="With --replay: register the rebuilt model as a new version."
    ),
    at: str | None = AT,
    as_json: bool = JSON,
) -> None:
    """Retrain NAME now (then gate and roll out), or replay a version with --replay."""
    from livemodel.registry.refs import check_name

    check_name(name)
    if replay is not None:
        _replay(name, replay, register, as_json)
        return
    if register:
        raise InvalidInputError("--register only goes with --replay VERSION")
    controller = _loop()
    try:
        outcome = controller.retrain(name, at_time(at), reason=reason)
    finally:
        controller.release()
    _print_outcomes([outcome], as_json)
    if outcome.action != "rollout_started":
        _fail()


def _replay(name: str, version: int, register: bool, as_json: bool) -> None:
    from livemodel.loop.replay import replay
    from livemodel.wiring import connect

    result = replay(connect(), name, version, register=register)
    if as_json:
        print_json(result.to_dict())
    else:
        style = "green" if result.identical else "bold red"
        console.print(f"[{style}]{result.message()}[/]")
        console.print(
            f"snapshot {result.fingerprint[:16]}… ({result.rows} rows), "
            f"train {result.entry_point}, seed {result.seed}"
        )
        if result.registered is not None:
            console.print(f"registered the rebuilt model as {name}@{result.registered}")
    if not result.identical:
        _fail()


@loop_app.command("status")
def status(
    name: str = typer.Argument(..., help="Model name."), at: str | None = AT, as_json: bool = JSON
) -> None:
    """The policy of NAME, its cooldown, and its retrain runs (latest last)."""
    from livemodel.config import Settings
    from livemodel.loop.policy import parse_loop
    from livemodel.registry.refs import check_name

    settings = Settings.from_env()
    source = str(settings.config_file) if settings.config_file else None
    if check_name(name) not in parse_loop(settings.project.get("loop"), source=source).models:
        _no_policy(name, settings, as_json)
        return
    controller = _loop()
    state = controller.status(name, at_time(at))
    if as_json:
        print_json(state.to_dict())
        return
    policy = state.policy
    triggers = [k for k, v in policy["triggers"].items() if v not in (None, False, [], ())]
    console.print(
        f"[bold]{name}[/]: train {policy['train']}, triggers {', '.join(triggers) or 'none'}, "
        f"cooldown {policy['cooldown']}, plan {policy['rollout']['plan']}"
    )
    aliases = ", ".join(f"{k}=v{v}" for k, v in sorted(state.aliases.items())) or "none"
    console.print(f"aliases: {aliases} (served: {controller.rollouts.alias_of(name)})")
    if state.cooldown_until is not None:
        console.print(f"cooling down until {state.cooldown_until:%Y-%m-%d %H:%M} UTC")
    if state.running_rollout:
        console.print(f"rollout {state.running_rollout} is running")
    if not state.runs:
        console.print("no retrain runs yet")
    for run in state.runs[-20:]:
        detail = run.error or ""
        if run.gate is not None and not detail:
            overall = run.gate.get("overall", {})
            detail = f"{overall.get('metric')} improvement {_num(overall.get('improvement'))} " + (
                f"[{_num(overall.get('lower'))}, {_num(overall.get('upper'))}]"
            )
        kinds = ",".join(run.trigger.get("kinds", [])) or "-"
        console.print(
            f"run {run.run} at {run.at:%Y-%m-%d %H:%M}: {kinds}, "
            f"{_version(run.parent)} → {_version(run.candidate)}, [bold]{run.stage}[/]"
            + (f" — {detail}" if detail else "")
        )


def _no_policy(name: str, settings: Any, as_json: bool) -> None:
    """A registered model outside the loop: its aliases, and how to put it under a policy."""
    from livemodel.wiring import connect, served_alias

    aliases = connect(settings).aliases(name)  # an unknown model is an error
    alias = served_alias(settings)(name)
    if as_json:
        print_json({"model": name, "policy": None, "alias": alias, "aliases": aliases})
        return
    where = settings.config_file or "livemodel.toml"
    served = f"v{aliases[alias]}" if alias in aliases else "no version"
    console.print(
        f"{name} has no loop policy ({alias} is {served}); add a [loop.models.{name}] "
        f"table to {where} to retrain it automatically",
        markup=False,
    )


@loop_app.command("tick")
def tick(at: str | None = AT, as_json: bool = JSON) -> None:
    """Run one pass of the loop over every policy (what `livemodel controller` does)."""
    controller = _loop()
    try:
        outcomes = controller.tick(at_time(at))
    finally:
        controller.release()
    if not outcomes and not as_json:
        console.print("another loop controller holds the lease: nothing done")
    _print_outcomes(outcomes, as_json)


def _print_outcomes(outcomes: list[TickOutcome], as_json: bool) -> None:
    if as_json:
        print_json([o.to_dict() for o in outcomes])
        return
    for o in outcomes:
        style = {"rollout_started": "green", "gate_failed": "yellow"}.get(o.action, "")
        action = f"[{style}]{o.action}[/]" if style else o.action
        console.print(f"{o.model}: {action} — {o.message}")
        if o.gate is not None:
            for note in o.gate.notes[:1]:
                console.print(f"  gate: {note}")


def _fail() -> None:
    # SystemExit, not typer.Exit: main() runs click with standalone_mode=False, where an
    # Exit's code is returned and then dropped, so the process would exit 0.
    raise SystemExit(1)


def _version(number: Any) -> str:
    return "-" if number is None else f"v{number}"


def _num(value: Any) -> str:
    return f"{value:+.4g}" if isinstance(value, float) else "-"
