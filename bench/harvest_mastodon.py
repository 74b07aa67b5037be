"""Benchmark: Mastodon harvest end to end (Mastodon.py -> mapping -> runner -> SQLite).

Serves N generated posts from the local fake (no faults, no rate limit), harvests them into a
fresh SQLite file and prints posts/s beside the floor measured in the same run: the same JSON
pages fetched with plain requests, parsed with json and inserted with raw sqlite3 executemany.

    python bench/harvest_mastodon.py [--posts N]
"""

from __future__ import annotations

import argparse
import json
import logging
import sqlite3
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harvester import mastodon as hm  # noqa: E402
from harvester.registry import BuildContext  # noqa: E402
from harvester.retry import RetryPolicy  # noqa: E402
from harvester.runner import harvest_source  # noqa: E402
from innoverheid.config import Config  # noqa: E402
from innoverheid.sandbox.mastodon import MastodonFake  # noqa: E402
from innoverheid.sandbox.sample import SamplePost  # noqa: E402
from storage import open_database  # noqa: E402

from bench.common import report as print_report  # noqa: E402

TAG = "innoverheid"


def make_posts(n: int) -> list[SamplePost]:
    t0 = datetime(2026, 1, 5, 8, 0, tzinfo=timezone.utc)
    return [SamplePost(id=str(i), text=f"Idee {i}: vaker thuiswerken en minder vergaderen.\n\nWat vinden jullie? "
                                        f"#innoverheid https://voorbeeld.nl/ideeen/{i}",
                       author=f"ambtenaar{i % 500}", author_name=f"Ambtenaar {i % 500}",
                       created_at=t0 + timedelta(seconds=7 * i), likes=i % 13, reposts=i % 5)
            for i in range(n)]


def harvest(fake: MastodonFake, db_path: Path) -> tuple[int, float]:
    config: dict = {}
    env: dict = {}
    fake.configure(config, env)
    cfg = Config(**config)
    source = hm.build(BuildContext(cfg=cfg, env=env, policy=RetryPolicy()))
    db = open_database(f"sqlite:///{db_path}")
    start = time.perf_counter()
    report = harvest_source(db, source, [TAG])
    elapsed = time.perf_counter() - start
    db.dispose()
    if report.status != "ok":
        raise SystemExit(f"harvest failed: {report.line()}")
    return report.new, elapsed


def floor(fake: MastodonFake, db_path: Path, page_size: int = 40) -> tuple[int, float]:
    conn = sqlite3.connect(db_path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE posts (source TEXT, source_id TEXT, url TEXT, author_handle TEXT, created_at TEXT,"
                 " lang TEXT, text TEXT, raw TEXT, UNIQUE (source, source_id))")
    session = requests.Session()
    url = f"{fake.url}/api/v1/timelines/tag/{TAG}"
    stored, min_id = 0, "0"
    start = time.perf_counter()
    while True:
        resp = session.get(url, params={"min_id": min_id, "limit": page_size}, timeout=30)
        items = json.loads(resp.content)
        if not items:
            break
        rows = [("mastodon", s["uri"], s["url"], s["account"]["acct"], s["created_at"], s["language"], s["content"],
                 json.dumps(s, ensure_ascii=False)) for s in items]
        with conn:
            conn.executemany("INSERT OR IGNORE INTO posts VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
        stored += len(rows)
        min_id = items[0]["id"]
    elapsed = time.perf_counter() - start
    conn.close()
    return stored, elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--posts", type=int, default=20000)
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    with MastodonFake(make_posts(args.posts)) as fake, tempfile.TemporaryDirectory() as tmp:
        fake.prerender()  # rendering the fake's JSON is not what is measured
        n_floor, t_floor = floor(fake, Path(tmp) / "floor.db")
        n, elapsed = harvest(fake, Path(tmp) / "harvest.db")
    if n != args.posts or n_floor != args.posts:
        raise SystemExit(f"expected {args.posts} posts, harvested {n}, floor stored {n_floor}")
    rate, floor_rate = n / elapsed, n_floor / t_floor
    status = print_report("mastodon", rate, floor_rate)
    return status


if __name__ == "__main__":
    sys.exit(main())
