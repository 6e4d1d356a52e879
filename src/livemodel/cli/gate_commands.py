"""``livemodel gate NAME --candidate V``: the loop's offline gate, as a CI step.

It runs :func:`livemodel.loop.gate.run_gate` (the comparison the loop controller runs
before a rollout: paired-bootstrap interval of the metric's improvement, segments and their
long tail, fairness where the policy configures it) between the champion (the version under
the model's served alias) and a candidate version, on a labelled holdout file or on the
recent labelled traffic of the prediction log. Exit codes (see ``docs/ci.md``):

* 0 promote, 1 do not promote, 2 cannot decide (too little data);
* 3 the gate could not run (unknown model or version, unreadable or malformed holdout,
  bad config): livemodel's other commands exit 1 on such errors, the gate does not, so that
  an error is never read as a verdict;
* 4 usage error (unknown option, bad value): 2 elsewhere, for the same reason;
* 70 internal error, 130 interrupted (as everywhere).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
import typer
from rich.console import Console
from rich.markup import escape

from livemodel.cli.inputs import at_time
from livemodel.cli.output import print_json
from livemodel.errors import (
    ConfigError,
    InvalidInputError,
    LivemodelError,
    SchemaError,
    StatisticsError,
)

PROMOTE, REJECT, UNDECIDED, ERROR, USAGE = 0, 1, 2, 3, 4
DECISIONS = {PROMOTE: "promote", REJECT: "do not promote", UNDECIDED: "cannot decide"}
METRICS = ("roc_auc", "accuracy", "f1", "log_loss", "mae", "rmse")


class GateCommand(typer.core.TyperCommand):
    """A command whose usage errors exit :data:`USAGE`, not 2 (2 is 'cannot decide')."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        try:
            return list(super().parse_args(ctx, args))
        except typer.TyperException as exc:
            if hasattr(exc, "exit_code"):
                exc.exit_code = USAGE
            raise


def install(app: typer.Typer) -> None:
    app.command("gate", cls=GateCommand)(gate)


def gate(
    name: str = typer.Argument(..., help="Model name."),
    candidate: int = typer.Option(..., "--candidate", min=1, help="Candidate version number."),
    data: Path | None = typer.Option(
        None, "--data", help="Labelled holdout, Parquet or CSV (features and the target)."
    ),
    recent: str | None = typer.Option(
        None, "--recent", help="Gate on the labelled traffic of the last 7d, 12h, 5000rows..."
    ),
    metric: str | None = typer.Option(
        None, "--metric", help=f"One of {', '.join(METRICS)} (default: the policy's, roc_auc)."
    ),
    margin: float | None = typer.Option(
        None, "--margin", help="The interval's lower bound must exceed it (default 0)."
    ),
    min_rows: int = typer.Option(
        30, "--min-rows", min=1, help="Fewer labelled rows than this: cannot decide (exit 2)."
    ),
    at: str | None = typer.Option(
        None, "--at", help="With --recent: as if it were this ISO 8601 time (default now)."
    ),
    markdown: Path | None = typer.Option(
        None, "--markdown", help="Write the Markdown summary to this file."
    ),
    config: Path | None = typer.Option(None, "--config", help="livemodel.toml to read."),
    as_json: bool = typer.Option(False, "--json", help="Print the JSON verdict on stdout."),
) -> None:
    """Gate a candidate version against the served champion: exit 0 promote, 1 do not
    promote, 2 cannot decide, 3 error (see docs/ci.md)."""
    try:
        verdict = _verdict(name, candidate, data, recent, metric, margin, min_rows, at, config)
        text = render_markdown(verdict)
        if markdown is not None:
            _write(markdown, text)
    except LivemodelError as exc:
        err = Console(stderr=True, highlight=False, soft_wrap=True)
        err.print(f"[bold red]error:[/] {escape(exc.message)}", markup=True, highlight=False)
        raise SystemExit(ERROR) from None
    if as_json:
        print_json(verdict)
    else:
        print(text, end="")
    # SystemExit, not typer.Exit: main() runs click without standalone mode (see loop_commands)
    raise SystemExit(verdict["exit_code"])


@dataclass(frozen=True)
class _Holdout:
    frame: pd.DataFrame
    source: dict[str, Any]


