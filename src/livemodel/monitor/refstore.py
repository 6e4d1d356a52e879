"""A registered version's fitted :class:`~livemodel.monitor.fitted.Reference`, kept in the
registry's artifact store so that a later process loads it instead of fitting it again.

Key (relative to the artifact store's root)::

    fitted/<name>/<version>/<source>-<settings>-livemodel-<livemodel version>.lmref

``source`` is a digest of the SHA-256 digests of the version's stored reference (profile
and sample); ``settings`` a digest of everything the fit depends on (the
:class:`~livemodel.monitor.fitted.ReferenceSettings`: segments, drift, quality,
multivariate, estimate, seed; the suite's band, segment and sample limits) and of the
livemodel version. The file is :mod:`livemodel.monitor.reffile`'s format: loading
verifies its digest and the versions that saved it. A file that is missing is fitted and
stored; one that is damaged, from other versions or for other settings is fitted again
and replaced, with a warning. The write is atomic (a temporary name renamed into place on
a local folder, one PUT on an object store), so a concurrent reader never sees half a file;
two writers both write a whole file and the last rename wins.
"""

from __future__ import annotations

import hashlib
import logging
import re
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

from livemodel.errors import InvalidInputError
from livemodel.store.artifacts import transport_errors

if TYPE_CHECKING:
    from livemodel.monitor.fitted import Reference, ReferenceSettings
    from livemodel.monitor.suite import MonitorSuite
    from livemodel.registry.version import ModelVersion
    from livemodel.store.artifacts import ArtifactStore

__all__ = ["load_fitted", "save_fitted", "stored_key"]

log = logging.getLogger(__name__)
_SAFE = re.compile(r"[^A-Za-z0-9._-]")


def _livemodel_version() -> str:
    try:
        return version("livemodel")
    except PackageNotFoundError:
        return "unknown"


def _suite_limits(suite: MonitorSuite) -> tuple[Any, ...]:
    return (suite.band_sigmas, suite.max_segments, suite.sample_rows)


def stored_key(model: ModelVersion, settings: ReferenceSettings, suite: MonitorSuite) -> str | None:
    """Where the fitted reference of ``model`` with these settings is kept (None: the
    version has no stored reference to name it by)."""
    try:
        source = f"{model.reference['profile']['sha256']}:{model.reference['sample']['sha256']}"
    except (KeyError, TypeError):
        return None
    lm = _livemodel_version()
    text = repr((settings, _suite_limits(suite), lm))
    src = hashlib.sha256(source.encode()).hexdigest()[:16]
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    name = f"{src}-{digest}-livemodel-{_SAFE.sub('_', lm)}.lmref"
    return f"fitted/{model.name}/{model.version}/{name}"


def load_fitted(
    store: ArtifactStore, key: str, settings: ReferenceSettings, suite: MonitorSuite
) -> Reference | None:
    """The stored reference, verified; None (with a warning unless it is missing) when it
    cannot be used."""
    from livemodel.monitor.reffile import reference_from_bytes

    path = f"{store.root}/{key}"
    try:
        data: bytes = store.fs.cat_file(path)
    except FileNotFoundError:
        return None
    except transport_errors():
        log.warning("cannot read the stored fitted reference %s: fitting it", key)
        return None
    try:
        ref = reference_from_bytes(data)
    except InvalidInputError as exc:
        log.warning(
            "the stored fitted reference %s cannot be used (%s): fitting it again", key, exc
        )
        return None
    if ref.settings != settings or _suite_limits(ref.suite) != _suite_limits(suite):
        log.warning("the stored fitted reference %s has other settings: fitting it again", key)
        return None
    log.info("fitted reference loaded from %s", key)
    ref.origin = "loaded"
    return ref


def save_fitted(store: ArtifactStore, key: str, ref: Reference) -> bool:
    """Store ``ref`` under ``key`` atomically; False (with a warning) if the store refuses."""
    from livemodel.monitor.reffile import reference_bytes

    data = reference_bytes(ref)
    try:
        store.write(key, data)
    except transport_errors():
        log.warning("cannot store the fitted reference %s: it is fitted per process", key)
        return False
    log.info("fitted reference stored as %s", key)
    return True
