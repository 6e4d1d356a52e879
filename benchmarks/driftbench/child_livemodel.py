"""livemodel's drift report, with the current file streamed in record batches.

Reference: read whole (100k rows), ``ProfileSpec.from_reference`` (numeric edges from its
quantiles, categories from its values), profiled in one ``Profile.update``. Current:
``ParquetFile(pre_buffer=False).iter_batches`` -> ``Profile.update`` per batch (each
update profiles the batch and merges it in), so memory is bounded by one batch whatever
the file size. Then ``compare_profiles`` with the default ``DriftConfig`` (KS /
chi-square with Holm correction, PSI, Jensen-Shannon, trimmed Wasserstein; a column
drifts when a test is significant AND an effect exceeds its threshold) and the
data-quality summary (missing rates, unseen categories) of both profiles.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

_START = time.perf_counter()
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _childio import Phases, parse_args, write_result  # noqa: E402

BATCH_ROWS = 100_000  # the files' row-group size


def run(reference: Path, current: Path, phases: Phases) -> dict[str, object]:
    import pyarrow.parquet as pq

    from livemodel.stats.drift import DriftConfig, compare_profiles
    from livemodel.stats.profile import Profile, ProfileSpec

    phases.mark("import")
    ref_frame = pq.read_table(reference).to_pandas()
    phases.mark("read reference")
    spec = ProfileSpec.from_reference(ref_frame)
    ref_profile = Profile.empty(spec).update(ref_frame)
    del ref_frame
    phases.mark("profile reference")
    cur_profile = Profile.empty(spec)
    # pre_buffer=False: with pyarrow's default (True) iter_batches keeps every row group's
    # pre-buffered bytes alive until the file is closed, about 17 MB per 100k rows here,
    # so memory would grow with the file (1.7 GB at 10M rows) instead of staying flat.
    source = pq.ParquetFile(current, pre_buffer=False)
    for batch in source.iter_batches(batch_size=BATCH_ROWS, columns=list(spec.names)):
        cur_profile.update(batch.to_pandas())
    phases.mark("read+profile current")
    report = compare_profiles(ref_profile, cur_profile, DriftConfig())
    ref_summary, cur_summary = ref_profile.summary(), cur_profile.summary()
    quality = {
        name: {
            "missing_rate_reference": ref_summary[name]["missing_rate"],
            "missing_rate_current": cur_summary[name]["missing_rate"],
            "other_current": cur_summary[name].get("n_other"),
        }
        for name in spec.names
    }
    phases.mark("compare+quality")
    effects = {
        r.column + "/" + r.method: r.statistic
        for r in report.results
        if r.statistic is not None and r.method != "chi2"
    }
    return {
        "flagged": list(report.drifted_columns),
        "rows": {"reference": ref_profile.count, "current": cur_profile.count},
        "details": {"quality": quality, "statistics": effects},
    }


def main() -> None:
    args = parse_args(__doc__ or "")
    phases = Phases()
    phases._last = _START
    if args.cprofile:
        import cProfile

        profiler = cProfile.Profile()
        out = profiler.runcall(run, args.reference, args.current, phases)
        profiler.dump_stats(args.cprofile)
    else:
        out = run(args.reference, args.current, phases)
    from importlib.metadata import version

    import numpy
    import pandas
    import pyarrow
    import scipy

    import livemodel

    versions = {
        "livemodel": getattr(livemodel, "__version__", "source tree"),
        "numpy": numpy.__version__,
        "pandas": pandas.__version__,
        "pyarrow": pyarrow.__version__,
        "scipy": scipy.__version__,
        "datasketches": version("datasketches"),
    }
    write_result(
        args.out,
        flagged=out["flagged"],
        versions=versions,
        phases=phases,
        rows=out["rows"],
        details=out["details"],
        method=f"Profile per {BATCH_ROWS:,}-row batch + compare_profiles(DriftConfig())",
    )


if __name__ == "__main__":
    main()
