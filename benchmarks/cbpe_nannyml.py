"""livemodel's CBPE against NannyML's on a model that decides at 0.8 (a real data set).

Run from the repository root::

    .venv/bin/python benchmarks/cbpe_nannyml.py

The case (:func:`build_case`) is scikit-learn's bundled breast-cancer data set: a
``FixedThresholdClassifier(threshold=0.8)`` around a scaled logistic regression on two
features (mean texture, mean smoothness), trained on 170 rows; 199 labelled rows are the
reference; the last 200 rows, in their random order, are four analysis chunks of 50. The
logged decision is ``model.predict``: 30% of rows are positive, where a 0.5 threshold would
call 73% positive. ``as_if_0.5`` records what an estimate deciding at 0.5 (livemodel
before it took the logged decisions) would have said.

NannyML 0.13.1 runs in its own virtual environment, ``benchmarks/.venvs/nannyml`` (created
on first use by ``benchmarks/driftbench/venvs.py``; ``NML_DISABLE_USAGE_LOGGING=1``). This
script builds the case in the project's environment, hands the model outputs to NannyML's
``CBPE`` in a child process (this same file with ``--peer``), and writes NannyML's per-chunk
estimates and sampling errors, the realized values and livemodel's estimates to
``tests/stats/data/nannyml_cbpe_threshold.json``; ``tests/stats/test_cbpe_nannyml.py``
recomputes livemodel's side and compares.

A multiclass case (:func:`build_multiclass_case`: digits 3, 5 and 8, decided by a cost rule)
goes the same way into ``tests/stats/data/nannyml_cbpe_multiclass.json``, with NannyML's
per-class calibration choice (which the test gives livemodel).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "tests" / "stats" / "data" / "nannyml_cbpe_threshold.json"
FEATURES = ("mean texture", "mean smoothness")
THRESHOLD = 0.8
CHUNK = 50
METRICS = ("roc_auc", "accuracy", "precision", "recall", "f1")
CELLS = ("true_positive", "false_positive", "false_negative", "true_negative")
MULTICLASS = (3, 5, 8)
COSTS = (1.0, 1.0, 2.0)
MULTICLASS_CHUNK = 60
OUT_MULTICLASS = ROOT / "tests" / "stats" / "data" / "nannyml_cbpe_multiclass.json"


def build_case() -> dict[str, Any]:
    """Reference and analysis outputs of a model deciding at 0.8 (plain lists, JSON-ready)."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import FixedThresholdClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    data = load_breast_cancer(as_frame=True)
    x, y = data.data, data.target.to_numpy()
    order = np.random.default_rng(0).permutation(len(y))
    train, reference, analysis = order[:170], order[170:369], order[369:]
    model = FixedThresholdClassifier(
        make_pipeline(StandardScaler(), LogisticRegression()), threshold=THRESHOLD
    ).fit(x.iloc[train][list(FEATURES)], y[train])

    def outputs(rows: np.ndarray) -> dict[str, list[Any]]:
        frame = x.iloc[rows][list(FEATURES)]
        return {
            "y": [int(v) for v in y[rows]],
            "p": [float(v) for v in model.predict_proba(frame)[:, 1]],
            "pred": [int(v) for v in model.predict(frame)],
        }

    return {"reference": outputs(reference), "analysis": outputs(analysis)}


def build_multiclass_case() -> dict[str, Any]:
    """Digits 3, 5 and 8 of scikit-learn's bundled digits, a logistic regression on the
    image's middle row of pixels, deciding by a cost rule (missing an 8 costs twice):
    ``argmax(p * [1, 1, 2])``, which differs from the argmax on 7% of rows."""
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression

    digits = load_digits()
    keep = np.isin(digits.target, MULTICLASS)
    x, y = digits.data[keep][:, 32:40], digits.target[keep]
    order = np.random.default_rng(0).permutation(len(y))
    train, reference, analysis = order[:180], order[180:360], order[360:]
    model = LogisticRegression(max_iter=1000).fit(x[train], y[train])

    def outputs(rows: np.ndarray) -> dict[str, list[Any]]:
        proba = model.predict_proba(x[rows])
        decided = model.classes_[(proba * np.array(COSTS)).argmax(axis=1)]
        out: dict[str, list[Any]] = {
            "y": [int(v) for v in y[rows]], "pred": [int(v) for v in decided]
        }  # fmt: skip
        for i, c in enumerate(model.classes_):
            out[f"p{c}"] = [float(v) for v in proba[:, i]]
        return out

    return {"reference": outputs(reference), "analysis": outputs(analysis)}


