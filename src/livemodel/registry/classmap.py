"""A classifier's classes against its target's values, and the mapping a user states.

A version answers, logs and takes feedback in the classes of its target column, so at
registration the model's ``classes_`` must be the target's values. A model fitted on other
labels (``0``/``1`` for a target ``no``/``yes``) is registered with a ``class_map`` from the
model's classes to the target's values (``{0: "no", 1: "yes"}``; on the command line
``--class-map 0=no,1=yes``): the stored artifact is the model wrapped in :class:`ClassMapped`,
which answers in the target's values wherever it is loaded. Classes compare by JSON value,
as feedback does: ``1`` and ``1.0`` match, ``True`` and ``1`` do not, ``"1"`` and ``1`` do not.
A key or value of the map given as text also matches a class whose text it is, so the
command line's ``0=no`` maps the integer class ``0``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from livemodel.errors import InvalidInputError, ModelError

__all__ = [
    "ClassMapped",
    "ClassMappedProba",
    "check_classes",
    "class_key",
    "fitted_classes",
    "inherited_class_map",
    "map_classes",
    "unwrap",
]

_SHOWN = 10


def class_key(value: Any) -> tuple[str, Any]:
    """What two classes compare by (numpy scalars as Python scalars)."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, int | float):
        return ("number", float(value))
    return (type(value).__name__, value if isinstance(value, str) else repr(value))


class ClassMapped:
    """``estimator`` answering in other class labels: its class ``k`` is ``class_map[k]``.

    ``classes_`` are the mapped labels in sorted order, as scikit-learn orders classes. A
    model with ``predict_proba`` is wrapped in :class:`ClassMappedProba`.
    """

    def __init__(self, estimator: Any, class_map: Mapping[Any, Any]) -> None:
        self.estimator = estimator
        self.class_map = dict(class_map)
        inner = [_plain(c) for c in estimator.classes_]
        mapped = [self.class_map[c] for c in inner]
        order = sorted(range(len(mapped)), key=lambda i: class_key(mapped[i]))
        self.classes_ = np.asarray([mapped[i] for i in order], dtype=_dtype(mapped))
        self.column_order_ = np.asarray(order, dtype=np.intp)

    def __sklearn_is_fitted__(self) -> bool:
        return True

    def rename(self, labels: Any) -> np.ndarray:
        """The model's labels as the target's values."""
        keys = {class_key(k): v for k, v in self.class_map.items()}
        try:
            out = [keys[class_key(label)] for label in np.asarray(labels).ravel().tolist()]
        except KeyError as exc:
            raise ValueError(
                f"the model predicted {exc.args[0][1]!r}, not in its class_map"
            ) from exc
        return np.asarray(out, dtype=self.classes_.dtype)

    def reorder(self, proba: Any) -> np.ndarray:
        """``predict_proba`` columns of the model in the order of ``classes_``."""
        return np.asarray(proba)[:, self.column_order_]

    def predict(self, features: Any) -> np.ndarray:
        return self.rename(self.estimator.predict(features))


class ClassMappedProba(ClassMapped):
    """:class:`ClassMapped` for a model with ``predict_proba``."""

    def predict_proba(self, features: Any) -> np.ndarray:
        return self.reorder(self.estimator.predict_proba(features))


def unwrap(model: Any) -> Any:
    """The user's estimator inside a :class:`ClassMapped`, else ``model``."""
    return model.estimator if isinstance(model, ClassMapped) else model


def map_classes(model: Any, class_map: Mapping[Any, Any], target_classes: Sequence[Any]) -> Any:
    """``model`` wrapped so that it answers in ``target_classes``; a clear error where the
    map does not take every class of the model to a distinct value of the target."""
    if not isinstance(class_map, Mapping) or not class_map:
        raise InvalidInputError("class_map must map each class of the model to a target value")
    if getattr(model, "classes_", None) is None:
        raise InvalidInputError("class_map needs a classifier with classes_ (fitted)")
    model_classes = fitted_classes(model)
    resolved: dict[Any, Any] = {}
    for key, value in class_map.items():
        source = _match(key, model_classes, "a class of the model", model_classes)
        resolved[source] = _match(value, target_classes, "a value of the target", target_classes)
    unmapped = [c for c in model_classes if c not in resolved]
    if unmapped:
        raise InvalidInputError(
            f"class_map does not map the model's classes {_show(unmapped)} "
            f"(the model's classes are {_show(model_classes)})"
        )
    resolved = {c: resolved[c] for c in model_classes}  # in the model's order
    if len({class_key(v) for v in resolved.values()}) != len(resolved):
        raise InvalidInputError(f"class_map maps two classes to one value: {resolved}")
    wrapper = ClassMappedProba if callable(getattr(model, "predict_proba", None)) else ClassMapped
    return wrapper(model, resolved)


def inherited_class_map(parent: Any, model: Any, target_classes: Sequence[Any]) -> Any:
    """The parent version's ``class_map`` (its lineage's pairs) for a retrained ``model``
    whose classes are the map's keys rather than the target's values; else None."""
    if not isinstance(parent, list) or getattr(model, "classes_", None) is None:
        return None
    pairs = [p for p in parent if isinstance(p, list) and len(p) == 2]
    have = {class_key(c) for c in fitted_classes(model)}
    if have == {class_key(c) for c in target_classes}:
        return None
    if have != {class_key(k) for k, _ in pairs}:
        return None
    return {k: v for k, v in pairs}


def check_classes(
    model: Any, target: str, target_classes: Sequence[Any], predicted: Iterable[Any]
) -> None:
    """Refuse a model whose classes (``classes_``, else the labels it ``predicted`` on the
    reference sample) are not the values of the target column."""
    wanted = {class_key(c) for c in target_classes}
    values = _show(list(target_classes))
    if getattr(model, "classes_", None) is not None:
        have = fitted_classes(model)
        if {class_key(c) for c in have} == wanted:
            return
        problem = f"the model's classes {_show(have)} are not the values of target {target!r}"
    else:
        have = sorted({_plain(v) for v in predicted}, key=class_key)
        if {class_key(c) for c in have} <= wanted:
            return
        problem = f"the model predicts {_show(have)}, but target {target!r} holds"
    hint = ""
    if len(have) == len(target_classes):
        pairs = ",".join(f"{a}={b}" for a, b in zip(have, target_classes, strict=True))
        hint = f", or map them with class_map (e.g. CLI --class-map {pairs})"
    raise InvalidInputError(f"{problem} {values}: fit the model on that column{hint}")


def fitted_classes(model: Any) -> list[Any]:
    """``model.classes_`` as a list of Python scalars; a clear error if it is not one."""
    try:
        classes = [_plain(c) for c in np.asarray(model.classes_, dtype=object).ravel()]
        for c in classes:
            hash(c)
    except (TypeError, ValueError) as exc:
        raise ModelError(f"{type(model).__name__}.classes_ is not a list of class labels") from exc
    return classes


def _match(value: Any, classes: Sequence[Any], what: str, shown: Sequence[Any]) -> Any:
    exact = [c for c in classes if class_key(c) == class_key(value)]
    if not exact and isinstance(value, str):
        exact = [c for c in classes if str(c) == value]
    if len(exact) != 1:
        raise InvalidInputError(f"class_map: {value!r} is not {what} {_show(list(shown))}")
    return exact[0]


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _dtype(values: list[Any]) -> Any:
    if all(isinstance(v, bool) for v in values):
        return bool
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return np.int64
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        return np.float64
    return object


def _show(values: Sequence[Any]) -> str:
    head = [repr(v) for v in values[:_SHOWN]]
    more = f", ... ({len(values)} in all)" if len(values) > _SHOWN else ""
    return "[" + ", ".join(head) + more + "]"
