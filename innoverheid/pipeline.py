"""The stage functions the CLI and the scheduler share: nothing is written twice."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from harvester.registry import REGISTRY, BuildContext, build_sources, enabled_names
from harvester.retry import RetryPolicy
from harvester.runner import HarvestReport, harvest
from innoverheid.config import Config
from innoverheid.errors import UsageError
from storage import Database


def build_context(cfg: Config, db: Database, policy: RetryPolicy | None = None,
                  env: dict | None = None) -> BuildContext:
    from innoverheid.status import posts_this_month

    state_dir = cfg.resolve(cfg.harvest.state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    return BuildContext(
        cfg=cfg, env=dict(os.environ) if env is None else env,
        policy=policy or RetryPolicy.from_config(cfg.harvest), state_dir=Path(state_dir),
        used_this_month=lambda name: posts_this_month(db, name),
    )


def build_enabled_sources(cfg: Config, db: Database, env: dict | None = None) -> list:
    return build_sources(enabled_names(cfg), build_context(cfg, db, env=env))


def run_harvest(cfg: Config, db: Database, sources: list[str] | None = None, hashtags: list[str] | None = None,
                *, job_run_id: int | None = None, should_stop: Callable[[], bool] = lambda: False,
                progress: Callable[[str, int], None] | None = None,
                policy: RetryPolicy | None = None, env: dict | None = None) -> HarvestReport:
    """Harvest the chosen (default: enabled) sources for the chosen (default: configured) hashtags."""
    for name in sources or []:
        if name not in REGISTRY:
            raise UsageError(f"--source {name!r} is unknown; choose from {', '.join(REGISTRY)}")
    names = sources or enabled_names(cfg)
    tags = [t.lstrip("#").lower() for t in (hashtags or cfg.hashtags)]
    ctx = build_context(cfg, db, policy, env)
    return harvest(db, build_sources(names, ctx), tags, job_run_id=job_run_id, should_stop=should_stop,
                   progress=progress)
