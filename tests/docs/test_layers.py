"""The layers contract of pyproject.toml holds: no import in src/livemodel points up.

The README's test command checks it too, not only .ci/run. A new upward import, or a new
package not placed in a layer, fails here with import-linter's report naming the line.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def test_no_import_points_up() -> None:
    run = subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert " 0 broken." in run.stdout


def test_every_package_is_placed_and_every_debt_named() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    layers = next(c for c in config["contracts"] if c["id"] == "layers")
    assert layers["exhaustive"] is True
    # every ignored import is a line of today's debt, commented with its issue item
    text = (ROOT / "pyproject.toml").read_text()
    for contract in config["contracts"]:
        for ignored in contract.get("ignore_imports", []):
            before = text[: text.index(f'"{ignored}"')]
            comment = before[before.rindex("#") :]
            assert comment.startswith("# debt: issue "), ignored
