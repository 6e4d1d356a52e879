"""Asking a model for its decision and its probabilities.

The label livemodel serves, logs, scores in batch, gates and replays is the one the model's
own ``predict`` returns; probabilities come from ``predict_proba``. The two can disagree:
``FixedThresholdClassifier(threshold=0.8)``, ``TunedThresholdClassifierCV`` or any
cost-sensitive wrapper decides at its own threshold, so the class of highest probability
is *not* the model's decision.

Calling both methods costs up to twice one call, so two cases are computed in one pass, by
the same code the library runs in ``predict``, so the answer cannot differ:

* a plain scikit-learn ``Pipeline`` (no metadata routing): its transformers run once, then
  the final step's ``predict`` and ``predict_proba`` run on their output, which is what
  ``Pipeline.predict`` and ``Pipeline.predict_proba`` each do;
* a final step whose class takes ``predict`` and ``predict_proba`` unchanged from
  scikit-learn's forests (``RandomForestClassifier``, ``ExtraTreesClassifier``) or
  LightGBM's ``LGBMClassifier`` (built-in objective), whose ``predict`` is
  ``classes_[argmax(predict_proba(X))]``: the label is taken from the probabilities already
  computed. A subclass overriding either method is called as is.

Measured (``benchmarks/decision_cost.py``): see the module of that benchmark.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

from livemodel.registry.classmap import ClassMapped

__all__ = ["decide"]


def decide(model: Any, features: Any, *, proba: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """``(model.predict(features), model.predict_proba(features) if proba else None)``.

    Exactly those two answers (see the module docstring for how they share work).
    """
    if isinstance(model, ClassMapped):  # its predict and predict_proba, sharing the work
        labels, probabilities = decide(model.estimator, features, proba=proba)
        return model.rename(labels), None if probabilities is None else model.reorder(probabilities)
    if not proba:
        return np.asarray(model.predict(features)), None
    final, inputs = _through_pipeline(model, features)
    probabilities = np.asarray(final.predict_proba(inputs))
    if _predict_is_argmax(final) and probabilities.ndim == 2:
        labels = np.asarray(final.classes_).take(np.argmax(probabilities, axis=1), axis=0)
    else:
        labels = np.asarray(final.predict(inputs))
    return labels, probabilities


def _through_pipeline(model: Any, features: Any) -> tuple[Any, Any]:
    """The final estimator of nested plain Pipelines and what it is given, else as is."""
    from sklearn import get_config
    from sklearn.pipeline import Pipeline

    if get_config().get("enable_metadata_routing", False):
        return model, features
    while type(model) is Pipeline:
        *transformers, (_, final) = model.steps
        if not _has_proba(final):
            break
        for _, step in transformers:
            if step is None or (isinstance(step, str) and step == "passthrough"):
                continue
            features = step.transform(features)
        model = final
    return model, features


def _has_proba(model: Any) -> bool:
    return callable(getattr(model, "predict_proba", None)) and callable(
        getattr(model, "predict", None)
    )


def _predict_is_argmax(model: Any) -> bool:
    """Is ``model.predict`` code that returns ``classes_[argmax(predict_proba(X))]``?"""
    from sklearn.ensemble import RandomForestClassifier

    kind = type(model)
    if (
        getattr(kind, "predict", None) is RandomForestClassifier.predict
        and getattr(kind, "predict_proba", None) is RandomForestClassifier.predict_proba
    ):
        return getattr(model, "n_outputs_", None) == 1
    lightgbm = sys.modules.get("lightgbm")  # only a LightGBM model needs it imported
    classifier = getattr(lightgbm, "LGBMClassifier", None)
    if (
        classifier is not None
        and getattr(kind, "predict", None) is classifier.predict
        and getattr(kind, "predict_proba", None) is classifier.predict_proba
    ):
        # LGBMClassifier.predict: argmax of predict_proba, decoded by the label encoder
        # whose classes are classes_, unless the objective is a callable (raw scores).
        return not callable(getattr(model, "objective_", None))
    return False