def fingerprint(case: dict[str, Any]) -> str:
    """SHA-256 of the case's outputs rounded to 12 digits (stable across BLAS builds)."""
    parts = []
    for period in ("reference", "analysis"):
        part = case[period]
        for key in sorted(part):
            parts.append([round(v, 12) if isinstance(v, float) else v for v in part[key]])
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()


def peer() -> None:
    """In NannyML's venv: read the case on stdin, print NannyML's CBPE chunk results."""
    import nannyml as nml  # type: ignore[import-not-found]
    import pandas as pd

    case = json.load(sys.stdin)
    reference = pd.DataFrame(case["reference"])
    analysis = pd.DataFrame(case["analysis"]).drop(columns=["y"])
    if "--multiclass" in sys.argv:
        _peer_multiclass(nml, reference, analysis)
        return
    estimator = nml.CBPE(
        y_pred_proba="p", y_pred="pred", y_true="y", problem_type="classification_binary",
        metrics=[*METRICS, "confusion_matrix"], chunk_size=CHUNK,
        normalize_confusion_matrix=None,
    )  # fmt: skip
    estimator.fit(reference)
    frame = estimator.estimate(analysis).filter(period="analysis").to_df()
    chunks = []
    for _, row in frame.iterrows():
        out: dict[str, Any] = {
            "start": int(row[("chunk", "start_index")]),
            "end": int(row[("chunk", "end_index")]),
        }
        for metric in (*METRICS, *CELLS):
            out[metric] = {
                "value": float(row[(metric, "value")]),
                "sampling_error": float(row[(metric, "sampling_error")]),
                "lower": float(row[(metric, "lower_confidence_boundary")]),
                "upper": float(row[(metric, "upper_confidence_boundary")]),
            }
        chunks.append(out)
    json.dump(
        {"version": nml.__version__, "needs_calibration": bool(estimator.needs_calibration),
         "chunks": chunks},
        sys.stdout,
    )  # fmt: skip


def _peer_multiclass(nml: Any, reference: Any, analysis: Any) -> None:
    columns = {c: f"p{c}" for c in MULTICLASS}
    estimator = nml.CBPE(
        y_pred_proba=columns, y_pred="pred", y_true="y", metrics=list(METRICS),
        problem_type="classification_multiclass", chunk_size=MULTICLASS_CHUNK,
    )  # fmt: skip
    estimator.fit(reference)
    frame = estimator.estimate(analysis).filter(period="analysis").to_df()
    chunks = []
    for _, row in frame.iterrows():
        out: dict[str, Any] = {
            "start": int(row[("chunk", "start_index")]),
            "end": int(row[("chunk", "end_index")]),
        }
        for metric in METRICS:
            out[metric] = {
                "value": float(row[(metric, "value")]),
                "sampling_error": float(row[(metric, "sampling_error")]),
            }
        chunks.append(out)
    calibrated = {
        str(c): type(estimator._calibrators[c]).__name__ != "NoopCalibrator" for c in MULTICLASS
    }
    json.dump({"version": nml.__version__, "calibrated": calibrated, "chunks": chunks}, sys.stdout)


def realized(part: dict[str, list[Any]]) -> dict[str, float]:
    from sklearn import metrics as skm

    y, p, pred = np.asarray(part["y"]), np.asarray(part["p"]), np.asarray(part["pred"])
    out = {
        "roc_auc": skm.roc_auc_score(y, p),
        "accuracy": skm.accuracy_score(y, pred),
        "precision": skm.precision_score(y, pred, zero_division=np.nan),
        "recall": skm.recall_score(y, pred),
        "f1": skm.f1_score(y, pred),
    }
    return {k: float(v) for k, v in out.items()}


def _mean_gap(values: list[Any], rows: list[dict[str, Any]], metric: str) -> float:
    gaps = [
        np.nan if v is None else abs(v - r["realized"][metric])
        for v, r in zip(values, rows, strict=True)
    ]
    return float(np.nanmean(np.asarray(gaps, dtype=float)))


