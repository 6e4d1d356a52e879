"""Child process: score one Parquet file with the benchmark model and write the scores.

``--mode pandas`` is the plain loop a team writes without livemodel (stream record
batches, ``model.predict_proba`` on each DataFrame, write the probabilities with
``pyarrow.parquet.ParquetWriter``: no validation, no ids, no log). ``--mode local`` and
``--mode ray`` run ``livemodel.batch.score`` (validation against the signature, a
prediction id per row, every prediction logged, an audit event) with that engine."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

START = time.perf_counter()
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def pandas_loop(model: object, source: Path, output: Path) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = 0
    writer = None
    for batch in pq.ParquetFile(source, pre_buffer=False).iter_batches(batch_size=65_536):
        frame = batch.to_pandas()
        proba = model.predict_proba(frame)  # type: ignore[attr-defined]
        table = pa.table({"prediction": proba.argmax(axis=1), "proba_1": proba[:, 1]})
        if writer is None:
            writer = pq.ParquetWriter(output, table.schema)
        writer.write_table(table)
        rows += len(frame)
    if writer is not None:
        writer.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--input", type=Path, required=True)
    parser.add_argument("--mode", choices=("pandas", "local", "ray"), required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")

    from scalebench.data import MODEL, registry

    work = args.root / f"score-{args.mode}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    reg = registry(args.root)
    phases = {"imports": time.perf_counter() - START}
    mark = time.perf_counter()
    if args.mode == "pandas":
        model = reg.load(f"{MODEL}@production").model
        phases["load"] = time.perf_counter() - mark
        mark = time.perf_counter()
        rows = pandas_loop(model, args.input, work / "scores.parquet")
        summary: dict[str, object] = {"rows": rows, "scored": rows}
    else:
        from livemodel.batch.run import score
        from livemodel.engine import ray_session

        def run() -> dict[str, object]:
            result = score(reg, work / "logs", f"{MODEL}@production", args.input,
                           work / "scores", engine=args.mode)  # fmt: skip
            return {k: v for k, v in result.to_dict().items() if k in {"rows", "scored",
                    "flagged", "rejected", "errors", "partitions"}}  # fmt: skip

        if args.mode == "ray":
            with ray_session(num_cpus=2, object_store_mb=512):
                phases["ray_start"] = time.perf_counter() - mark
                mark = time.perf_counter()
                summary = run()
        else:
            summary = run()
    phases["score"] = time.perf_counter() - mark
    shutil.rmtree(work, ignore_errors=True)
    args.out.write_text(json.dumps({**summary, "phases": phases}))


if __name__ == "__main__":
    main()
