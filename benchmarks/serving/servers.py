"""How each server is prepared, started and spoken to.

A :class:`ServerSpec` is plain data: the command line, its environment, the readiness URL and,
for every model it serves, the predict path and the exact request body that server's protocol
wants for the one benchmark record. Preparing a server (writing its files, registering models)
happens in the ``prepare_*`` functions, which raise ``RuntimeError`` with a reason on failure.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from serving.models import TARGET, BenchModels
from serving.peers import python_of

HOST = "127.0.0.1"
REPO = Path(__file__).resolve().parents[2]
PROJECT_BIN = REPO / ".venv" / "bin"
FLOOR_APP = Path(__file__).with_name("floor_app.py")


@dataclass(frozen=True)
class Endpoint:
    """Where to POST a prediction for one model, and the body to send."""

    path: str
    body: bytes


@dataclass(frozen=True)
class ServerSpec:
    """A ready-to-start server: command, environment, readiness and endpoints per model."""

    name: str
    cmd: list[str]
    env: dict[str, str]
    port: int
    ready_path: str
    endpoints: dict[str, Endpoint]
    workers: int = 1
    cwd: Path | None = None
    startup_timeout: float = 120.0
    notes: list[str] = field(default_factory=list)

    def url(self, path: str) -> str:
        return f"http://{HOST}:{self.port}{path}"


def _base_env(
    extra: dict[str, str] | None = None, path_first: Path | None = None
) -> dict[str, str]:
    env = dict(os.environ)
    # No telemetry from any peer, and no pip or usage pings during the run.
    env.update(
        {"DO_NOT_TRACK": "1", "BENTOML_DO_NOT_TRACK": "true", "MLFLOW_DISABLE_TELEMETRY": "true"}
    )
    env.pop("PYTHONPATH", None)
    if path_first is not None:
        env["PATH"] = f"{path_first}{os.pathsep}{env.get('PATH', '')}"
    env.update(extra or {})
    return env


def _records_body(models: BenchModels) -> bytes:
    return json.dumps({"records": [models.record]}).encode()


def floor(models: BenchModels, port: int, workers: int = 1, numpy: bool = False) -> ServerSpec:
    cmd = [sys.executable, str(FLOOR_APP), "--models", str(models.directory)]
    cmd += ["--host", HOST, "--port", str(port), "--workers", str(workers)]
    cmd += ["--numpy"] if numpy else []
    body = _records_body(models)
    return ServerSpec(
        name="floor",
        cmd=cmd,
        env=_base_env(),
        port=port,
        ready_path="/healthz",
        endpoints={name: Endpoint(f"/predict/{name}", body) for name in models.paths},
        workers=workers,
        startup_timeout=60,
    )


def prepare_livemodel(models: BenchModels, home: Path) -> None:
    """Register both models with livemodel's Python API in a fresh ``LIVEMODEL_HOME``."""
    try:
        import pickle

        import livemodel
        from livemodel.config import Settings

        registry = livemodel.connect(Settings.from_env({"LIVEMODEL_HOME": str(home)}))
        for name, path in models.paths.items():
            with path.open("rb") as handle:
                model = pickle.load(handle)
            registry.register(name, model, models.train, target=TARGET, alias="production")
    except Exception as exc:
        raise RuntimeError(f"registering the models failed: {type(exc).__name__}: {exc}") from exc


def livemodel_server(models: BenchModels, home: Path, port: int, workers: int = 1) -> ServerSpec:
    exe = PROJECT_BIN / "livemodel"
    cmd = [str(exe), "serve", "--host", HOST, "--port", str(port), "--workers", str(workers)]
    body = _records_body(models)
    return ServerSpec(
        name="livemodel",
        cmd=cmd,
        env=_base_env({"LIVEMODEL_HOME": str(home)}),
        port=port,
        ready_path="/readyz",
        endpoints={n: Endpoint(f"/v1/models/{n}/predict", body) for n in models.paths},
        workers=workers,
        startup_timeout=90,
    )


_MLFLOW_SAVE = """
import pickle, sys
import mlflow.sklearn
with open(sys.argv[1], "rb") as handle:
    model = pickle.load(handle)
mlflow.sklearn.save_model(model, sys.argv[2], pyfunc_predict_fn="predict_proba")
"""


def prepare_mlflow(models: BenchModels, venv: Path, workdir: Path, model: str) -> Path:
    """Save ``model`` in MLflow's format with ``mlflow.sklearn.save_model`` in the mlflow venv."""
    target = workdir / "mlflow" / model
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        [str(python_of(venv)), "-c", _MLFLOW_SAVE, str(models.paths[model]), str(target)],
        capture_output=True,
        text=True,
        timeout=300,
        env=_base_env(),
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"mlflow save_model failed: {result.stderr.strip()[-300:]}")
    return target


