"""Batch inference over large Parquet inputs (``livemodel score``): see :mod:`.run`."""

from livemodel.batch.run import ScoreOptions, ScoreResult, score

__all__ = ["ScoreOptions", "ScoreResult", "score"]
