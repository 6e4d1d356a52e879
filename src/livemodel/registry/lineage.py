"""Where a model version came from: data fingerprint, code state, parameters, environment."""

from __future__ import annotations

import hashlib
import importlib.metadata
import math
import platform
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from livemodel.errors import SchemaError

_PACKAGES = ("livemodel", "numpy", "pandas", "scikit-learn", "scipy", "lightgbm", "xgboost")


def data_fingerprint(frame: pd.DataFrame) -> str:
    """SHA-256 over column names, dtypes and every value: equal frames, equal fingerprints."""
    digest = hashlib.sha256()
    for name, dtype in frame.dtypes.items():
        digest.update(f"{name}\x00{dtype}\x01".encode())
    try:
        hashed = pd.util.hash_pandas_object(frame, index=False)
    except TypeError as exc:
        raise SchemaError(f"the training frame holds values that cannot be hashed: {exc}") from exc
    digest.update(np.ascontiguousarray(hashed.to_numpy(dtype="uint64")).tobytes())
    return digest.hexdigest()


def git_state(path: Path) -> dict[str, Any] | None:
    """Commit and dirty flag of the git repository holding ``path``, or None outside one."""

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(
                ["git", "-C", str(path), *args],
                capture_output=True,
                text=True,
                timeout=10,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if not commit:
        return None
    status = git("status", "--porcelain", "--untracked-files=no")
    return {
        "commit": commit,
        "dirty": bool(status),
        "branch": git("rev-parse", "--abbrev-ref", "HEAD"),
    }


def environment(model: object) -> dict[str, Any]:
    """Python and library versions, including the package the estimator comes from."""
    packages = {}
    top = type(model).__module__.split(".")[0]
    dist_names = {"sklearn": "scikit-learn"}
    for name in (*_PACKAGES, dist_names.get(top, top)):
        try:
            packages[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return {
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "packages": dict(sorted(packages.items())),
    }


def estimator_params(model: object) -> dict[str, Any]:
    """The estimator's class and ``get_params()``, made JSON-safe (repr where needed)."""
    cls = type(model)
    params: Mapping[str, Any] = {}
    get_params = getattr(model, "get_params", None)
    if callable(get_params):
        try:
            params = get_params(deep=True)
        except Exception:  # noqa: BLE001 - a user's estimator may fail here; params are optional
            params = {}
    return {
        "class": f"{cls.__module__}.{cls.__qualname__}",
        "params": {str(k): json_safe(v) for k, v in sorted(params.items())},
    }


def json_safe(value: Any) -> Any:
    """A JSON-serializable rendering of ``value`` (scalars kept, the rest repr'd)."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        number = float(value)
        return number if math.isfinite(number) else repr(number)
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    text = repr(value)
    return text if len(text) <= 300 else text[:297] + "..."
