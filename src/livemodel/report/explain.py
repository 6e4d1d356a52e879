"""Global feature importance: mean |SHAP value| per feature, on the reference and a window.

The explainer follows the model: ``TreeExplainer`` for tree ensembles, ``LinearExplainer``
for linear models (both on the output of a scikit-learn ``Pipeline``'s preprocessing, with
the columns it makes, e.g. one-hot ones, summed back to the raw feature), and a sampled
``KernelExplainer`` on the raw features otherwise. SHAP is optional (``livemodel[explain]``):
without it, or when it fails on a model, the result carries a note instead of numbers.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from livemodel.registry.classmap import unwrap

__all__ = ["Importance", "global_importance"]

FloatArray = npt.NDArray[np.float64]
_TREE_HINTS = ("Tree", "Forest", "Boost", "LGBM", "XGB", "CatBoost")


@dataclass(frozen=True)
class Importance:
    """Mean |SHAP| per feature (None when skipped, with ``note`` saying why)."""

    method: str | None
    features: tuple[str, ...] = ()
    reference: tuple[float, ...] = ()
    current: tuple[float, ...] | None = None
    n_reference: int = 0
    n_current: int = 0
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "features": list(self.features),
            "reference": list(self.reference),
            "current": None if self.current is None else list(self.current),
            "n_reference": self.n_reference,
            "n_current": self.n_current,
            "note": self.note,
        }


def global_importance(
    model: Any,
    features: Sequence[str],
    reference: pd.DataFrame,
    current: pd.DataFrame | None = None,
    *,
    max_rows: int = 200,
    seed: int = 0,
) -> Importance:
    """Mean |SHAP| of every feature on (a sample of) ``reference`` and ``current``."""
    with warnings.catch_warnings():
        # shap's import touches matplotlib colormap APIs that warn about future changes.
        warnings.filterwarnings(
            "ignore",
            message=r"The set_\w+ function will be deprecated",
            category=PendingDeprecationWarning,
        )
        try:
            import shap  # type: ignore[import-untyped]
        except ImportError:
            note = "SHAP is not installed (pip install 'livemodel[explain]'): importance skipped"
            return Importance(None, note=note)
    names = list(features)
    ref = _sample(reference[names], max_rows, seed)
    cur = _sample(current[names], max_rows, seed) if current is not None and len(current) else None
    if ref.empty:
        return Importance(None, note="the reference sample is empty: importance skipped")
    try:
        method, explain = _explainer(shap, model, names, ref, seed)
        ref_imp = explain(ref)
        cur_imp = explain(cur) if cur is not None else None
    except Exception as exc:  # noqa: BLE001 - any failure of a third-party explainer is a note
        return Importance(
            None, note=f"SHAP failed on this model: {type(exc).__name__}: {exc}"[:300]
        )
    return Importance(
        method=method,
        features=tuple(names),
        reference=tuple(float(v) for v in ref_imp),
        current=None if cur_imp is None else tuple(float(v) for v in cur_imp),
        n_reference=len(ref),
        n_current=0 if cur is None else len(cur),
    )


Explain = Callable[[pd.DataFrame], FloatArray]


def _explainer(
    shap: Any, model: Any, names: list[str], background: pd.DataFrame, seed: int
) -> tuple[str, Explain]:
    pre, final = _split(unwrap(model))  # a class-mapped model: the estimator inside
    kind = _kind(final)
    if kind is not None:
        try:
            transformed = _transform(pre, background)
            groups = _groups(pre, names, transformed.shape[1])
        except (AttributeError, ValueError, TypeError):
            groups = None
        if groups is not None:
            if kind == "tree":
                explainer = shap.TreeExplainer(final)
            else:
                explainer = shap.LinearExplainer(final, transformed)

            def explain(frame: pd.DataFrame) -> FloatArray:
                values = _as_3d(explainer.shap_values(_transform(pre, frame)))
                per_feature = np.einsum("rcs,fc->rfs", values, groups)
                return np.asarray(np.abs(per_feature).mean(axis=(0, 2)), dtype=np.float64)

            return f"{kind.capitalize()}Explainer", explain
    return "KernelExplainer (sampled)", _kernel(shap, model, names, background, seed)


def _kernel(
    shap: Any, model: Any, names: list[str], background: pd.DataFrame, seed: int
) -> Explain:
    dtypes = background.dtypes.to_dict()
    predict = getattr(model, "predict_proba", None) or model.predict

    def f(rows: Any) -> FloatArray:
        frame = pd.DataFrame(np.asarray(rows, dtype=object), columns=names).astype(dtypes)
        return np.asarray(predict(frame), dtype=np.float64)

    base = shap.sample(background, min(25, len(background)), random_state=seed)
    explainer = shap.KernelExplainer(f, base, keep_index=False)

    def explain(frame: pd.DataFrame) -> FloatArray:
        rows = frame.iloc[: min(40, len(frame))]
        values = _as_3d(explainer.shap_values(rows, nsamples=2 * len(names) + 64, silent=True))
        return np.asarray(np.abs(values).mean(axis=(0, 2)), dtype=np.float64)

    return explain


def _split(model: Any) -> tuple[Any, Any]:
    """(preprocessing or None, final estimator) of a scikit-learn Pipeline or a model."""
    steps = getattr(model, "steps", None)
    if isinstance(steps, list) and len(steps) > 1:
        return model[:-1], steps[-1][1]
    return None, model


def _kind(estimator: Any) -> str | None:
    module = type(estimator).__module__
    name = type(estimator).__name__
    if module.startswith("sklearn.linear_model") and hasattr(estimator, "coef_"):
        return "linear"
    if any(h in name for h in _TREE_HINTS) and (
        module.startswith(("sklearn.ensemble", "sklearn.tree", "lightgbm", "xgboost"))
    ):
        return "tree"
    return None


def _transform(pre: Any, frame: pd.DataFrame) -> FloatArray:
    out: Any = frame if pre is None else pre.transform(frame)
    if hasattr(out, "toarray"):
        out = out.toarray()
    return np.asarray(out, dtype=np.float64)


def _groups(pre: Any, names: list[str], width: int) -> FloatArray | None:
    """A (features, columns) 0/1 matrix: which transformed column comes from which feature."""
    if pre is None:
        return np.eye(len(names)) if width == len(names) else None
    outputs = [str(n).rsplit("__", 1)[-1] for n in pre.get_feature_names_out()]
    if len(outputs) != width:
        return None
    matrix = np.zeros((len(names), width))
    by_length = sorted(names, key=len, reverse=True)
    for j, out in enumerate(outputs):
        owner = next((f for f in by_length if out == f or out.startswith(f"{f}_")), None)
        if owner is None:
            return None
        matrix[names.index(owner), j] = 1.0
    return matrix


def _as_3d(values: Any) -> FloatArray:
    """SHAP values as (rows, columns, outputs) whatever shape the explainer returned."""
    if isinstance(values, list):
        return np.stack([np.asarray(v, dtype=np.float64) for v in values], axis=2)
    arr = np.asarray(values, dtype=np.float64)
    return arr[:, :, None] if arr.ndim == 2 else arr


def _sample(frame: pd.DataFrame, rows: int, seed: int) -> pd.DataFrame:
    if len(frame) <= rows:
        return frame.reset_index(drop=True)
    return frame.sample(n=rows, random_state=seed).reset_index(drop=True)
