"""livemodel.Reference: fitted once, the same reports as compare(), saved and loaded.

Real calculators throughout: fits are counted by wrapping the real ``fit`` methods (the
statistics run unchanged)."""

from __future__ import annotations

import io
import json
import pickle
import zipfile
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import livemodel
from livemodel.errors import InvalidInputError
from livemodel.monitor.compare import Report, compare
from livemodel.monitor.fitted import Reference
from livemodel.monitor.reffile import MANIFEST, STATE
from livemodel.monitor.results import ESTIMATED, REALIZED
from livemodel.monitor.resultstore import ResultStore
from livemodel.monitor.runner import Monitor
from livemodel.monitor.suite import MonitorSuite
from livemodel.registry.refs import ModelRef
from livemodel.registry.registry import Registry
from livemodel.stats.cbpe import CBPE
from livemodel.stats.dle import DLE
from livemodel.stats.multivariate import PCAReconstructionDrift
from livemodel.store.artifacts import ArtifactStore
from livemodel.store.database import open_database
from livemodel.store.logreader import LogReader
from livemodel.store.metadata import MetadataStore

from .conftest import register, write_log

DAY0 = datetime(2024, 7, 1, tzinfo=UTC)


def _binary(n: int, shift: float, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(loc=shift, size=n)
    z = rng.normal(size=n)
    c = rng.choice(["a", "b", "c"], size=n, p=[0.5, 0.3, 0.2])
    p = 1.0 / (1.0 + np.exp(-(1.5 * x + 0.5 * z)))
    y = (rng.random(n) < p).astype(int)
    return pd.DataFrame({"x": x, "z": z, "c": c, "y": y, "pred": (p > 0.5).astype(int), "p": p})


def _multiclass(n: int, shift: float, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(loc=shift, size=(n, 2))
    logits = np.column_stack([x[:, 0], x[:, 1], -x[:, 0] - x[:, 1]])
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    classes = np.array(["lo", "mid", "hi"])
    y = classes[[rng.choice(3, p=row) for row in proba]]
    frame = pd.DataFrame({"x0": x[:, 0], "x1": x[:, 1], "y": y, "pred": classes[proba.argmax(1)]})
    for i, cls in enumerate(classes):
        frame[f"p_{cls}"] = proba[:, i]
    return frame


def _regression(n: int, shift: float, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(loc=shift, size=n)
    c = rng.choice(["u", "v"], size=n)
    noise = rng.normal(scale=0.5 + np.abs(x) + (c == "v"), size=n)
    pred = 2.0 * x
    return pd.DataFrame({"x": x, "c": c, "y": pred + noise, "pred": pred})


Maker = Callable[[int, float, int], pd.DataFrame]
CASES: dict[str, tuple[Maker, dict[str, Any]]] = {
    "binary": (
        _binary,
        {"target": "y", "prediction": "pred", "probability": "p", "segments": ["c"]},
    ),
    "multiclass": (
        _multiclass,
        {
            "target": "y",
            "prediction": "pred",
            "probability": {c: f"p_{c}" for c in ("lo", "mid", "hi")},
        },
    ),
    "regression": (_regression, {"target": "y", "prediction": "pred", "segments": ["c"]}),
}


def _windows(make: Maker, n: int = 600) -> list[pd.DataFrame]:
    """Labelled and unlabelled windows, with and without drift, and a features-only one."""
    same, shifted = make(n, 0.0, 11), make(2 * n // 3, 0.8, 12)
    features = [c for c in shifted.columns if c in ("x", "c", "x0")]
    return [same, same.drop(columns="y"), shifted.drop(columns="y"), shifted, shifted[features]]


def _exact_part(d: dict[str, Any]) -> dict[str, Any]:
    """A report's dict without what reads KLL sketches (see :func:`_text`)."""

    def keep(r: dict[str, Any]) -> bool:
        sketched = r["metric"] in ("ks", "wasserstein", "drift")
        return not (sketched and r["calculator"].endswith("drift") and r["column"])

    def exact(r: dict[str, Any]) -> dict[str, Any]:
        # a test's corrected p-value depends on the other tests' (KS) p-values
        return {**r, "details": {k: v for k, v in r["details"].items() if k != "p_value"}}

    out = {
        **d,
        "results": [exact(r) for r in d["results"] if keep(r)],
        "segments": {k: _exact_part(v) for k, v in d["segments"].items()},
    }
    out.pop("drifted_columns")
    return out


def _text(report: Report, approximate: bool = False) -> str:
    """Every value, band, alert, reason and detail as JSON text (NaN equals NaN).

    ``approximate``: the statistics read from KLL quantile sketches (``ks``,
    ``wasserstein`` and the verdicts built on them) are left out. A KLL sketch compacts
    at random once a column has more than ``k = 200`` values, so two ``compare()`` calls
    on the same frames differ in them (measured: KS up to 0.01 and flipped verdicts on
    borderline columns), and so do the multiple-testing corrected p-values of the other
    tests; below 200 rows every result is exact and compared."""
    data = report.to_dict()
    return json.dumps(_exact_part(data) if approximate else data, sort_keys=True, default=str)


def _same(a: Report, b: Report, approximate: bool = False) -> None:
    assert _text(a, approximate) == _text(b, approximate)


def _close_sketches(a: Report, b: Report) -> None:
    """The sketch statistics left out by ``approximate`` agree within the sketch error."""
    fa, fb = a.to_frame(), b.to_frame()
    assert fa[["segment", "calculator", "metric", "column"]].equals(
        fb[["segment", "calculator", "metric", "column"]]
    )
    # KS is a difference of ranks (KLL's rank error bounds it); Wasserstein is in the
    # column's own units, so its sketch error is relative (a CI run saw 0.85 vs 0.89).
    for metric, atol, rtol in (("ks", 0.05, 0.0), ("wasserstein", 0.05, 0.1)):
        sketched = (fa["metric"] == metric).to_numpy()
        va = fa["value"].to_numpy(dtype=float)[sketched]
        vb = fb["value"].to_numpy(dtype=float)[sketched]
        assert np.allclose(va, vb, atol=atol, rtol=rtol, equal_nan=True), metric


@pytest.fixture
def fits(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Counts calls of the real fit methods of the estimators and of the suite."""
    counts: Counter[str] = Counter()
    for cls in (CBPE, DLE, PCAReconstructionDrift, MonitorSuite):
        original = cls.fit

        def counted(
            self: Any, *args: Any, _o: Any = original, _n: str = cls.__name__, **kwargs: Any
        ) -> Any:
            counts[_n] += 1
            return _o(self, *args, **kwargs)

        monkeypatch.setattr(cls, "fit", counted)
    return counts


@pytest.mark.parametrize("case", sorted(CASES))
def test_reference_compare_equals_compare_exactly(case: str) -> None:
    """200 rows or fewer per frame: no sketch compacts, so every result is exact."""
    make, settings = CASES[case]
    frame = make(200, 0.0, 1)
    ref = livemodel.Reference(frame, **settings)
    for window in _windows(make, n=180):
        _same(ref.compare(window), compare(frame, window, **settings))


@pytest.mark.parametrize("case", sorted(CASES))
def test_reference_compare_equals_compare_on_every_window(case: str, fits: Counter[str]) -> None:
    make, settings = CASES[case]
    frame = make(1500, 0.0, 1)
    ref = livemodel.Reference(frame, **settings)
    assert fits["MonitorSuite"] == 1
    estimator = "DLE" if case == "regression" else "CBPE"
    assert (fits[estimator], fits["PCAReconstructionDrift"]) == (1, 1)
    reports = []
    for window in _windows(make):
        mine, one_shot = ref.compare(window), compare(frame, window, **settings)
        _same(mine, one_shot, approximate=True)
        _close_sketches(mine, one_shot)
        reports.append(mine)
    labelled, unlabelled, drifted = reports[0], reports[1], reports[2]
    assert {r.calculator for r in labelled.results} >= {REALIZED}
    assert ESTIMATED not in {r.calculator for r in labelled.results}
    assert all(r.value is not None for r in unlabelled.performance.values())
    assert {r.calculator for r in unlabelled.results} >= {ESTIMATED}
    assert set(drifted.drifted_columns) >= {"x0" if case == "multiclass" else "x"}
    if "segments" in settings:
        assert labelled.segments and unlabelled.segments
    # the Reference fitted its estimators once for all windows
    fits.clear()
    for window in _windows(make):
        ref.compare(window)
    assert sum(fits.values()) == 0


def test_compare_one_shot_fits_only_what_its_window_needs(fits: Counter[str]) -> None:
    make, settings = CASES["regression"]
    frame = make(1500, 0.0, 1)
    compare(frame, make(300, 0.0, 2), **settings)  # labelled: no DLE
    assert (fits["DLE"], fits["PCAReconstructionDrift"]) == (0, 1)
    compare(frame, make(300, 0.0, 2).drop(columns="y"), **settings)
    assert (fits["DLE"], fits["PCAReconstructionDrift"]) == (1, 2)


@pytest.mark.parametrize("case", sorted(CASES))
def test_save_and_load_give_identical_reports(
    case: str, tmp_path: Path, fits: Counter[str]
) -> None:
    make, settings = CASES[case]
    ref = Reference(make(1500, 0.0, 1), **settings)
    path = ref.save(tmp_path / "ref.lmref")
    fits.clear()
    loaded = Reference.load(path)
    for window in _windows(make):
        _same(loaded.compare(window), ref.compare(window), approximate=True)
    assert sum(fits.values()) == 0  # nothing refitted on load
    assert loaded.task == ref.task and loaded.settings == ref.settings
    manifest = json.loads(zipfile.ZipFile(path).read(MANIFEST))
    assert manifest["format"] == "livemodel-reference" and manifest["format_version"] == 1
    assert manifest["summary"]["features"] == list(ref.features)
    assert Reference.from_bytes(ref.to_bytes()).settings == ref.settings


def _rezip(
    data: bytes, edit: Callable[[dict[str, Any], bytes], tuple[dict[str, Any], bytes]]
) -> bytes:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        manifest, state = json.loads(zf.read(MANIFEST)), zf.read(STATE)
    manifest, state = edit(manifest, state)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        zf.writestr(MANIFEST, json.dumps(manifest))
        zf.writestr(STATE, state)
    return out.getvalue()


def _redigest(manifest: dict[str, Any], state: bytes) -> dict[str, Any]:
    import hashlib

    manifest["state"] = {
        "name": STATE,
        "sha256": hashlib.sha256(state).hexdigest(),
        "size": len(state),
    }
    return manifest


class _Shell:
    def __reduce__(self) -> tuple[Any, ...]:
        import os

        return (os.system, ("echo pwned",))


def test_load_verifies_what_it_reads(tmp_path: Path) -> None:
    make, settings = CASES["binary"]
    data = Reference(make(800, 0.0, 1), **settings).to_bytes()
    flipped = _rezip(data, lambda m, s: (m, s[:-40] + bytes(b ^ 1 for b in s[-40:])))
    cases = {
        "damaged": (flipped, "damaged"),
        "not a zip": (b"PK\x03\x04 nothing", "not a livemodel reference"),
        "other format": (_rezip(data, lambda m, s: ({**m, "format": "x"}, s)), "not a livemodel"),
        "newer format": (
            _rezip(data, lambda m, s: ({**m, "format_version": 2}, s)),
            "format 2 is not",
        ),
        "other scikit-learn": (
            _rezip(
                data, lambda m, s: ({**m, "versions": {**m["versions"], "scikit-learn": "0.1"}}, s)
            ),
            "saved with scikit-learn 0.1",
        ),
        "code in the pickle": (
            _rezip(
                data, lambda m, s: (_redigest(m, pickle.dumps(_Shell())), pickle.dumps(_Shell()))
            ),
            "refused",
        ),
        "something else": (
            _rezip(data, lambda m, s: (_redigest(m, pickle.dumps((1, 2))), pickle.dumps((1, 2)))),
            "holds something else",
        ),
    }
    for name, (blob, message) in cases.items():
        with pytest.raises(InvalidInputError, match=message):
            Reference.from_bytes(blob)
        path = tmp_path / f"{name}.lmref"
        path.write_bytes(blob)
        with pytest.raises(InvalidInputError, match=message):
            Reference.load(path)
    with pytest.raises(InvalidInputError, match="cannot read"):
        Reference.load(tmp_path / "absent.lmref")


def test_reference_refuses_bad_settings() -> None:
    frame = _binary(300, 0.0, 1)
    with pytest.raises(InvalidInputError, match="segments must be a sequence"):
        Reference(frame, segments="c")
    with pytest.raises(InvalidInputError, match="no target column"):
        Reference(frame, target="nope")
    with pytest.raises(InvalidInputError, match="must be a DataFrame"):
        Reference(frame.to_numpy())  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="current must be a pandas DataFrame"):
        Reference(frame).compare([1, 2])  # type: ignore[arg-type]


@pytest.fixture
def monitored(model: Any, flights: pd.DataFrame, tmp_path: Path) -> Iterator[dict[str, Any]]:
    db = open_database(f"sqlite:///{tmp_path / 'lm.db'}")
    registry = Registry(MetadataStore(db), ArtifactStore(str(tmp_path / "artifacts")), actor="t")
    register(registry, model, flights)
    frame = flights.iloc[8000:8600]
    times = [DAY0 + timedelta(minutes=5 * i) for i in range(len(frame))]
    write_log(tmp_path / "logs", registry, "flights", frame, times, labelled=0.5)
    monitor = Monitor(registry, LogReader(tmp_path / "logs"), ResultStore(db), concept=None)
    yield {"monitor": monitor, "registry": registry}
    db.close()


def test_the_monitor_fits_one_reference_for_every_window_and_run(
    monitored: dict[str, Any], fits: Counter[str]
) -> None:
    monitor: Monitor = monitored["monitor"]
    for _ in range(2):
        run = monitor.run("flights", since=DAY0, until=DAY0 + timedelta(days=3), window="6h")
        assert len({w.start for w in run.windows}) >= 8
    assert (fits["MonitorSuite"], fits["CBPE"], fits["PCAReconstructionDrift"]) == (1, 1, 1)
    fitted = monitor.fitted_reference("flights", run.version)
    assert isinstance(fitted, Reference) and monitor.fitted_suite("flights", 1) is fitted.suite
    assert fitted.task == "binary" and fitted.settings.prediction == "prediction"
    # the registered reference, fitted, saved and loaded, gives the monitor's results
    loaded = Reference.from_bytes(fitted.to_bytes())
    stored = monitored["registry"].reference(ModelRef("flights", 1))
    window = stored.sample.drop(columns=[fitted.reference.target])
    _same(loaded.compare(window), fitted.compare(window), approximate=True)
    again = Reference.registered(monitored["registry"], "flights@1")
    _same(again.compare(window), fitted.compare(window), approximate=True)
