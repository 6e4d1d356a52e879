"""The sketch-based distances on merged sketches, against scipy on the raw data.

A KLL sketch merged from many chunk sketches (how every window is profiled) is in
estimation mode; its iterator in datasketches 5.2 can report weight 1 for items that
stand for thousands of values (found by the 100M-row scale benchmark, where Ray merges
made it common). The distances must come from the sketch's CDF instead, within the
sketch's rank error of the exact statistics.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from datasketches import kll_doubles_sketch
from scipy import stats

from livemodel.stats.sketch import kll_distances

DATA = Path(__file__).parent / "data"

EPS = kll_doubles_sketch.get_normalized_rank_error(200, False)


def chunked_sketch(values: np.ndarray, chunk: int = 65_536) -> kll_doubles_sketch:
    merged = kll_doubles_sketch(200)
    for part in np.array_split(values, max(1, len(values) // chunk)):
        sketch = kll_doubles_sketch(200)
        sketch.update(np.ascontiguousarray(part))
        merged.merge(sketch)
    return merged


@pytest.mark.parametrize(
    ("draw", "shift"),
    [
        (lambda rng, n: rng.uniform(-10, 10, n), 0.0),
        (lambda rng, n: rng.uniform(-10, 10, n), 1.0),
        (lambda rng, n: rng.normal(50, 6, n), 0.0),
        (lambda rng, n: rng.lognormal(0, 0.75, n), 0.2),
    ],
)
def test_distances_of_merged_sketches_match_scipy(draw, shift) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(7)
    reference = draw(rng, 100_000)
    current = draw(rng, 950_000) + shift
    ref_sketch, cur_sketch = chunked_sketch(reference), chunked_sketch(current)
    assert cur_sketch.is_estimation_mode()
    ks, w = kll_distances(ref_sketch, cur_sketch)
    assert abs(ks - stats.ks_2samp(reference, current).statistic) <= 2 * EPS
    exact_w = stats.wasserstein_distance(reference, current) / reference.std(ddof=1)
    assert abs(w / reference.std(ddof=1) - exact_w) <= 0.05  # the documented noise floor


def test_the_iterator_weights_are_not_trusted() -> None:
    # Sketches saved from the scale benchmark: n10 (uniform on [-10, 10], unshifted) of a
    # 100k-row reference and of a 9.5M-row window merged from five partitions. The merged
    # sketch's iterator reports weight 1 for all of its items; read that way, its CDF was
    # 0.065 off and the column was flagged as drifted.
    merged = kll_doubles_sketch.deserialize((DATA / "kll_merged_uniform.bin").read_bytes())
    reference = kll_doubles_sketch.deserialize((DATA / "kll_reference_uniform.bin").read_bytes())
    assert sum(weight for _, weight in merged) < merged.n  # the binding's quirk is there
    grid = np.linspace(-10, 10, 4001)
    true = (grid + 10) / 20
    for sketch in (merged, reference):
        assert np.abs(np.array(sketch.get_cdf(grid.tolist()))[:-1] - true).max() <= EPS
    ks, w = kll_distances(reference, merged)
    assert ks <= 2 * EPS
    assert w / (20 / np.sqrt(12)) <= 0.05
