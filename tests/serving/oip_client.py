"""Run by test_oip_tritonclient in tritonclient's own venv: infer with the client's defaults.

``python oip_client.py URL MODEL ROWS.json`` reads the model's metadata, sends one tensor
per input with ``set_data_from_numpy`` (binary data, the client's default, with binary
outputs asked for, also the default) and prints the outputs as JSON.
"""

import json
import sys
from pathlib import Path

import numpy as np
import tritonclient.http as httpclient
from tritonclient.utils import triton_to_np_dtype


def main() -> None:
    url, model, rows_path = sys.argv[1], sys.argv[2], sys.argv[3]
    with Path(rows_path).open() as fh:
        rows = json.load(fh)
    client = httpclient.InferenceServerClient(url=url.removeprefix("http://"))
    metadata = client.get_model_metadata(model)
    inputs = []
    for spec in metadata["inputs"]:
        values = [row[spec["name"]] for row in rows]
        if spec["datatype"] == "BYTES":
            array = np.array([str(v).encode() for v in values], dtype=np.object_)
        else:
            array = np.array(values, dtype=triton_to_np_dtype(spec["datatype"]))
        tensor = httpclient.InferInput(spec["name"], [len(rows)], spec["datatype"])
        tensor.set_data_from_numpy(array)
        inputs.append(tensor)
    result = client.infer(model, inputs)
    response = result.get_response()
    labels = result.as_numpy("predict")
    out = {
        "binary_outputs": [
            "binary_data_size" in (o.get("parameters") or {}) for o in response["outputs"]
        ],
        "predict": [x.decode() if isinstance(x, bytes) else x for x in labels.tolist()],
        "predict_proba": result.as_numpy("predict_proba").tolist(),
        "ids": response["parameters"]["prediction_ids"],
        "version": response["model_version"],
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
