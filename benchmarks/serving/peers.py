"""Each peer server lives in its own virtual environment under ``benchmarks/.venvs/<peer>``.

The environments are created by the benchmark itself (``python3.11 -m venv`` + pip) and reused
when they already import; nothing is ever installed into the project's own ``.venv``. Every peer
gets the project's scikit-learn version pinned, so the benchmark's pickles load everywhere.
"""

from __future__ import annotations

import importlib.metadata
import json
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class PeerSpec:
    """What to install for a peer, and which import proves the install works."""

    name: str
    requirements: tuple[str, ...]
    check_import: str
    version_of: tuple[str, ...]


PEERS: dict[str, PeerSpec] = {
    "mlflow": PeerSpec(
        name="mlflow",
        requirements=("mlflow",),
        check_import="import mlflow.sklearn, mlflow.pyfunc.scoring_server, sklearn, uvicorn",
        version_of=("mlflow",),
    ),
    "bentoml": PeerSpec(
        name="bentoml",
        requirements=("bentoml", "pandas"),
        check_import="import bentoml, sklearn, pandas",
        version_of=("bentoml",),
    ),
    "mlserver": PeerSpec(
        name="mlserver",
        # 1.7.1's parallel inference workers crash with uvloop>=0.22.
        requirements=("mlserver", "mlserver-sklearn", "uvloop<0.22"),
        check_import="import mlserver, mlserver_sklearn, sklearn",
        version_of=("mlserver", "mlserver-sklearn"),
    ),
}


def python_of(venv: Path) -> Path:
    return venv / "bin" / "python"


def _imports(venv: Path, statement: str) -> bool:
    python = python_of(venv)
    if not python.exists():
        return False
    result = subprocess.run(
        [str(python), "-c", statement], capture_output=True, text=True, timeout=300, check=False
    )
    return result.returncode == 0


def ensure_peer(
    spec: PeerSpec, root: Path, log: Callable[[str], None], base_python: str = "python3.11"
) -> Path:
    """The peer's virtual environment, created and installed unless it already imports.

    Raises ``RuntimeError`` with pip's last lines when the install fails.
    """
    venv = root / spec.name
    sklearn = importlib.metadata.version("scikit-learn")
    pin = f"scikit-learn=={sklearn}"
    check = spec.check_import + f"; assert sklearn.__version__ == {sklearn!r}"
    if _imports(venv, check):
        return venv
    if venv.exists():
        shutil.rmtree(venv)
    log(f"creating {venv} (pip install {' '.join(spec.requirements)} {pin})")
    subprocess.run([base_python, "-m", "venv", str(venv)], check=True, timeout=300)
    pip = [str(python_of(venv)), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    result = subprocess.run(
        [*pip, *spec.requirements, pin], capture_output=True, text=True, timeout=1800, check=False
    )
    if result.returncode != 0 or not _imports(venv, check):
        tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-5:])
        raise RuntimeError(f"installing {spec.name} failed: {tail}")
    return venv


def versions(spec: PeerSpec, venv: Path) -> dict[str, str]:
    """Installed versions of the peer's main packages (and scikit-learn), read in its venv."""
    names = (*spec.version_of, "scikit-learn")
    code = (
        "import importlib.metadata as m, json; "
        f"print(json.dumps({{n: m.version(n) for n in {list(names)!r}}}))"
    )
    result = subprocess.run(
        [str(python_of(venv)), "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    parsed: dict[str, str] = json.loads(result.stdout)
    return parsed
