"""Benchmark: X harvest end to end (tweepy -> fake X API v2 -> SQLite), beside its floor.

    python bench/harvest_x.py [--posts 20000]

The harvest runs through harvester.x.build and harvester.runner.harvest_source exactly as a
nightly run does. The floor fetches the same pages with plain requests (same parameters,
next_token paging), parses them with json and inserts the same rows into the same posts table
with raw sqlite3 executemany: the least work any harvester could do.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import sqlite3
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from harvester import x as hx  # noqa: E402
from harvester.registry import BuildContext  # noqa: E402
from harvester.retry import RetryPolicy  # noqa: E402
from harvester.runner import harvest_source  # noqa: E402
from innoverheid.config import Config  # noqa: E402
from innoverheid.sandbox.sample import SamplePost  # noqa: E402
from innoverheid.sandbox.x import XServer  # noqa: E402
from storage import open_database  # noqa: E402

from bench.common import post_text  # noqa: E402
from bench.common import report as print_report  # noqa: E402



def generate(n: int) -> list[SamplePost]:
    rng = random.Random(42)
    start = datetime.now(UTC) - timedelta(days=6)
    posts: list[SamplePost] = []
    for i in range(n):
        user = rng.randint(0, 5000)
        repost = f"x{rng.randrange(i)}" if i > 10 and rng.random() < 0.15 else None
        posts.append(SamplePost(
            id=f"x{i}", text=post_text(rng),
            author=f"user{user}", author_name=f"Gebruiker {user}", created_at=start + timedelta(seconds=20 * i),
            repost_of=repost, likes=rng.randint(0, 40), reposts=rng.randint(0, 5)))
    return posts


def harvest(server: XServer, n: int, db_path: Path) -> tuple[float, int]:
    config: dict = {"sources": {"x": {"monthly_cap": n * 2}}}
    env: dict[str, str] = {}
    server.configure(config, env)
    cfg = Config.model_validate(config)
    source = hx.build(BuildContext(cfg=cfg, env=env, policy=RetryPolicy.from_config(cfg.harvest)))
    db = open_database(f"sqlite:///{db_path}")
    t0 = time.perf_counter()
    report = harvest_source(db, source, ["innoverheid"])
    seconds = time.perf_counter() - t0
    db.dispose()
    if report.status != "ok":
        raise SystemExit(f"harvest failed: {report.line()}")
    return seconds, report.new


def floor(server: XServer, db_path: Path) -> tuple[float, int]:
    import requests

    open_database(f"sqlite:///{db_path}").dispose()  # the same schema, from our migrations
    con = sqlite3.connect(db_path, isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=NORMAL")
    sql = ("INSERT OR IGNORE INTO posts (source, source_id, text, author_id, created_at, lang, hashtags, raw,"
           " is_repost, like_count, harvested_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)")
    session = requests.Session()
    headers = {"Authorization": f"Bearer {server.bearer_token}"}
    params = {"query": "#innoverheid", "max_results": 100, "expansions": ",".join(hx.EXPANSIONS),
              "tweet.fields": ",".join(hx.TWEET_FIELDS), "user.fields": ",".join(hx.USER_FIELDS)}
    now = time.strftime("%Y-%m-%d %H:%M:%S.000000", time.gmtime())
    t0 = time.perf_counter()
    rows = 0
    token = None
    while True:
        body = json.loads(session.get(f"{server.url}/2/tweets/search/recent", headers=headers, timeout=30,
                                      params={**params, **({"next_token": token} if token else {})}).content)
        batch = [("x", t["id"], t["text"], t.get("author_id"), t.get("created_at"), t.get("lang"), "innoverheid",
                  json.dumps(t, ensure_ascii=False), "referenced_tweets" in t,
                  t.get("public_metrics", {}).get("like_count"), now) for t in body.get("data", [])]
        con.execute("BEGIN")
        con.executemany(sql, batch)
        con.execute("COMMIT")
        rows += len(batch)
        token = body.get("meta", {}).get("next_token")
        if not token:
            break
    seconds = time.perf_counter() - t0
    con.close()
    return seconds, rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--posts", type=int, default=20000)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    posts = generate(args.posts)
    with tempfile.TemporaryDirectory() as tmp, XServer(posts) as server:
        f_seconds, f_rows = floor(server, Path(tmp) / "floor.db")
        h_seconds, h_rows = harvest(server, args.posts, Path(tmp) / "harvest.db")
    if (h_rows, f_rows) != (args.posts, args.posts):
        raise SystemExit(f"expected {args.posts} posts, harvested {h_rows}, floor {f_rows}")
    rate, floor_rate = h_rows / h_seconds, f_rows / f_seconds
    return print_report("x", rate, floor_rate)


if __name__ == "__main__":
    sys.exit(main())
