"""Benchmark: Bluesky harvest end to end (atproto SDK -> fake Bluesky -> SQLite), beside its floor.

    python bench/harvest_bluesky.py [--posts 20000]

The harvest runs through harvester.bluesky.build and harvester.runner.harvest_source exactly as
a nightly run does, including the narrowing of `until` at the search cap (10,000 results per
query, as on Bluesky). The floor logs in with plain requests, fetches the same pages (same
parameters, cursor paging, the same narrowing), parses them with json and inserts the same rows
into the same posts table with raw sqlite3 executemany: the least work any harvester could do.
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

from harvester import bluesky as hb  # noqa: E402
from harvester.registry import BuildContext  # noqa: E402
from harvester.retry import RetryPolicy  # noqa: E402
from harvester.runner import harvest_source  # noqa: E402
from innoverheid.config import Config  # noqa: E402
from innoverheid.sandbox.bluesky import BlueskyServer  # noqa: E402
from innoverheid.sandbox.sample import SamplePost  # noqa: E402
from storage import open_database  # noqa: E402

from bench.common import post_text  # noqa: E402
from bench.common import report as print_report  # noqa: E402



def generate(n: int) -> list[SamplePost]:
    """n searchable posts (some replies and quotes); reposts are left out: search never returns them."""
    rng = random.Random(42)
    start = datetime.now(UTC) - timedelta(days=6)
    posts: list[SamplePost] = []
    for i in range(n):
        user = rng.randint(0, 5000)
        ref = f"b{rng.randrange(i)}" if i > 10 and rng.random() < 0.2 else None
        reply = ref is not None and rng.random() < 0.5
        posts.append(SamplePost(
            id=f"b{i}", text=post_text(rng),
            author=f"user{user}", author_name=f"Gebruiker {user}",
            created_at=start + timedelta(seconds=20 * i),
            reply_to=ref if reply else None, quote_of=None if reply else ref,
            likes=rng.randint(0, 40), reposts=rng.randint(0, 5)))
    return posts


def harvest(server: BlueskyServer, state_dir: Path, db_path: Path) -> tuple[float, int]:
    config: dict = {}
    env: dict[str, str] = {}
    server.configure(config, env)
    cfg = Config.model_validate(config)
    ctx = BuildContext(cfg=cfg, env=env, policy=RetryPolicy.from_config(cfg.harvest), state_dir=state_dir)
    source = hb.build(ctx)
    db = open_database(f"sqlite:///{db_path}")
    t0 = time.perf_counter()
    report = harvest_source(db, source, ["innoverheid"])
    seconds = time.perf_counter() - t0
    db.dispose()
    if report.status != "ok":
        raise SystemExit(f"harvest failed: {report.line()}")
    return seconds, report.new


def floor(server: BlueskyServer, db_path: Path) -> tuple[float, int]:
    import requests

    open_database(f"sqlite:///{db_path}").dispose()  # the same schema, from our migrations
    con = sqlite3.connect(db_path, isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=NORMAL")
    sql = ("INSERT OR IGNORE INTO posts (source, source_id, text, author_id, author_handle, created_at, lang,"
           " hashtags, raw, reply_to, is_repost, like_count, harvested_at)"
           " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)")
    session = requests.Session()
    now = time.strftime("%Y-%m-%d %H:%M:%S.000000", time.gmtime())
    t0 = time.perf_counter()
    login = session.post(f"{server.url}/xrpc/com.atproto.server.createSession", timeout=30,
                         json={"identifier": server.handle, "password": server.password}).json()
    headers = {"Authorization": f"Bearer {login['accessJwt']}"}
    params = {"q": "#innoverheid", "tag": "innoverheid", "sort": "latest", "limit": 100}
    rows, until, cursor = 0, None, None
    while True:
        extra = {**({"until": until} if until else {}), **({"cursor": cursor} if cursor else {})}
        body = json.loads(session.get(f"{server.url}/xrpc/app.bsky.feed.searchPosts", headers=headers,
                                      timeout=30, params={**params, **extra}).content)
        posts = body.get("posts", [])
        batch = [("bluesky", p["uri"], p["record"]["text"], p["author"]["did"], p["author"]["handle"],
                  p["record"]["createdAt"], (p["record"].get("langs") or [None])[0], "innoverheid",
                  json.dumps(p, ensure_ascii=False), p["record"].get("reply", {}).get("parent", {}).get("uri"),
                  False, p.get("likeCount"), now) for p in posts]
        con.execute("BEGIN")
        rows += con.executemany(sql, batch).rowcount
        con.execute("COMMIT")
        cursor = body.get("cursor")
        if cursor:
            continue
        if not posts or (int(extra.get("cursor", 0)) + len(posts)) < 10000:
            break
        until, cursor = posts[-1]["record"]["createdAt"], None  # the cap: narrow and ask again
    seconds = time.perf_counter() - t0
    con.close()
    return seconds, rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--posts", type=int, default=20000)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    posts = generate(args.posts)
    with tempfile.TemporaryDirectory() as tmp, BlueskyServer(posts) as server:
        f_seconds, f_rows = floor(server, Path(tmp) / "floor.db")
        h_seconds, h_rows = harvest(server, Path(tmp) / "state", Path(tmp) / "harvest.db")
    if (h_rows, f_rows) != (args.posts, args.posts):
        raise SystemExit(f"expected {args.posts} posts, harvested {h_rows}, floor {f_rows}")
    rate, floor_rate = h_rows / h_seconds, f_rows / f_seconds
    return print_report("bluesky", rate, floor_rate)


if __name__ == "__main__":
    sys.exit(main())