def mlflow_server(
    models: BenchModels, venv: Path, model_dir: Path, model: str, port: int
) -> ServerSpec:
    cmd = [str(venv / "bin" / "mlflow"), "models", "serve", "-m", str(model_dir)]
    cmd += ["--env-manager", "local", "-h", HOST, "-p", str(port), "-w", "1"]
    body = json.dumps({"dataframe_records": [models.record]}).encode()
    return ServerSpec(
        name="mlflow",
        cmd=cmd,
        # `mlflow models serve` starts uvicorn by name: the venv's bin must come first on PATH.
        env=_base_env(path_first=venv / "bin"),
        port=port,
        ready_path="/ping",
        endpoints={model: Endpoint("/invocations", body)},
    )


_BENTO_SERVICE = '''
"""Minimal BentoML service: one API per benchmark model, records in, probabilities out."""
import os
import pickle

import bentoml
import pandas as pd


def _load(name):
    with open(os.path.join(os.environ["BENCH_MODELS_DIR"], name + ".pkl"), "rb") as handle:
        return pickle.load(handle)


@bentoml.service(workers=1)
class Bench:
    def __init__(self) -> None:
        self.lr = _load("bench_lr")
        self.rf = _load("bench_rf")

    @bentoml.api
    def bench_lr(self, records: list[dict[str, float]]) -> list[list[float]]:
        return self.lr.predict_proba(pd.DataFrame.from_records(records)).tolist()

    @bentoml.api
    def bench_rf(self, records: list[dict[str, float]]) -> list[list[float]]:
        return self.rf.predict_proba(pd.DataFrame.from_records(records)).tolist()
'''


def bentoml_server(models: BenchModels, venv: Path, workdir: Path, port: int) -> ServerSpec:
    service_dir = workdir / "bentoml"
    service_dir.mkdir(parents=True, exist_ok=True)
    (service_dir / "service.py").write_text(_BENTO_SERVICE)
    cmd = [str(venv / "bin" / "bentoml"), "serve", "service:Bench", "--host", HOST]
    cmd += ["--port", str(port)]
    env = _base_env(
        {"BENCH_MODELS_DIR": str(models.directory), "BENTOML_HOME": str(workdir / "bentoml_home")},
        path_first=venv / "bin",
    )
    body = _records_body(models)
    return ServerSpec(
        name="bentoml",
        cmd=cmd,
        env=env,
        port=port,
        ready_path="/readyz",
        endpoints={n: Endpoint(f"/{n}", body) for n in models.paths},
        cwd=service_dir,
        startup_timeout=180,
    )


def _v2_body(models: BenchModels, tensor: bool = False) -> bytes:
    """An Open Inference Protocol v2 request.

    By default one input per column, decoded by MLServer's pandas codec into a frame with the
    training column names, as the model was fitted; with ``tensor`` a single ``[1, 10]`` FP64
    tensor in column order, decoded into a numpy array (MLServer's fastest path).
    """
    if tensor:
        data = list(models.record.values())
        inputs = [{"name": "x", "shape": [1, len(data)], "datatype": "FP64", "data": data}]
        return json.dumps({"inputs": inputs}).encode()
    inputs = [
        {"name": name, "shape": [1], "datatype": "FP64", "data": [value]}
        for name, value in models.record.items()
    ]
    return json.dumps({"parameters": {"content_type": "pd"}, "inputs": inputs}).encode()


def mlserver_server(
    models: BenchModels,
    venv: Path,
    workdir: Path,
    port: int,
    *,
    batching: dict[str, tuple[int, float]],
    tensor: bool = False,
) -> ServerSpec:
    """MLServer's sklearn runtime; ``batching`` maps a model to (max_batch_size, max_batch_time)."""
    root = workdir / "mlserver"
    root.mkdir(parents=True, exist_ok=True)
    grpc_port, metrics_port = _two_more_ports()
    settings = {
        "host": HOST,
        "http_port": port,
        "grpc_port": grpc_port,
        "metrics_port": metrics_port,
        "debug": False,
    }
    (root / "settings.json").write_text(json.dumps(settings, indent=2))
    for name, path in models.paths.items():
        model_dir = root / name
        model_dir.mkdir(exist_ok=True)
        settings_model: dict[str, object] = {
            "name": name,
            "implementation": "mlserver_sklearn.SKLearnModel",
            "parameters": {"uri": str(path), "extra": {"predict_fn": "predict_proba"}},
        }
        if name in batching:
            size, seconds = batching[name]
            settings_model.update({"max_batch_size": size, "max_batch_time": seconds})
        (model_dir / "model-settings.json").write_text(json.dumps(settings_model, indent=2))
    body = _v2_body(models, tensor)
    return ServerSpec(
        name="mlserver",
        cmd=[str(venv / "bin" / "mlserver"), "start", str(root)],
        env=_base_env(path_first=venv / "bin"),
        port=port,
        ready_path="/v2/health/ready",
        endpoints={n: Endpoint(f"/v2/models/{n}/infer", body) for n in models.paths},
        cwd=root,
        startup_timeout=180,
    )


def _two_more_ports() -> tuple[int, int]:
    from serving.procs import free_port

    return free_port(), free_port()
