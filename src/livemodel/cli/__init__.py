"""The ``livemodel`` command line (Typer + rich)."""

from livemodel.cli.app import main

__all__ = ["main"]
