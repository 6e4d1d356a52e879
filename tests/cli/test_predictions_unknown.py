"""``livemodel predictions`` on an unknown model is an error, as in every other command."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

EXE = str(Path(sys.executable).parent / "livemodel")


def test_predictions_of_an_unknown_model_is_an_error(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIVEMODEL_")}
    env["LIVEMODEL_HOME"] = str(tmp_path)
    for args in (["predictions", "NOPE", "--json"], ["audit", "NOPE"]):
        done = subprocess.run(
            [EXE, *args], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120,
            check=False,
        )  # fmt: skip
        assert done.returncode == 1, (args, done.stdout, done.stderr)
        assert "unknown model 'NOPE'" in done.stderr and "Traceback" not in done.stderr
        assert done.stdout.strip() == ""
