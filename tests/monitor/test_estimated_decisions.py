"""The monitor estimates performance from the logged decisions (issue 12 item 2).

``compare()`` and a fitted :class:`~livemodel.Reference` hand the window's prediction column
to CBPE as the model's decisions: for a model deciding at 0.8, or a multiclass cost rule
that is not the argmax, the estimate equals CBPE's closed form on those decisions and not
what a 0.5 threshold (or the argmax) would give.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from livemodel.monitor import compare
from livemodel.stats.cbpe import CBPE


def binary(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    p = 1 / (1 + np.exp(-(1.5 * x1 - x2)))
    label = np.where(rng.random(n) < p, "yes", "no")
    return pd.DataFrame(
        {"x1": x1, "x2": x2, "y": label, "pred": np.where(p >= 0.8, "yes", "no"),
         "p_no": 1 - p, "p_yes": p}
    )  # fmt: skip


def test_binary_estimate_uses_the_logged_decisions_at_08() -> None:
    ref, current = binary(3000, 0), binary(1500, 1)
    probability = {"no": "p_no", "yes": "p_yes"}
    report = compare(ref, current.drop(columns=["y"]), target="y", prediction="pred",
                     probability=probability, multivariate=False)  # fmt: skip
    cbpe = CBPE().fit(ref["y"], ref[["p_no", "p_yes"]], classes=["no", "yes"])
    direct = cbpe.estimate(current[["p_no", "p_yes"]], current["pred"])
    q = cbpe.calibrate(current[["p_no", "p_yes"]])[:, 1]
    decided = (current["pred"] == "yes").to_numpy()
    for metric in ("accuracy", "precision", "recall", "f1", "roc_auc"):
        assert report.performance[metric].value == pytest.approx(direct[metric].value)
    accuracy = report.performance["accuracy"].value
    assert accuracy == pytest.approx(np.where(decided, q, 1 - q).mean())
    half = cbpe.estimate(current[["p_no", "p_yes"]], np.where(q >= 0.5, "yes", "no"))
    assert abs(accuracy - half["accuracy"].value) > 0.05  # type: ignore[operator]


def test_multiclass_estimate_uses_a_decision_rule_that_is_not_the_argmax() -> None:
    rng = np.random.default_rng(3)

    def frame(n: int) -> pd.DataFrame:
        q = rng.dirichlet(np.ones(3) * 2, size=n)
        y = (rng.random((n, 1)) > q.cumsum(axis=1)).sum(axis=1)
        decided = np.where(q[:, 2] > 0.5, 2, q[:, :2].argmax(axis=1))
        return pd.DataFrame(
            {"x": rng.normal(size=n), "y": y, "pred": decided,
             "p0": q[:, 0], "p1": q[:, 1], "p2": q[:, 2]}
        )  # fmt: skip

    ref, current = frame(3000), frame(1200)
    columns = {0: "p0", 1: "p1", 2: "p2"}
    report = compare(ref, current.drop(columns=["y"]), target="y", prediction="pred",
                     probability=columns, multivariate=False)  # fmt: skip
    proba = current[["p0", "p1", "p2"]].to_numpy()
    cbpe = CBPE("multiclass").fit(ref["y"], ref[["p0", "p1", "p2"]], classes=[0, 1, 2])
    q = cbpe.calibrate(proba)
    decided = current["pred"].to_numpy()
    assert report.performance["accuracy"].value == pytest.approx(
        q[np.arange(len(decided)), decided].mean()
    )
    argmax = cbpe.estimate(proba, proba.argmax(axis=1))["accuracy"].value
    assert abs(report.performance["accuracy"].value - argmax) > 0.01  # type: ignore[operator]
