"""The offline demo: the real pipeline against local stand-ins of Bluesky, Mastodon (two instances) and X.

Nothing here is special-cased for the demo: the collectors, the runner, the classifier and the
digest are the same code as a real nightly run. Only the platforms are local servers on
127.0.0.1 serving a bundled sample in their real wire formats.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from importlib import resources
from pathlib import Path

from innoverheid.config import Config
from innoverheid.sandbox.sample import SamplePost

SAMPLE = "demo_sample.jsonl"
MASTODON_INSTANCES = ["mastodon.example", "overheid.example"]


@dataclass
class DemoResult:
    out_dir: Path
    digest_html: Path
    digest_md: Path
    export_csv: Path
    database: Path
    counts: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    harvest_lines: list[str] = field(default_factory=list)


def load_sample(now: datetime | None = None) -> dict[str, list[SamplePost]]:
    """The bundled sample, per platform, with dates moved so the newest post is a few hours old.

    X only searches the last 7 days; shifting keeps the demo's story true on any day it is run.
    """
    raw = [json.loads(line) for line in resources.files("innoverheid.sandbox").joinpath(SAMPLE)
           .read_text(encoding="utf-8").splitlines() if line.strip()]
    newest = max(datetime.fromisoformat(r["created_at"].replace("Z", "+00:00")) for r in raw)
    shift = ((now or datetime.now(timezone.utc)) - timedelta(hours=3)) - newest
    out: dict[str, list[SamplePost]] = {"bluesky": [], "mastodon": [], "x": []}
    for r in raw:
        created = datetime.fromisoformat(r["created_at"].replace("Z", "+00:00")) + shift
        out[r["platform"]].append(SamplePost(
            id=r["id"], text=r["text"], author=r["author"], author_name=r.get("author_name") or r["author"],
            created_at=created, lang=r.get("lang", "nl"), hashtags=r.get("hashtags") or ["innoverheid"],
            reply_to=r.get("reply_to"), repost_of=r.get("repost_of"), quote_of=r.get("quote_of"),
            likes=r.get("likes", 0), reposts=r.get("reposts", 0), replies=r.get("replies", 0),
            instances=r.get("instances"),
        ))
    return out


def start_fakes(sample: dict[str, list[SamplePost]], config: dict, env: dict) -> list:
    from innoverheid.sandbox.bluesky import BlueskyServer
    from innoverheid.sandbox.mastodon import MastodonFake
    from innoverheid.sandbox.x import XServer

    fakes = [BlueskyServer(sample["bluesky"]), MastodonFake(sample["mastodon"], instances=MASTODON_INSTANCES),
             XServer(sample["x"])]
    for fake in fakes:
        fake.start()
        fake.configure(config, env)
    return fakes


def run_demo(out_dir: Path, say: Callable[[str], None] = print) -> DemoResult:
    from classify.grouping import assign_groups
    from classify.stage import classify_posts
    from innoverheid.app import database_url
    from innoverheid.pipeline import run_harvest
    from report.digest import write_digest
    from report.export import ExportFilter, export
    from storage import open_database

    started = time.perf_counter()
    out_dir = out_dir.resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    db_path = out_dir / "demo.db"
    for p in (db_path, Path(str(db_path) + "-wal"), Path(str(db_path) + "-shm")):
        p.unlink(missing_ok=True)
    shutil.rmtree(out_dir / ".state", ignore_errors=True)

    config: dict = {"database": f"sqlite:///{db_path}", "hashtags": ["innoverheid"],
                    "harvest": {"state_dir": str(out_dir / ".state"), "timeout": 10},
                    "report": {"out_dir": str(out_dir)}, "sources": {}}
    env: dict[str, str] = {}
    sample = load_sample()
    fakes = start_fakes(sample, config, env)
    try:
        cfg = Config.model_validate({**config, "base_dir": str(out_dir)})
        db = open_database(database_url(cfg))
        say(f"harvesting from local stand-ins of Bluesky, Mastodon ({len(MASTODON_INSTANCES)} instances) and X ...")
        report = run_harvest(cfg, db, env=env)
        lines = [s.line() for s in report.sources]
        for line in lines:
            say("  " + line)
    finally:
        for fake in fakes:
            fake.stop()
    say("grouping near-duplicates and classifying with the starter model ...")
    assign_groups(db)
    classify_posts(cfg, db)
    say("writing the digest and an export ...")
    digest = write_digest(cfg, db, out_dir=out_dir)
    csv_path = out_dir / "posts.csv"
    n = export(db, csv_path, "csv", ExportFilter())
    db.dispose()
    result = DemoResult(out_dir=out_dir, digest_html=Path(digest.html_path), digest_md=Path(digest.md_path),
                        export_csv=csv_path, database=db_path, counts={"posts": n, "new": report.new},
                        seconds=time.perf_counter() - started, harvest_lines=lines)
    return result
