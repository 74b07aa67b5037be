"""What the harvest benchmarks share: the generated post text and the report line."""

from __future__ import annotations

import random

TARGET = 1000.0  # posts/s per platform: the harvester must never be the bottleneck
WORDS = ["minder", "vergaderen", "meer", "thuiswerken", "open", "data", "leiderschap", "talent", "netwerk",
         "flexibel", "ruimte", "professional", "gemeente", "provincie", "ambtenaar", "idee", "charter",
         "vertrouwen", "lef", "experiment", "pilot", "ICT", "loket", "burger"]


def post_text(rng: random.Random) -> str:
    return " ".join(rng.choices(WORDS, k=rng.randint(8, 30))) + " #innoverheid"


def report(platform: str, rate: float, floor_rate: float) -> int:
    """Print the figure beside its floor and target; exit status 1 when below target."""
    verdict = "OK" if rate >= TARGET else "BELOW TARGET"
    print(f"{platform} harvest: {rate:.0f} posts/s (floor {floor_rate:.0f} posts/s; "
          f"target >= {TARGET:.0f} posts/s) {verdict}")
    return 0 if rate >= TARGET else 1
