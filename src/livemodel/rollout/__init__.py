"""Safe rollouts: shadow, canary and A/B decided by sequential statistics.

Pure decision logic (:mod:`.plan`, :mod:`.routing`, :mod:`.guards`, :mod:`.machine`) is
kept apart from the I/O that feeds it (:mod:`.controller`).
"""
