"""Printing for people (rich) or for machines (``--json``)."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console

console = Console(highlight=False, soft_wrap=True)


def print_json(data: Any) -> None:
    # Plain print: rich would wrap or colour the JSON.
    print(json.dumps(data, indent=2, sort_keys=False, default=str))
