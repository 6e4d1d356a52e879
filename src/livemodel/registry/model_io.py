"""Turning an estimator into artifact bytes and back, and asking it for outputs.

Format: the estimator pickled with joblib (numpy arrays stored efficiently). The bytes are
only unpickled after the artifact store has verified their SHA-256 against the registry,
because unpickling runs code: a tampered file must never get that far.
"""

from __future__ import annotations

import io
import pickle
from typing import Any

import joblib
import numpy as np
import pandas as pd

from livemodel.errors import IntegrityError, ModelError
from livemodel.registry.decision import decide

FORMAT = "joblib-pickle"


def check_model(model: object) -> None:
    """Refuse objects that cannot serve predictions, or estimators that were never fitted."""
    if not callable(getattr(model, "predict", None)):
        raise ModelError(
            f"{type(model).__name__} has no predict() method: register a fitted estimator "
            "with the scikit-learn API (a Pipeline, LightGBM or XGBoost model, ...)"
        )
    if callable(getattr(model, "fit", None)):
        from sklearn.exceptions import NotFittedError
        from sklearn.utils.validation import check_is_fitted

        try:
            check_is_fitted(model)
        except NotFittedError as exc:
            raise ModelError(
                f"{type(model).__name__} is not fitted: fit it before registering"
            ) from exc
        except TypeError:
            pass  # not a scikit-learn estimator; the smoke prediction will tell


def dump_model(model: object) -> bytes:
    buffer = io.BytesIO()
    try:
        joblib.dump(model, buffer)
    except (pickle.PicklingError, TypeError, AttributeError) as exc:
        raise ModelError(f"{type(model).__name__} cannot be serialized: {exc}") from exc
    return buffer.getvalue()


def load_model(data: bytes) -> Any:
    """Unpickle verified bytes."""
    try:
        return joblib.load(io.BytesIO(data))
    except Exception as exc:
        raise IntegrityError(f"the model artifact cannot be deserialized: {exc}") from exc


def predict_outputs(model: Any, features: pd.DataFrame, task: str | None) -> pd.DataFrame:
    """Model outputs as columns: ``prediction`` (the model's own ``predict``) and, for
    classifiers with ``predict_proba``, ``proba_<class>``."""
    try:
        with_proba = task in ("binary", "multiclass") and callable(
            getattr(model, "predict_proba", None)
        )
        prediction, proba = decide(model, features, proba=with_proba)
        out = pd.DataFrame({"prediction": prediction.ravel()}, index=features.index)
        if proba is not None:
            proba = np.asarray(proba, dtype="float64")
            classes = list(getattr(model, "classes_", range(proba.shape[1])))
            for i, cls in enumerate(classes):
                out[f"proba_{cls}"] = proba[:, i]
    except Exception as exc:
        raise ModelError(
            f"{type(model).__name__} failed to predict: {type(exc).__name__}: {exc}"
        ) from exc
    if len(out) != len(features):
        raise ModelError(
            f"{type(model).__name__} returned {len(out)} predictions for {len(features)} rows"
        )
    return out