def _verdict(
    name: str,
    candidate: int,
    data: Path | None,
    recent: str | None,
    metric: str | None,
    margin: float | None,
    min_rows: int,
    at: str | None,
    config: Path | None,
) -> dict[str, Any]:
    from livemodel.config import Settings
    from livemodel.loop.gate import run_gate
    from livemodel.registry.refs import ModelRef, check_name
    from livemodel.wiring import connect, served_alias

    if (data is None) == (recent is None):
        raise InvalidInputError("give either --data HOLDOUT or --recent WINDOW (one of them)")
    if at is not None and recent is None:
        raise InvalidInputError("--at applies to --recent only")
    check_name(name)
    environ = dict(os.environ)
    if config is not None:
        if not config.is_file():
            raise ConfigError(f"no such config file: {str(config)!r}")
        environ["LIVEMODEL_CONFIG"] = str(config.absolute())
    settings = Settings.from_env(environ)
    gate_settings = _settings(settings, name, metric, margin)
    registry = connect(settings)
    alias = served_alias(settings)(name)
    cand = registry.load(ModelRef(name, version=candidate))  # unknown model/version: NotFound
    aliases = registry.aliases(name)
    if alias not in aliases:
        raise InvalidInputError(
            f"{name} has no version under its served alias {alias!r}: nothing to gate against "
            f"(point it at a first version with `livemodel alias set {name} {alias} V`)"
        )
    if aliases[alias] == candidate:
        raise InvalidInputError(f"{cand.version.ref} is already the champion ({name}@{alias})")
    champ = registry.load(ModelRef(name, version=aliases[alias]))
    signature = champ.version.signature
    task = signature.task
    if task is None:
        raise ConfigError(f"{champ.version.ref} has no target: nothing to gate on")
    features = list(signature.names)
    if set(cand.version.signature.names) != set(features):
        extra = sorted(set(cand.version.signature.names) ^ set(features))
        raise InvalidInputError(
            f"{cand.version.ref} and {champ.version.ref} take different features ({extra[:5]}): "
            "the gate compares two versions on the same rows"
        )
    if data is not None:
        holdout = _read_holdout(data, [*features, task.target])
    else:
        holdout = _read_recent(settings, name, signature, str(recent), at_time(at))
    verdict: dict[str, Any] = {
        "model": name,
        "champion": {"version": champ.version.version, "alias": alias},
        "candidate": {"version": candidate},
        "decision": None,
        "exit_code": None,
        "data": {**holdout.source, "rows": len(holdout.frame)},
        "settings": gate_settings.model_dump(mode="json"),
        "min_rows": min_rows,
        "reasons": [],
        "gate": None,
    }
    too_few = [] if len(holdout.frame) >= min_rows else [
        f"only {len(holdout.frame)} labelled rows; --min-rows is {min_rows}"
    ]  # fmt: skip
    try:
        result = run_gate(
            champ.model, cand.model, holdout.frame,
            features=features, target=task.target, kind=task.kind,
            classes=None if task.classes is None else list(task.classes),
            settings=gate_settings,
        )  # fmt: skip
    except StatisticsError as exc:  # too few rows, or a metric undefined on them
        return _decide(verdict, UNDECIDED, [*too_few, exc.message])
    verdict["gate"] = result.to_dict()  # shown even when too few rows: for information
    if too_few:
        return _decide(verdict, UNDECIDED, too_few)
    return _decide(verdict, PROMOTE if result.passed else REJECT, list(result.reasons))


def _decide(verdict: dict[str, Any], code: int, reasons: list[str]) -> dict[str, Any]:
    return {**verdict, "decision": DECISIONS[code], "exit_code": code, "reasons": reasons}


def _settings(settings: Any, name: str, metric: str | None, margin: float | None) -> Any:
    """The model's ``[loop.models.NAME.gate]`` settings (defaults without one), overridden."""
    from livemodel.loop.policy import GateSettings, parse_loop

    source = str(settings.config_file) if settings.config_file else None
    policies = parse_loop(settings.project.get("loop"), source=source)
    policy = policies.models.get(name)
    gate_settings = policy.gate if policy is not None else GateSettings()
    update: dict[str, Any] = {}
    if metric is not None:
        if metric not in METRICS:
            raise InvalidInputError(f"--metric {metric!r}: use one of {', '.join(METRICS)}")
        update["metric"] = metric
    if margin is not None:
        if not math.isfinite(margin):
            raise InvalidInputError("--margin must be a finite number")
        update["margin"] = float(margin)
    return gate_settings.model_copy(update=update)


def _read_holdout(path: Path, needed: list[str]) -> _Holdout:
    from livemodel.cli.inputs import read_frame

    frame = read_frame(path)
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise SchemaError(
            f"the holdout {str(path)!r} lacks columns {missing[:5]} (it needs the features "
            f"and the target: {', '.join(needed[:8])}{', ...' if len(needed) > 8 else ''})"
        )
    if frame.empty:
        raise InvalidInputError(f"the holdout {str(path)!r} has no rows")
    return _Holdout(frame, {"source": "file", "path": str(path)})