def main() -> None:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from driftbench import venvs  # type: ignore[import-not-found, unused-ignore]

    from livemodel.stats.cbpe import CBPE

    python = venvs.ensure(ROOT / "benchmarks" / ".venvs", venvs.PEERS["nannyml"])
    case = build_case()
    env = {"NML_DISABLE_USAGE_LOGGING": "1", "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [str(python), __file__, "--peer"], input=json.dumps(case), capture_output=True,
        text=True, env=env, check=True,
    )  # fmt: skip
    nannyml = json.loads(done.stdout)
    ref = case["reference"]
    cbpe = CBPE(calibration="always" if nannyml["needs_calibration"] else None)
    cbpe.fit(ref["y"], ref["p"])
    own_check = bool(CBPE().fit(ref["y"], ref["p"]).calibrators_)
    rows = []
    for chunk in nannyml["chunks"]:
        sl = slice(chunk["start"], chunk["end"] + 1)
        part = {k: v[sl] for k, v in case["analysis"].items()}
        est = cbpe.estimate(part["p"], part["pred"])
        cm = cbpe.estimate_confusion(part["p"], part["pred"]).counts
        livemodel = {m: est[m].value for m in METRICS} | {
            "true_positive": cm[1, 1], "false_positive": cm[0, 1],
            "false_negative": cm[1, 0], "true_negative": cm[0, 0],
        }  # fmt: skip
        at_half = cbpe.estimate(part["p"], np.asarray(part["p"]) >= 0.5)
        rows.append(
            chunk
            | {"realized": realized(part), "livemodel": livemodel,
               "livemodel_std_error": {m: est[m].std_error for m in METRICS},
               "as_if_0.5": {m: at_half[m].value for m in METRICS}}
        )  # fmt: skip
    summary = {
        metric: {
            "nannyml": _mean_gap([r[metric]["value"] for r in rows], rows, metric),
            "livemodel": _mean_gap([r["livemodel"][metric] for r in rows], rows, metric),
            "as_if_0.5": _mean_gap([r["as_if_0.5"][metric] for r in rows], rows, metric),
        }
        for metric in METRICS
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(
        json.dumps(
            {
                "generated_by": "benchmarks/cbpe_nannyml.py",
                "peer": f"nannyml {nannyml['version']}",
                "case": {"data": "sklearn.datasets.load_breast_cancer", "features": FEATURES,
                         "threshold": THRESHOLD, "chunk_size": CHUNK,
                         "fingerprint": fingerprint(case)},
                "inputs": case,
                "nannyml_needs_calibration": nannyml["needs_calibration"],
                "livemodel_own_check_calibrates": own_check,
                "mean_abs_error_vs_realized": summary,
                "chunks": rows,
            },
            indent=1,
        )
        + "\n"
    )  # fmt: skip
    print(json.dumps(summary, indent=1))
    print(f"wrote {OUT.relative_to(ROOT)}")
    multiclass(python, env)


def multiclass(python: Path, env: dict[str, str]) -> None:
    """The multiclass case: NannyML's per-class calibration choice is copied (see the test)."""
    from sklearn import metrics as skm

    case = build_multiclass_case()
    done = subprocess.run(
        [str(python), __file__, "--peer", "--multiclass"], input=json.dumps(case),
        capture_output=True, text=True, env=env, check=True,
    )  # fmt: skip
    nannyml = json.loads(done.stdout)
    rows = []
    for chunk in nannyml["chunks"]:
        sl = slice(chunk["start"], chunk["end"] + 1)
        y = np.asarray(case["analysis"]["y"][sl])
        pred = np.asarray(case["analysis"]["pred"][sl])
        proba = np.column_stack([case["analysis"][f"p{c}"][sl] for c in MULTICLASS])
        kw: dict[str, Any] = {"average": "macro", "labels": list(MULTICLASS)}
        chunk["realized"] = {
            "accuracy": float(skm.accuracy_score(y, pred)),
            "precision": float(skm.precision_score(y, pred, **kw, zero_division=np.nan)),
            "recall": float(skm.recall_score(y, pred, **kw)),
            "f1": float(skm.f1_score(y, pred, **kw)),
            "roc_auc": float(skm.roc_auc_score(y, proba, multi_class="ovr", **kw)),
        }
        rows.append(chunk)
    OUT_MULTICLASS.write_text(
        json.dumps(
            {"generated_by": "benchmarks/cbpe_nannyml.py", "peer": f"nannyml {nannyml['version']}",
             "case": {"data": "sklearn.datasets.load_digits (3, 5, 8; pixels 32-39)",
                      "costs": COSTS, "chunk_size": MULTICLASS_CHUNK,
                      "fingerprint": fingerprint(case)},
             "inputs": case, "nannyml_calibrated": nannyml["calibrated"], "chunks": rows},
        )
        + "\n"
    )  # fmt: skip
    print(f"wrote {OUT_MULTICLASS.relative_to(ROOT)}")


if __name__ == "__main__":
    if "--peer" in sys.argv:
        peer()
    else:
        os.environ.setdefault("OMP_NUM_THREADS", "1")
        main()
