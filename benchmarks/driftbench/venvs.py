"""The peers' virtual environments under ``benchmarks/.venvs/``: created on first use.

Each peer gets its own Python 3.11 venv so its pins never touch the project's. Evidently
0.7 and NannyML 0.13 do not run on pandas 3 (both import pandas internals that pandas 3
removed), hence ``pandas<3``; NannyML's metadata omits ``statsmodels``, which it imports.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class PeerEnv:
    name: str
    module: str
    packages: tuple[str, ...]


PEERS = {
    "evidently": PeerEnv("evidently", "evidently", ("evidently==0.7.23", "pandas<3", "pyarrow")),
    "nannyml": PeerEnv(
        "nannyml", "nannyml", ("nannyml==0.13.1", "statsmodels", "pandas<3", "pyarrow")
    ),
}


def python_of(root: Path, peer: PeerEnv) -> Path:
    return root / peer.name / "bin" / "python"


def importable(python: Path, module: str) -> bool:
    if not python.exists():
        return False
    probe = subprocess.run(
        [str(python), "-c", f"import {module}"],
        capture_output=True,
        env={"NML_DISABLE_USAGE_LOGGING": "1", "PATH": "/usr/bin:/bin"},
        check=False,
    )
    return probe.returncode == 0


def ensure(root: Path, peer: PeerEnv) -> Path:
    """The peer's interpreter, creating the venv and installing into it if needed.

    Raises ``RuntimeError`` with the tail of pip's log when the install fails."""
    python = python_of(root, peer)
    if importable(python, peer.module):
        return python
    target = root / peer.name
    if target.exists():
        shutil.rmtree(target)
    root.mkdir(parents=True, exist_ok=True)
    interpreter = shutil.which("python3.11") or "python3.11"
    subprocess.run([interpreter, "-m", "venv", str(target)], check=True)
    log = root / f"{peer.name}-install.log"
    with log.open("wb") as fh:
        done = subprocess.run(
            [str(python), "-m", "pip", "install", "--disable-pip-version-check", *peer.packages],
            stdout=fh,
            stderr=subprocess.STDOUT,
            check=False,
        )
    if done.returncode != 0 or not importable(python, peer.module):
        tail = log.read_text(errors="replace").splitlines()[-5:]
        raise RuntimeError(f"installing {peer.name} failed (see {log}): {' / '.join(tail)}")
    return python
