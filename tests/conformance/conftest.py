"""One home and one real ``livemodel serve`` process for every kind of :mod:`.kinds`.

The server is a real process on a free port (see ``tests/serving/conftest.py``). The
``livemodel`` commands run in this process through the CLI's own entry point
(:func:`livemodel.cli.main`: the same argument parsing, output and error handling as the
installed command) against the same home: starting a Python process per command and kind
would cost more than the whole suite's work.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from tests.serving.conftest import Server, start_server
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

from livemodel.cli import main

from .kinds import KINDS, Kind

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Done:
    """What a ``livemodel`` command printed and its exit code."""

    code: int
    out: str
    err: str


@dataclass(frozen=True)
class Home:
    path: Path
    server: Server
    http: httpx.Client

    def lm(self, *args: str) -> Done:
        """Run ``livemodel ARGS`` in this process; its exit code, output and errors."""
        out, err = io.StringIO(), io.StringIO()
        code = 0
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                main(list(args))
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
        return Done(code, out.getvalue(), err.getvalue())

    def data_file(self, kind: Kind, part: str) -> Path:
        return self.path / "data" / f"{kind.name}-{part}.parquet"


def policy(kind: Kind) -> str:
    """A loop policy: retrain on the labelled log, gate on the holdout, canary 50% then 100%."""
    gate = (
        'metric = "rmse", margin = -30.0'
        if kind.task == "regression"
        else ('metric = "accuracy", margin = -0.3')
    )
    return f"""
[loop.models.{kind.name}]
train = "tests.conformance.kinds:train_{kind.name}"
data = {{ recent = "30d", older_share = 0.0, holdout = 0.3, min_rows = 30 }}
gate = {{ {gate}, n_bootstrap = 200 }}
rollout = {{ plan = "canary:50,100", min_step_samples = 100 }}
"""


CONFIG = """
[serving]
poll_seconds = 0.3
max_rows = 1000
"""


@pytest.fixture(scope="module")
def conformance_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Home]:
    """An empty home with the kinds' data files and loop policies, served by a real server;
    the livemodel commands of this process act on it (the environment is set until the
    module's tests are done)."""
    path = tmp_path_factory.mktemp("conformance") / "home"
    (path / "data").mkdir(parents=True)
    config = path / "livemodel.toml"
    config.write_text(CONFIG + "".join(policy(k) for k in KINDS))
    env = {
        "LIVEMODEL_HOME": str(path),
        "LIVEMODEL_CONFIG": str(config),
        "LIVEMODEL_ACTOR": "conformance",
    }
    with pytest.MonkeyPatch.context() as patch, threadpool_limits(1):
        for key in [k for k in os.environ if k.startswith("LIVEMODEL_")]:
            patch.delenv(key)
        for key, value in env.items():
            patch.setenv(key, value)
        # the loop imports the training entry points (tests.conformance.kinds:train_...)
        if str(REPO) not in sys.path:
            patch.syspath_prepend(str(REPO))
        server = start_server(path, path)
        http = httpx.Client(base_url=server.url, timeout=120)
        try:
            yield Home(path, server, http)
        finally:
            http.close()
            server.stop()
