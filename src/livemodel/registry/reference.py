"""The reference a version is monitored against: a profile of its training frame and a
bounded sample (with target and model outputs) for methods that need rows, such as CBPE.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import pandas as pd

from livemodel.errors import IntegrityError
from livemodel.registry.model_io import predict_outputs
from livemodel.schema.signature import Signature
from livemodel.stats.profile import Profile, ProfileSpec
from livemodel.store.artifacts import ArtifactRef, ArtifactStore

SAMPLE_ROWS = 5_000


@dataclass(frozen=True)
class Reference:
    profile: Profile
    sample: pd.DataFrame


def build_reference(
    model: Any,
    signature: Signature,
    train: pd.DataFrame,
    validation: pd.DataFrame | None,
    *,
    seed: int,
    sample_rows: int = SAMPLE_ROWS,
) -> Reference:
    """Profile the training frame; sample the validation frame if given, else training.

    The sample carries the model's outputs because estimating performance without labels
    must be calibrated on outputs the model produced for rows it was not fitted on.
    """
    columns = list(signature.names)
    categorical = [c.name for c in signature.columns if c.type.value in ("categorical", "boolean")]
    if signature.task is not None:
        columns.append(signature.task.target)
        if signature.task.kind != "regression":
            categorical.append(signature.task.target)
    spec = ProfileSpec.from_reference(train[columns], categorical=categorical)
    profile = Profile.empty(spec).update(train[columns])

    source = validation if validation is not None else train
    sample = source[columns]
    if len(sample) > sample_rows:
        sample = sample.sample(n=sample_rows, random_state=seed)
    outputs = predict_outputs(model, sample[list(signature.names)], _task(signature))
    sample = pd.concat([sample, outputs], axis=1).reset_index(drop=True)
    return Reference(profile=profile, sample=sample)


def save_reference(ref: Reference, store: ArtifactStore, *, source: str) -> dict[str, Any]:
    buffer = io.BytesIO()
    ref.sample.to_parquet(buffer, index=False)
    return {
        "source": source,
        "profile": store.put(ref.profile.to_bytes()).to_dict(),
        "sample": store.put(buffer.getvalue()).to_dict(),
        "sample_rows": len(ref.sample),
        "summary": ref.profile.summary(),
    }


def load_reference(info: dict[str, Any], store: ArtifactStore) -> Reference:
    try:
        profile_ref = ArtifactRef.from_dict(info["profile"])
        sample_ref = ArtifactRef.from_dict(info["sample"])
    except (KeyError, TypeError) as exc:
        raise IntegrityError("this version has no stored reference") from exc
    profile = Profile.from_bytes(store.get(profile_ref))
    sample = pd.read_parquet(io.BytesIO(store.get(sample_ref)))
    return Reference(profile=profile, sample=sample)


def _task(signature: Signature) -> str | None:
    return signature.task.kind if signature.task is not None else None
