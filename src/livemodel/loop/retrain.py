"""Calling the user's training entry point and registering what it returns.

The entry point is ``module:function`` (``function`` may be dotted, e.g. ``Trainer.fit``):
it takes the training frame (features and target) and returns a fitted estimator. When it
accepts a ``seed`` argument, the policy's seed is passed, so a replay can reproduce it.

The candidate is registered with the holdout as its validation frame (holdout metrics, and
a reference sample the model never saw) and its lineage in the tags: ``trigger``,
``parent_version`` and ``loop`` (run id, trigger details, entry point, seed and the
pinned snapshot: artifacts, fingerprints and the query that built it). Its signature is
widened by the parent's (``accepts=``), so a snapshot that happens to lack the nulls,
categories or extremes the parent saw does not make the candidate reject or flag requests
the parent served (a column stays non-nullable only where the new model cannot take a null;
the version's lineage says which, under ``signature.kept_narrow``).
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Mapping
from typing import Any

import pandas as pd

from livemodel.errors import ConfigError, LivemodelError, ModelError
from livemodel.loop.data import PinnedSnapshot
from livemodel.registry.classmap import inherited_class_map
from livemodel.registry.registry import Registry
from livemodel.registry.version import ModelVersion

__all__ = ["TrainFunction", "call_train", "register_candidate", "resolve_entry_point"]

TrainFunction = Callable[..., Any]


def resolve_entry_point(spec: str, *, key: str = "train") -> TrainFunction:
    """Import ``module:function``; any failure is a ConfigError naming ``key``."""
    module_name, sep, attribute = spec.partition(":") if isinstance(spec, str) else ("", "", "")
    if not sep or not module_name or not attribute:
        raise ConfigError(f"{key}: {spec!r} is not 'module:function'")
    try:
        target: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"{key}: cannot import module {module_name!r}: {exc}") from exc
    except Exception as exc:
        raise ConfigError(
            f"{key}: importing {module_name!r} failed: {type(exc).__name__}: {exc}"
        ) from exc
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError as exc:
            raise ConfigError(f"{key}: {module_name!r} has no attribute {attribute!r}") from exc
    if not callable(target):
        raise ConfigError(f"{key}: {spec!r} is not callable")
    return target  # type: ignore[no-any-return]


def _takes_seed(fn: TrainFunction) -> bool:
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return "seed" in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def call_train(fn: TrainFunction, frame: pd.DataFrame, *, seed: int, name: str) -> Any:
    """Run the user's training function on a copy of ``frame``; wrap its failures."""
    try:
        if _takes_seed(fn):
            return fn(frame.copy(), seed=seed)
        return fn(frame.copy())
    except LivemodelError:
        raise
    except Exception as exc:
        raise ModelError(f"the train function {name} failed: {type(exc).__name__}: {exc}") from exc


def register_candidate(
    registry: Registry,
    name: str,
    model: Any,
    snapshot: PinnedSnapshot,
    *,
    parent: ModelVersion,
    entry_point: str,
    seed: int,
    run_id: str,
    trigger: Mapping[str, Any],
    extra_tags: Mapping[str, Any] | None = None,
) -> ModelVersion:
    """Register ``model`` trained on ``snapshot.train`` as a new version of ``name``."""
    task = parent.signature.task
    if task is None:
        raise ModelError(f"{parent.ref} has no target: the loop cannot retrain it")
    kinds = trigger.get("kinds") or [trigger.get("kind", "manual")]
    lineage = {
        "run": run_id,
        "trigger": dict(trigger),
        "parent": parent.version,
        "train": entry_point,
        "seed": seed,
        "snapshot": dict(snapshot.info),
    }
    tags = {
        "trigger": ",".join(str(k) for k in kinds),
        "parent_version": parent.version,
        "loop": lineage,
        **dict(extra_tags or {}),
    }
    train_sha = snapshot.info["train"]["artifact"]["sha256"]
    return registry.register(
        name,
        model,
        snapshot.train,
        target=task.target,
        validation=snapshot.holdout,
        tags=tags,
        seed=seed,
        task=task.kind,
        description=f"retrained by the loop ({tags['trigger']}) from v{parent.version}",
        data_source=f"loop snapshot sha256:{train_sha}",
        accepts=parent.signature,
        class_map=inherited_class_map(parent.lineage.get("class_map"), model, task.classes or ()),
    )
