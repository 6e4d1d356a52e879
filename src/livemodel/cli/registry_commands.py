"""``register``, ``models list|show``, ``alias set``, ``rollback``, ``audit``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from livemodel.cli import cards
from livemodel.cli.output import console, print_json
from livemodel.errors import InvalidInputError, SchemaError

models_app = typer.Typer(help="List registered models and show their cards.", no_args_is_help=True)
alias_app = typer.Typer(
    help="Point aliases such as 'production' at versions.", no_args_is_help=True
)

JSON = typer.Option(False, "--json", help="Print JSON for machines.")


def install(app: typer.Typer) -> None:
    app.command()(register)
    app.add_typer(models_app, name="models")
    app.add_typer(alias_app, name="alias")
    app.command()(rollback)
    app.command()(audit)


def _registry() -> Any:
    from livemodel.wiring import connect

    return connect()


def register(
    name: str = typer.Argument(..., help="Model name."),
    model: str = typer.Option(
        ..., "--model", help="A joblib/pickle FILE, or MODULE:ATTR (an estimator or a factory)."
    ),
    data: Path = typer.Option(..., "--data", help="Training data, CSV or Parquet."),
    target: str = typer.Option(..., "--target", help="Target column in the training data."),
    validation: Path | None = typer.Option(
        None, "--validation", help="Holdout data (same columns)."
    ),
    alias: str | None = typer.Option(None, "--alias", help="Point this alias at the new version."),
    tag: list[str] = typer.Option([], "--tag", help="KEY=VALUE, repeatable."),
    seed: int | None = typer.Option(None, "--seed", help="Seed used in training (recorded)."),
    description: str | None = typer.Option(None, "--description"),
    class_map: str | None = typer.Option(
        None,
        "--class-map",
        help="MODEL_CLASS=TARGET_VALUE,... when the model's classes are not the target's "
        "values (e.g. 0=no,1=yes).",
    ),
    as_json: bool = JSON,
) -> None:
    """Register a model version: fit it first if it is not fitted yet."""
    from livemodel.cli.inputs import load_model_object, read_frame
    from livemodel.registry.model_io import check_api, check_model
    from livemodel.registry.refs import check_alias, check_name
    from livemodel.schema.signature import infer_signature

    check_name(name)
    if alias is not None:
        check_alias(alias)
    tags = _parse_tags(tag)
    mapping = _parse_class_map(class_map) if class_map is not None else None
    train = read_frame(data)
    valid = read_frame(validation) if validation is not None else None
    estimator = load_model_object(model)
    check_api(estimator)  # before fitting: an object without predict() is not a model
    if train.empty:
        raise SchemaError(f"the training data {str(data)!r} is empty (no rows)")
    if target not in train.columns:
        raise InvalidInputError(
            f"target column {target!r} is not in {str(data)!r} (columns: {list(train.columns)[:8]})"
        )
    infer_signature(train, target)  # refuse data the registry cannot describe before fitting
    estimator = _fitted(estimator, train, target)
    check_model(estimator)
    version = _registry().register(
        name,
        estimator,
        train,
        target=target,
        validation=valid,
        alias=alias,
        tags=tags,
        seed=seed,
        description=description,
        data_source=str(data),
        class_map=mapping,
    )
    if as_json:
        print_json(version.to_dict())
    else:
        console.print(f"registered [bold]{version.ref}[/]")
        cards.print_card(version)


@models_app.command("list")
def models_list(as_json: bool = JSON) -> None:
    """All registered models with their latest version and aliases."""
    summaries = _registry().models()
    if as_json:
        print_json(
            [
                {
                    "name": s.name,
                    "created_at": s.created_at.isoformat(),
                    "latest_version": s.latest_version,
                    "versions": s.n_versions,
                    "aliases": dict(s.aliases),
                }
                for s in summaries
            ]
        )
    else:
        cards.print_models(summaries)


@models_app.command("show")
def models_show(
    ref: str = typer.Argument(..., help="NAME, NAME@VERSION or NAME@ALIAS."),
    as_json: bool = JSON,
) -> None:
    """The model card: signature, lineage, metrics, aliases."""
    version = _registry().get(ref)
    if as_json:
        print_json(version.to_dict())
    else:
        cards.print_card(version)


@alias_app.command("set")
def alias_set(
    name: str = typer.Argument(...),
    alias: str = typer.Argument(...),
    version: int = typer.Argument(..., min=1),
    reason: str | None = typer.Option(None, "--reason"),
    as_json: bool = JSON,
) -> None:
    """Point ALIAS of model NAME at VERSION (recorded in the audit log)."""
    before = _registry().set_alias(name, alias, version, reason=reason)
    if as_json:
        print_json({"model": name, "alias": alias, "from": before, "to": version})
    else:
        console.print(f"{name}@{alias}: {before if before is not None else '-'} -> {version}")


def rollback(
    name: str = typer.Argument(...),
    alias: str | None = typer.Option(
        None, "--alias", help="Default: the served alias ('production' unless configured)."
    ),
    reason: str | None = typer.Option(None, "--reason"),
    as_json: bool = JSON,
) -> None:
    """Move an alias (default: the served one) back to the version it pointed at before."""
    from livemodel.wiring import served_alias

    alias = alias or served_alias()(name)
    before, after = _registry().rollback(name, alias, reason=reason)
    if as_json:
        print_json({"model": name, "alias": alias, "from": before, "to": after})
    else:
        console.print(f"{name}@{alias}: rolled back {before} -> {after}")


def audit(
    name: str = typer.Argument(...),
    limit: int | None = typer.Option(None, "--limit", min=1),
    as_json: bool = JSON,
) -> None:
    """The audit log of a model: registrations, alias moves, rollbacks."""
    events = _registry().audit(name, limit=limit)
    if as_json:
        print_json(
            [
                {
                    "id": e.id,
                    "at": e.at.isoformat(),
                    "action": e.action,
                    "actor": e.actor,
                    "alias": e.alias,
                    "from": e.from_version,
                    "to": e.to_version,
                    "reason": e.reason,
                    "details": dict(e.details),
                }
                for e in events
            ]
        )
    else:
        cards.print_audit(name, events)


def _parse_tags(pairs: list[str]) -> dict[str, str]:
    tags = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise InvalidInputError(f"--tag {pair!r} is not KEY=VALUE")
        tags[key.strip()] = value
    return tags


def _parse_class_map(text: str) -> dict[str, str]:
    """``0=no,1=yes`` as ``{"0": "no", "1": "yes"}`` (matched to the classes as text)."""
    mapping: dict[str, str] = {}
    for pair in text.split(","):
        key, sep, value = pair.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise InvalidInputError(
                f"--class-map {text!r} is not MODEL_CLASS=TARGET_VALUE,... (e.g. 0=no,1=yes)"
            )
        if key.strip() in mapping:
            raise InvalidInputError(f"--class-map maps {key.strip()!r} twice")
        mapping[key.strip()] = value.strip()
    return mapping


def _fitted(estimator: Any, train: Any, target: str) -> Any:
    """Fit an unfitted scikit-learn estimator on the training frame."""
    from sklearn.exceptions import NotFittedError
    from sklearn.utils.validation import check_is_fitted

    from livemodel.errors import ModelError
    from livemodel.registry.model_io import first_line

    if not callable(getattr(estimator, "fit", None)):
        return estimator
    try:
        check_is_fitted(estimator)
        return estimator
    except NotFittedError:
        pass
    except TypeError:
        return estimator
    with console.status(f"fitting {type(estimator).__name__} on {len(train):,} rows"):
        try:
            estimator.fit(train.drop(columns=[target]), train[target])
        except Exception as exc:
            raise ModelError(
                f"fitting {type(estimator).__name__} failed: {first_line(exc)}"
            ) from exc
    return estimator
