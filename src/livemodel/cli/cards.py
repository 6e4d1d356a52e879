"""Rich renderings of model cards, model lists and audit logs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.table import Table

from livemodel.cli.output import console
from livemodel.registry.version import ModelVersion
from livemodel.store.metadata import AuditEvent, ModelSummary


def print_models(summaries: Sequence[ModelSummary]) -> None:
    if not summaries:
        console.print("no models registered yet: see `livemodel register --help`")
        return
    table = Table("model", "latest", "versions", "aliases", "created")
    for s in summaries:
        aliases = ", ".join(f"{a}→{v}" for a, v in s.aliases.items()) or "-"
        table.add_row(
            s.name, str(s.latest_version or "-"), str(s.n_versions), aliases, _time(s.created_at)
        )
    console.print(table)


def print_card(v: ModelVersion) -> None:
    task = v.signature.task
    console.rule(f"[bold]{v.ref}[/]  {', '.join(v.aliases) or 'no alias'}")
    head = Table.grid(padding=(0, 2))
    head.add_row("registered", f"{_time(v.created_at)} by {v.actor}")
    if v.description:
        head.add_row("description", v.description)
    if task is not None:
        classes = f" classes {list(task.classes)}" if task.classes else ""
        head.add_row("task", f"{task.kind} on target '{task.target}'{classes}")
    head.add_row("artifact", f"sha256 {v.artifact.sha256[:16]}…  {v.artifact.size:,} bytes")
    console.print(head)

    sig = Table("feature", "type", "nullable", "range / categories", title="signature")
    for col in v.signature.columns:
        if col.categories is not None:
            shown = ", ".join(col.categories[:6]) + (" …" if len(col.categories) > 6 else "")
            detail = f"{len(col.categories)}: {shown}"
        elif col.min is not None or col.max is not None:
            detail = f"{_num(col.min)} … {_num(col.max)}"
        else:
            detail = "-"
        sig.add_row(col.name, col.type.value, "yes" if col.nullable else "no", detail)
    console.print(sig)

    lin = Table.grid(padding=(0, 2))
    data = v.lineage.get("data", {})
    lin.add_row(
        "training data",
        f"{data.get('rows', '?'):,} rows x {data.get('columns', '?')} columns, "
        f"fingerprint {str(data.get('fingerprint', ''))[:16]}…"
        + (f" from {data['source']}" if data.get("source") else ""),
    )
    code = v.lineage.get("code")
    if code:
        dirty = " (dirty)" if code.get("dirty") else ""
        lin.add_row(
            "code", f"git {str(code.get('commit', ''))[:12]}{dirty} on {code.get('branch')}"
        )
    else:
        lin.add_row("code", "not in a git repository")
    est = v.lineage.get("estimator", {})
    lin.add_row("estimator", f"{est.get('class', '?')} ({len(est.get('params', {}))} parameters)")
    env = v.lineage.get("environment", {})
    packages = ", ".join(f"{k} {val}" for k, val in env.get("packages", {}).items())
    lin.add_row("environment", f"Python {env.get('python', '?')}; {packages}")
    if v.lineage.get("seed") is not None:
        lin.add_row("seed", str(v.lineage["seed"]))
    if v.tags:
        lin.add_row("tags", ", ".join(f"{k}={val}" for k, val in v.tags.items()))
    console.print("[bold]lineage[/]")
    console.print(lin)

    holdout: dict[str, Any] = dict(v.metrics.get("holdout", {}))
    if holdout:
        metrics = Table(
            "metric", "value", title=f"holdout metrics ({v.metrics.get('holdout_rows')} rows)"
        )
        for name, m in holdout.items():
            metrics.add_row(
                name, _num(m.get("value")) if m.get("value") is not None else m.get("reason", "-")
            )
        console.print(metrics)
    ref = v.reference
    console.print(
        f"[bold]reference[/]: profile of the training frame, {ref.get('sample_rows', 0):,}-row "
        f"sample from the {ref.get('source', '?')} frame"
    )


def print_audit(name: str, events: Sequence[AuditEvent]) -> None:
    table = Table(title=f"audit: {name}")
    for column in ("#", "when", "action", "alias", "from", "to", "actor"):
        table.add_column(column, no_wrap=True)
    table.add_column("reason")
    for e in events:
        table.add_row(
            str(e.id),
            _time(e.at),
            e.action,
            e.alias or "",
            _opt(e.from_version),
            _opt(e.to_version),
            e.actor,
            e.reason or "",
        )
    console.print(table)


def _time(value: Any) -> str:
    return str(value.strftime("%Y-%m-%d %H:%M:%S UTC"))


def _num(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.4g}"


def _opt(value: int | None) -> str:
    return "-" if value is None else str(value)
