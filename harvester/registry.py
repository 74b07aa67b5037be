"""The registry of platforms: adding one is a module, a line here, a config block, a fixture set."""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from harvester.base import MissingCredentials, Source
from harvester.retry import RetryPolicy

# name -> module; each module has `build(ctx: BuildContext) -> Source` (raising MissingCredentials).
REGISTRY: dict[str, str] = {
    "bluesky": "harvester.bluesky",
    "mastodon": "harvester.mastodon",
    "x": "harvester.x",
}


@dataclass
class BuildContext:
    cfg: object  # innoverheid.config.Config (not imported: stages do not depend on the shell)
    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    state_dir: Path = Path(".innoverheid")
    # Posts this source already stored this calendar month (for X's monthly budget).
    used_this_month: Callable[[str], int] = lambda name: 0


def enabled_names(cfg) -> list[str]:
    return [name for name in REGISTRY if getattr(cfg.sources, name).enabled]


def build_source(name: str, ctx: BuildContext) -> Source:
    module = importlib.import_module(REGISTRY[name])
    return module.build(ctx)


def build_sources(names: list[str], ctx: BuildContext) -> list[Source | MissingCredentials]:
    out: list[Source | MissingCredentials] = []
    for name in names:
        try:
            out.append(build_source(name, ctx))
        except MissingCredentials as exc:
            out.append(exc)
    return out