def _read_recent(settings: Any, name: str, signature: Any, recent: str, now: datetime) -> _Holdout:
    from livemodel.loop.data import ID, TIME, read_labelled
    from livemodel.monitor.windows import parse_window
    from livemodel.wiring import log_reader

    spec = parse_window(recent)
    since = None if spec.size is None else now - spec.size
    labelled, counts = read_labelled(log_reader(settings), name, signature, now=now, since=since)
    if spec.rows is not None:
        labelled = labelled.iloc[max(0, len(labelled) - spec.rows) :]
    if labelled.empty:
        raise InvalidInputError(
            f"no labelled predictions of {name} in the last {spec.label} before "
            f"{now.isoformat()} ({counts['predictions']} predictions, "
            f"{counts['unlabelled']} without a label): nothing to gate on"
        )
    source = {
        "source": "prediction log",
        "recent": spec.label,
        "now": now.isoformat(),
        "since": None if since is None else since.isoformat(),
        "left_out": counts,
    }
    return _Holdout(labelled.drop(columns=[TIME, ID]).reset_index(drop=True), source)


def _write(path: Path, text: str) -> None:
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise InvalidInputError(f"cannot write the Markdown summary to {str(path)!r}") from exc


# -- Markdown ------------------------------------------------------------------------------
_ICON = {PROMOTE: "✅", REJECT: "❌", UNDECIDED: "⚠️"}


def render_markdown(verdict: dict[str, Any]) -> str:
    """The verdict as a Markdown summary for a CI job (a PR comment, a step summary)."""
    code = int(verdict["exit_code"])
    name, alias = verdict["model"], verdict["champion"]["alias"]
    champ, cand = verdict["champion"]["version"], verdict["candidate"]["version"]
    lines = [
        f"## {_ICON[code]} livemodel gate: {name} v{cand} — **{verdict['decision']}**",
        "",
        f"Candidate v{cand} against the champion v{champ} ({name}@{alias}) on "
        f"{verdict['data']['rows']} labelled rows ({_source(verdict['data'])}).",
        "",
    ]
    if verdict["reasons"]:
        lines += [*(f"- {_md(r)}" for r in verdict["reasons"]), ""]
    result = verdict["gate"]
    if result is not None:
        o = result["overall"]
        level = f"{o['confidence']:.0%}"
        lines += [
            f"| metric | champion | candidate | improvement | {level} interval | margin |",
            "|---|---:|---:|---:|---|---:|",
            f"| {o['metric']} | {o['champion']:.4g} | {o['candidate']:.4g} | "
            f"{o['improvement']:+.4g} | {o['lower']:+.4g} … {o['upper']:+.4g} | "
            f"{result['margin']:+g} |",
            "",
        ]
        if result["segments"]:
            lines += [
                f"Segments (tolerance {result['segment_tolerance']:g}):",
                "",
                "| segment | rows | champion | candidate | improvement | |",
                "|---|---:|---:|---:|---:|---|",
            ]
            for s in result["segments"]:
                mark = "regresses" if s["regressed"] else _md(s["reason"] or "ok")
                lines.append(
                    f"| {_md(s['column'])}={_md(s['value'])} | {s['n']} | {_num(s['champion'])}"
                    f" | {_num(s['candidate'])} | {_num(s['improvement'], '+')} | {mark} |"
                )
            lines.append("")
        fairness = result["fairness"]
        if fairness is not None:
            lines += [
                f"Fairness ({fairness['metric']} across {_md(fairness['attribute'])}): gap "
                f"{_num(fairness['champion_difference'])} → "
                f"{_num(fairness['candidate_difference'])}, "
                f"{'passed' if fairness['passed'] else 'failed'}"
                + (f" ({_md(fairness['reason'])})" if fairness["reason"] else ""),
                "",
            ]
    lines.append(f"Exit code {code}. Gate settings: `{json.dumps(verdict['settings'])}`")
    return "\n".join(lines) + "\n"


def _source(data: dict[str, Any]) -> str:
    if data["source"] == "file":
        return f"holdout `{Path(data['path']).name}`"
    return f"labelled traffic of the last {data['recent']} before {data['now']}"


def _num(value: float | None, sign: str = "") -> str:
    return "-" if value is None else format(value, f"{sign}.4g")


def _md(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")
