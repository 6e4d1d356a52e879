"""``GET /v2/models/{name}`` declares the output datatypes ``/infer`` answers with.

For every kind of model (integer and string labels, a classifier without
``predict_proba`` with either, multiclass, regression), over real HTTP, the datatypes of
the metadata's outputs equal those of an inference response for the same model, output
by output, and the inputs the metadata declares are accepted as declared.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sklearn.linear_model import RidgeClassifier

from .conftest import Models, Server, copy_home, records, registry_at, start_server
from .decision_kinds import KINDS, Kind, _pipeline, _strings, fit

NO_PROBA_STRINGS = Kind(lambda: _pipeline(RidgeClassifier(alpha=10.0)), _strings)
CASES: dict[str, tuple[Kind, dict[str, str]]] = {
    "int-labels": (KINDS["fixed-threshold"], {"predict": "INT64", "predict_proba": "FP64"}),
    "odd-integers": (KINDS["odd-integers"], {"predict": "INT64", "predict_proba": "FP64"}),
    "string-labels": (KINDS["string-labels"], {"predict": "BYTES", "predict_proba": "FP64"}),
    "multiclass": (KINDS["multiclass"], {"predict": "BYTES", "predict_proba": "FP64"}),
    "no-proba-int": (KINDS["no-proba"], {"predict": "INT64"}),
    "no-proba-str": (NO_PROBA_STRINGS, {"predict": "BYTES"}),
    "regression": (KINDS["regression"], {"predict": "FP64"}),
}


@pytest.fixture(scope="module")
def served(
    template_home: Path,
    models: Models,
    faults_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Server]:
    home = copy_home(template_home, tmp_path_factory.mktemp("oip-metadata") / "home")
    registry = registry_at(home)
    for name, (kind, _) in CASES.items():
        model, frame = fit(kind, models.data.iloc[:3000])
        registry.register(name, model, frame, target=kind.target_name, alias="production")
    registry.metadata.db.close()
    running = start_server(home, faults_dir, config=home / "livemodel.toml")
    yield running
    running.stop()


@pytest.fixture(scope="module")
def client(served: Server) -> httpx.Client:
    return served.client()


def infer_body(metadata: dict[str, Any], rows: list[dict[str, Any]]) -> dict[str, Any]:
    """One tensor per input, of the datatype the metadata declares for it."""
    inputs = []
    for spec in metadata["inputs"]:
        data = [row[spec["name"]] for row in rows]
        if spec["datatype"] == "FP64":
            data = [None if v is None else float(v) for v in data]
        inputs.append(
            {"name": spec["name"], "datatype": spec["datatype"], "shape": [len(rows)], "data": data}
        )
    return {"inputs": inputs}


@pytest.mark.parametrize("name", list(CASES))
def test_declared_output_datatypes_are_those_infer_answers(
    client: httpx.Client, models: Models, name: str
) -> None:
    metadata = client.get(f"/v2/models/{name}")
    assert metadata.status_code == 200, metadata.text
    declared = {o["name"]: o["datatype"] for o in metadata.json()["outputs"]}
    rows = records(models.data.iloc[3000:3012])
    response = client.post(f"/v2/models/{name}/infer", json=infer_body(metadata.json(), rows))
    assert response.status_code == 200, response.text
    answered = {o["name"]: o["datatype"] for o in response.json()["outputs"]}
    assert declared == answered == CASES[name][1]
