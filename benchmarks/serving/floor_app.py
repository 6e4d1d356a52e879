"""The floor: the least a Python server can do to answer a prediction request.

A bare ASGI app on uvicorn that parses the JSON body, builds a DataFrame from its records and
calls ``predict_proba``: no validation, no logging, no batching. Every other server is compared
with it in the same run. Run as a script::

    python floor_app.py --models DIR --host 127.0.0.1 --port 8000 [--workers N] [--numpy]

``--numpy`` is a reference below the floor: it skips the DataFrame and hands ``predict_proba`` a
float array in the training column order, which shows what the DataFrame path costs.

``POST /predict/<name>`` with ``{"records": [{feature: value, ...}]}`` answers
``{"probabilities": [[p0, p1], ...]}``; ``GET /healthz`` answers 200 once the models are loaded.
"""

from __future__ import annotations

import argparse
import os
import pickle
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd

Scope = dict[str, Any]

_MODELS_ENV = "FLOOR_MODELS_DIR"
_NUMPY_ENV = "FLOOR_NUMPY"


def _load_models(directory: Path) -> dict[str, Any]:
    models = {}
    for path in sorted(directory.glob("*.pkl")):
        with path.open("rb") as handle:
            models[path.stem] = pickle.load(handle)
    return models


class FloorApp:
    """Bare ASGI callable; models are loaded lazily once per worker process."""

    def __init__(self) -> None:
        self._models: dict[str, Any] | None = None
        self._numpy = os.environ.get(_NUMPY_ENV) == "1"
        if self._numpy:
            # Expected: the array has no column names, by design of this variant.
            warnings.filterwarnings("ignore", message="X does not have valid feature names")

    def _get_models(self) -> dict[str, Any]:
        if self._models is None:
            self._models = _load_models(Path(os.environ[_MODELS_ENV]))
        return self._models

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    self._get_models()
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        path: str = scope["path"]
        if path == "/healthz":
            await _respond(send, 200, b'{"ok":true}')
            return
        model = self._get_models().get(path.removeprefix("/predict/"))
        if scope["method"] != "POST" or model is None:
            await _respond(send, 404, b'{"error":"not found"}')
            return
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        try:
            records = orjson.loads(body)["records"]
            if self._numpy:
                rows = [[row[c] for c in model.feature_names_in_] for row in records]
                proba = model.predict_proba(np.asarray(rows, dtype=np.float64))
            else:
                proba = model.predict_proba(pd.DataFrame.from_records(records))
        except Exception as exc:  # noqa: BLE001 - the floor answers 400 on any bad input
            await _respond(send, 400, orjson.dumps({"error": str(exc)}))
            return
        await _respond(send, 200, orjson.dumps({"probabilities": proba.tolist()}))


async def _respond(send: Any, status: int, body: bytes) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


app = FloorApp()


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", required=True, type=Path)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--numpy", action="store_true")
    args = parser.parse_args()
    os.environ[_MODELS_ENV] = str(args.models.resolve())
    os.environ[_NUMPY_ENV] = "1" if args.numpy else "0"
    uvicorn.run(
        "floor_app:app",
        app_dir=str(Path(__file__).parent),
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level="warning",
        access_log=False,
    )


if __name__ == "__main__":
    main()
