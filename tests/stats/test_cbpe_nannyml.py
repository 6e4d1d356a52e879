"""livemodel's CBPE equals NannyML's on a model deciding at 0.8 (scikit-learn's breast cancer)
and on a multiclass model deciding by a cost rule (scikit-learn's digits 3, 5 and 8).

The peer's numbers come from ``benchmarks/cbpe_nannyml.py`` (NannyML 0.13.1 in its own venv),
stored with the model outputs they were computed on in ``data/nannyml_cbpe_threshold.json``.
Stated tolerances: accuracy, precision, recall, F1 and the confusion counts to 1e-9 (the
same sums in another order); ROC AUC to 1e-6 (NannyML integrates its expected ROC curve by
the trapezoid rule over thresholds, livemodel over distinct scores). NannyML chooses
calibration per class; the multiclass test gives livemodel the same choice.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from benchmarks.cbpe_nannyml import build_case, build_multiclass_case

from livemodel.stats.cbpe import CBPE

DATA = json.loads((Path(__file__).parent / "data" / "nannyml_cbpe_threshold.json").read_text())
MULTI = json.loads((Path(__file__).parent / "data" / "nannyml_cbpe_multiclass.json").read_text())
CLASSES = [3, 5, 8]
DECISION_METRICS = ("accuracy", "precision", "recall", "f1")
CELLS = {"true_positive": (1, 1), "false_positive": (0, 1),
         "false_negative": (1, 0), "true_negative": (0, 0)}  # fmt: skip


def _fitted() -> CBPE:
    ref = DATA["inputs"]["reference"]
    # the same calibration NannyML chose, so the two estimators see the same probabilities
    if DATA["nannyml_needs_calibration"]:
        return CBPE(calibration="always").fit(ref["y"], ref["p"])
    return CBPE(calibration=None).fit(ref["y"], ref["p"])


def _chunk(chunk: dict[str, Any]) -> dict[str, list[Any]]:
    rows = slice(chunk["start"], chunk["end"] + 1)
    return {k: v[rows] for k, v in DATA["inputs"]["analysis"].items()}


def test_the_stored_inputs_are_the_bundled_data_sets_model_outputs() -> None:
    case = build_case()
    for period in ("reference", "analysis"):
        stored, now = DATA["inputs"][period], case[period]
        assert now["y"] == stored["y"] and now["pred"] == stored["pred"]
        assert np.allclose(now["p"], stored["p"], rtol=0, atol=1e-9)
    analysis = case["analysis"]
    # the model decides at 0.8, not 0.5
    decided = np.asarray(analysis["pred"])
    assert np.array_equal(decided, np.asarray(analysis["p"]) >= 0.8)
    assert (decided != (np.asarray(analysis["p"]) >= 0.5)).mean() > 0.3


@pytest.mark.parametrize("index", range(len(DATA["chunks"])))
def test_estimates_equal_nannymls(index: int) -> None:
    chunk = DATA["chunks"][index]
    part = _chunk(chunk)
    cbpe = _fitted()
    est = cbpe.estimate(part["p"], part["pred"])
    for metric in DECISION_METRICS:
        assert est[metric].value == pytest.approx(chunk[metric]["value"], abs=1e-9), metric
    assert est["roc_auc"].value == pytest.approx(chunk["roc_auc"]["value"], abs=1e-6)
    confusion = cbpe.estimate_confusion(part["p"], part["pred"])
    assert confusion.classes == (0, 1)
    for cell, (true, decided) in CELLS.items():
        assert confusion.counts[true, decided] == pytest.approx(chunk[cell]["value"], abs=1e-9)
    assert confusion.counts.sum() == pytest.approx(len(part["p"]))


def test_taking_the_decisions_beats_assuming_half() -> None:
    """On these chunks a 0.5 threshold misses realized accuracy by 0.10 on average, the
    logged decisions by 0.03 (as NannyML)."""
    cbpe = _fitted()
    gaps: dict[str, list[float]] = {"decisions": [], "half": []}
    for chunk in DATA["chunks"]:
        part = _chunk(chunk)
        realized = chunk["realized"]["accuracy"]
        for name, decided in (("decisions", part["pred"]), ("half", np.asarray(part["p"]) >= 0.5)):
            value = cbpe.estimate(part["p"], decided)["accuracy"].value
            assert value is not None
            gaps[name].append(abs(value - realized))
    assert np.mean(gaps["decisions"]) < 0.05
    assert np.mean(gaps["half"]) > 0.08


def _proba(part: dict[str, list[Any]]) -> np.ndarray:
    return np.column_stack([part[f"p{c}"] for c in CLASSES])


def test_multiclass_inputs_are_the_bundled_data_sets_model_outputs() -> None:
    case = build_multiclass_case()
    for period in ("reference", "analysis"):
        stored, now = MULTI["inputs"][period], case[period]
        assert now["y"] == stored["y"] and now["pred"] == stored["pred"]
        assert np.allclose(_proba(now), _proba(stored), rtol=0, atol=1e-9)
    analysis = case["analysis"]
    argmax = np.asarray(CLASSES)[_proba(analysis).argmax(axis=1)]
    assert (argmax != np.asarray(analysis["pred"])).mean() > 0.05  # the rule is not the argmax


def test_multiclass_estimates_equal_nannymls() -> None:
    ref = MULTI["inputs"]["reference"]
    cbpe = CBPE("multiclass", calibration="always").fit(ref["y"], _proba(ref), classes=CLASSES)
    chosen = MULTI["nannyml_calibrated"]  # NannyML calibrated 5 and 8, not 3
    cbpe.calibrators_ = {i: iso for i, iso in cbpe.calibrators_.items() if chosen[str(CLASSES[i])]}
    for chunk in MULTI["chunks"]:
        rows = slice(chunk["start"], chunk["end"] + 1)
        part = {k: v[rows] for k, v in MULTI["inputs"]["analysis"].items()}
        est = cbpe.estimate(_proba(part), part["pred"])
        for metric in DECISION_METRICS:
            assert est[metric].value == pytest.approx(chunk[metric]["value"], abs=1e-9), metric
        assert est["roc_auc"].value == pytest.approx(chunk["roc_auc"]["value"], abs=1e-6)
