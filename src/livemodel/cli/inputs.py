"""Reading what users point the CLI at: data files, model objects and ``--at`` times."""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from livemodel.errors import InvalidInputError, ModelError

_PARQUET_MAGIC = b"PAR1"
MAX_FILE_BYTES = 20 * 2**30


def read_frame(path: str | Path) -> pd.DataFrame:
    """A CSV or Parquet file as a frame; anything else is a clear error."""
    path = Path(path)
    if not path.is_file():
        raise InvalidInputError(f"no such file: {str(path)!r}")
    size = path.stat().st_size
    if size == 0:
        raise InvalidInputError(f"{str(path)!r} is empty")
    if size > MAX_FILE_BYTES:
        raise InvalidInputError(f"{str(path)!r} is larger than {MAX_FILE_BYTES // 2**30} GiB")
    with path.open("rb") as fh:
        head = fh.read(8192)
    try:
        if head.startswith(_PARQUET_MAGIC):
            return pd.read_parquet(path)
        if b"\x00" in head or path.suffix.lower() in (".parquet", ".pq"):
            raise InvalidInputError(f"{str(path)!r} is not a CSV or Parquet file")
        head.decode("utf-8")
        return pd.read_csv(path)
    except InvalidInputError:
        raise
    except UnicodeDecodeError as exc:
        raise InvalidInputError(f"{str(path)!r} is not a UTF-8 CSV or Parquet file") from exc
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InvalidInputError(f"cannot read {str(path)!r} as CSV or Parquet: {first}") from exc


def load_model_object(spec: str) -> Any:
    """``FILE`` (joblib/pickle), ``MODULE:ATTR`` or ``FILE.py:ATTR``.

    ATTR may name an estimator, an estimator class or a zero-argument factory returning
    one. Classes and functions defined in ``FILE.py`` are stored in the artifact by value
    (cloudpickle), so the model loads where that file is absent; what the file imports
    (scikit-learn, the user's installed packages) is stored by reference, as usual.
    """
    target, sep, attr = spec.rpartition(":")
    if sep and attr.isidentifier() and target:
        module = _import(target)
        try:
            obj = getattr(module, attr)
        except AttributeError as exc:
            raise InvalidInputError(f"{target!r} has no attribute {attr!r}") from exc
        if isinstance(obj, type) or (callable(obj) and not callable(getattr(obj, "predict", None))):
            try:
                obj = obj()
            except Exception as exc:
                raise ModelError(f"calling {spec!r} failed: {type(exc).__name__}: {exc}") from exc
        return obj
    path = Path(spec)
    if not path.is_file():
        raise InvalidInputError(
            f"--model {spec!r} is neither a model file nor MODULE:ATTR (e.g. mypkg.models:pipeline)"
        )
    import joblib

    try:
        return joblib.load(path)
    except Exception as exc:
        raise InvalidInputError(f"{spec!r} is not a pickled or joblib model: {exc}") from exc


def _import_file(file: Path) -> Any:
    """Execute ``file`` as a module whose classes and functions pickle by value.

    The module must be in ``sys.modules`` while the model is pickled (pickle and
    cloudpickle look classes up there); under the file's own name unless a module of that
    name is already imported, then under a name made unique by the file's path.
    """
    import cloudpickle

    name = file.stem if file.stem.isidentifier() else "livemodel_user_model"
    if name in sys.modules:
        digest = hashlib.sha256(str(file.resolve()).encode()).hexdigest()[:12]
        name = f"{name}_{digest}"
    module_spec = importlib.util.spec_from_file_location(name, file)
    if module_spec is None or module_spec.loader is None:
        raise InvalidInputError(f"cannot import {str(file)!r}")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module
    try:
        module_spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    cloudpickle.register_pickle_by_value(module)
    return module


def _import(target: str) -> Any:
    try:
        if target.endswith(".py"):
            file = Path(target)
            if not file.is_file():
                raise InvalidInputError(f"no such file: {target!r}")
            return _import_file(file)
        # Users name modules of their own project, relative to where they run the command.
        if "" not in sys.path and str(Path.cwd()) not in sys.path:
            sys.path.insert(0, str(Path.cwd()))
        return importlib.import_module(target)
    except InvalidInputError:
        raise
    except ImportError as exc:
        raise InvalidInputError(f"cannot import {target!r}: {exc}") from exc
    except Exception as exc:
        raise ModelError(f"importing {target!r} failed: {type(exc).__name__}: {exc}") from exc


def at_time(at: str | None) -> datetime:
    """An ``--at`` option as a UTC time (now when not given; naive times are UTC)."""
    if at is None:
        return datetime.now(UTC)
    try:
        parsed = datetime.fromisoformat(at)
    except ValueError as exc:
        raise InvalidInputError(f"--at {at!r} is not an ISO 8601 time") from exc
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed
