"""The benchmark's models, built once and seeded: a LogisticRegression and a 100-tree forest."""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression

N_FEATURES = 10
N_ROWS = 5_000
TARGET = "y"


@dataclass(frozen=True)
class BenchModels:
    """Where the pickles are, the training frame, and one record to send."""

    directory: Path
    paths: dict[str, Path]
    train: pd.DataFrame
    record: dict[str, float]

    @property
    def features(self) -> list[str]:
        return [c for c in self.train.columns if c != TARGET]


def make_frame(seed: int) -> pd.DataFrame:
    """A numeric frame: 10 float features with named columns and a binary target."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(N_ROWS, N_FEATURES))
    weights = rng.normal(size=N_FEATURES)
    logits = x @ weights + 0.5 * rng.normal(size=N_ROWS)
    frame = pd.DataFrame(x, columns=[f"f{i}" for i in range(N_FEATURES)])
    frame[TARGET] = (logits > 0).astype(np.int64)
    return frame


def build_models(directory: Path, seed: int = 7) -> BenchModels:
    """Fit both models on the same frame and pickle them as ``bench_lr.pkl`` / ``bench_rf.pkl``."""
    directory.mkdir(parents=True, exist_ok=True)
    train = make_frame(seed)
    x, y = train.drop(columns=TARGET), train[TARGET]
    fitted = {
        "bench_lr": LogisticRegression(max_iter=1_000).fit(x, y),
        "bench_rf": RandomForestClassifier(n_estimators=100, random_state=seed).fit(x, y),
    }
    paths = {}
    for name, model in fitted.items():
        path = directory / f"{name}.pkl"
        with path.open("wb") as handle:
            pickle.dump(model, handle, protocol=pickle.HIGHEST_PROTOCOL)
        paths[name] = path
    # Round to keep the request small and identical for every server.
    record = {str(k): round(float(v), 6) for k, v in x.iloc[0].items()}
    return BenchModels(directory=directory, paths=paths, train=train, record=record)
