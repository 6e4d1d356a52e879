"""The file of a fitted :class:`~livemodel.monitor.fitted.Reference`, verified on load.

Format (version 1): a ZIP archive with two members.

* ``manifest.json``: ``{"format": "livemodel-reference", "format_version": 1,
  "created": ISO time, "versions": {"livemodel", "python", "numpy", "pandas",
  "scikit-learn", "scipy", "pyarrow"}, "state": {"name": "state.pkl", "sha256", "size"},
  "summary": {task, features, target, prediction, segments, sample_rows, multivariate,
  estimate, seed}}``. The summary is for people and tools; loading does not read it.
* ``state.pkl``: a pickle (protocol 5) of the reference's settings and its fitted
  :class:`~livemodel.monitor.suite.MonitorSuite`: the profiles (pickled as their own
  byte format, :meth:`~livemodel.stats.profile.Profile.to_bytes`), the row sample, and
  the fitted estimators (CBPE calibrators or DLE nannies, PCA fold models).

Loading checks, before it unpickles anything: the format and its version; that
livemodel, scikit-learn and Python are the versions that saved it, and numpy and pandas
the same major version (fitted scikit-learn estimators are only defined for the version
that fitted them); the SHA-256 digest and size of the state. The unpickler then resolves
only classes of the packages a reference is made of (livemodel, numpy, pandas, pyarrow,
scikit-learn, scipy) and a few builtins. Every failed check is one
:class:`~livemodel.errors.InvalidInputError` saying what to do: build the reference again
from its frame. The digest guards against damage, not against a forged file: like any
pickle, load only references you saved or trust.
"""

from __future__ import annotations

import hashlib
import io
import json
import pickle
import sys
import zipfile
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any

from livemodel.errors import InvalidInputError

if TYPE_CHECKING:
    from livemodel.monitor.fitted import Reference

__all__ = ["read_reference", "reference_bytes", "reference_from_bytes", "write_reference"]

FORMAT = "livemodel-reference"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
STATE = "state.pkl"
_EXACT = ("livemodel", "scikit-learn", "python")
_MAJOR = ("numpy", "pandas")
_PACKAGES = ("livemodel", "numpy", "pandas", "scikit-learn", "scipy", "pyarrow")
_MODULES = ("livemodel", "numpy", "pandas", "pyarrow", "sklearn", "scipy")
_BUILTINS = frozenset({"slice", "set", "frozenset", "complex", "range", "bytearray", "getattr"})
_OTHER = frozenset({("copyreg", "_reconstructor"), ("collections", "OrderedDict")})


def _versions() -> dict[str, str]:
    out = {"python": f"{sys.version_info.major}.{sys.version_info.minor}"}
    for package in _PACKAGES:
        try:
            out[package] = version(package)
        except PackageNotFoundError:
            out[package] = "unknown"
    return out


def _summary(ref: Reference) -> dict[str, Any]:
    settings, reference = ref.settings, ref.reference
    return {
        "task": reference.task,
        "features": list(reference.features),
        "target": reference.target,
        "prediction": settings.prediction,
        "segments": list(settings.segments),
        "sample_rows": len(reference.sample),
        "multivariate": settings.multivariate,
        "estimate": settings.estimate,
        "seed": settings.seed,
    }


def reference_bytes(ref: Reference) -> bytes:
    """The file's bytes (see the module docstring)."""
    state = pickle.dumps((ref.settings, ref.suite), protocol=5)
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "versions": _versions(),
        "state": {"name": STATE, "sha256": hashlib.sha256(state).hexdigest(), "size": len(state)},
        "summary": _summary(ref),
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        zf.writestr(MANIFEST, json.dumps(manifest, indent=2, default=str))
        zf.writestr(STATE, state)
    return buffer.getvalue()


def write_reference(ref: Reference, path: Path) -> Path:
    """Write atomically: a reader never sees half a file."""
    data = reference_bytes(ref)
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_bytes(data)
        tmp.replace(path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        message = f"cannot write the reference to {path.name}: {exc.strerror}"
        raise InvalidInputError(message) from exc
    return path


def read_reference(path: Path) -> Reference:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InvalidInputError(f"cannot read the reference {path.name}: {exc.strerror}") from exc
    return reference_from_bytes(data)


def _rebuild() -> str:
    return "build the reference again from its frame and save it"


def _check_versions(saved: object) -> None:
    if not isinstance(saved, dict):
        raise InvalidInputError(f"the reference file has no versions: {_rebuild()}")
    here = _versions()
    for name in _EXACT:
        if saved.get(name) != here[name]:
            raise InvalidInputError(
                f"this reference was saved with {name} {saved.get(name)}, this process has "
                f"{here[name]}: {_rebuild()}"
            )
    for name in _MAJOR:
        if str(saved.get(name, "")).split(".")[0] != here[name].split(".")[0]:
            raise InvalidInputError(
                f"this reference was saved with {name} {saved.get(name)}, this process has "
                f"{here[name]}: {_rebuild()}"
            )


class _Unpickler(pickle.Unpickler):
    """Resolves only the classes a reference is made of."""

    def find_class(self, module: str, name: str) -> Any:
        root = module.split(".", 1)[0]
        allowed = (
            root in _MODULES
            or (module == "builtins" and name in _BUILTINS)
            or (module, name) in _OTHER
        )
        if not allowed:
            raise InvalidInputError(f"the reference file refers to {module}.{name}: refused")
        if module == "builtins" and name == "getattr":
            return _getattr
        return super().find_class(module, name)


def _getattr(obj: object, name: str) -> Any:
    if not isinstance(name, str) or name.startswith("_"):
        raise InvalidInputError("the reference file reads a private attribute: refused")
    return getattr(obj, name)


def reference_from_bytes(data: bytes) -> Reference:
    """Verify (see the module docstring), then rebuild the reference."""
    from livemodel.monitor.fitted import Reference, ReferenceSettings
    from livemodel.monitor.suite import MonitorSuite

    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            manifest = json.loads(zf.read(MANIFEST))
            if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
                raise InvalidInputError("this file is not a livemodel reference")
            if manifest.get("format_version") != FORMAT_VERSION:
                raise InvalidInputError(
                    f"reference format {manifest.get('format_version')} is not supported "
                    f"(this livemodel reads {FORMAT_VERSION}): {_rebuild()}"
                )
            _check_versions(manifest.get("versions"))
            expected = manifest.get("state") or {}
            state = zf.read(STATE)
    except (zipfile.BadZipFile, KeyError, ValueError, EOFError) as exc:
        message = "this file is not a livemodel reference (or it is damaged)"
        raise InvalidInputError(message) from exc
    digest = hashlib.sha256(state).hexdigest()
    if expected.get("sha256") != digest or expected.get("size") != len(state):
        raise InvalidInputError(f"the reference file is damaged (its digest differs): {_rebuild()}")
    try:
        loaded = _Unpickler(io.BytesIO(state)).load()
    except (pickle.UnpicklingError, AttributeError, ImportError, EOFError, TypeError) as exc:
        raise InvalidInputError(f"the reference file cannot be read: {_rebuild()}") from exc
    match loaded:
        case (ReferenceSettings() as settings, MonitorSuite() as suite) if hasattr(
            suite, "calculators_"
        ):
            return Reference._of(settings, suite)
    raise InvalidInputError(f"the reference file holds something else: {_rebuild()}")
