"""Benchmark: the theme classifier's speed and memory, each figure beside its target (issue 4).

    python bench/classify.py [--predict 50000] [--train 5000] [--posts 100000] [--full]

1. predict: `innoverheid predict FILE` end to end in a child process (read JSONL, label, write
   JSONL), on distinct posts made from the seed corpus; throughput with and without the
   start-up (imports + loading the model, measured on a one-line file).  Target >= 5,000 posts/s.
2. train: fitting the model on 5,000 labelled posts (the first 5,000 seed posts; reworded copies
   are added only when --train asks for more posts than the seed corpus holds).
   Target <= 60 s. `innoverheid train` also cross-validates (5 folds by default), which costs
   about five fits more; that figure is printed too.
3. classify: `classify_posts` over stored posts in a SQLite file, in a fresh child process per
   size, reporting wall time and the child's peak RSS (resource.getrusage ru_maxrss). Peak RSS
   that does not grow with the number of posts shows memory is bounded (posts are streamed in
   batches of classifier.batch_size); the 1,000,000-post time is extrapolated linearly from the
   largest size measured unless --full measures it.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TARGET_PREDICT, TARGET_TRAIN_S = 5000.0, 60.0
_EXTRA = ["echt waar", "vind ik", "serieus", "👍", "🙏", "#ambtenaar20", "#hnw", "@collega", "dus", "toch?",
          "of niet?", "🚀", "(draadje)", "imo", "graag", "nu echt", "#overheid", "#slimmerwerken"]


def variants(texts: list[str], n: int, seed: int = 0) -> list[tuple[int, str]]:
    """n distinct, realistic-looking posts, each (index of the seed text it came from, text): seed texts
    with a word dropped, a letter swap (typo), or an extra remark."""
    rnd = random.Random(seed)
    out: list[tuple[int, str]] = []
    seen: set[str] = set()
    while len(out) < n:
        src = rnd.randrange(len(texts))
        words = texts[src].split()
        if len(words) > 4 and rnd.random() < 0.5:
            del words[rnd.randrange(len(words))]
        if rnd.random() < 0.4:
            i = rnd.randrange(len(words))
            w = words[i]
            if len(w) > 3:
                j = rnd.randrange(len(w) - 1)
                words[i] = w[:j] + w[j + 1] + w[j] + w[j + 2:]
        words.insert(rnd.randrange(len(words) + 1), rnd.choice(_EXTRA))
        text = " ".join(words) + f" {len(out) % 997}" * (rnd.random() < 0.3)
        if text not in seen:
            seen.add(text)
            out.append((src, text))
    return out


def line(name: str, value: float, unit: str, target: str, ok: bool) -> None:
    print(f"{name:<52} {value:>12,.1f} {unit:<10} target {target:<12} {'OK' if ok else 'MISSED'}", flush=True)


def bench_predict(n: int, tmp: Path) -> None:
    from classify.data import load_seed

    texts = [t for _, t in variants([ex.text for ex in load_seed()], n)]
    big, small = tmp / "predict.jsonl", tmp / "one.jsonl"
    big.write_text("".join(json.dumps({"id": i, "text": t}, ensure_ascii=False) + "\n" for i, t in enumerate(texts)))
    small.write_text(json.dumps({"id": 0, "text": texts[0]}) + "\n")
    cmd = [sys.executable, "-m", "innoverheid.cli", "predict"]
    env = {"PATH": "/usr/bin:/bin", "INNOVERHEID_DATABASE_URL": f"sqlite:///{tmp / 'p.db'}", "HOME": str(tmp)}
    t0 = time.perf_counter()
    subprocess.run(cmd + [str(small)], check=True, stdout=subprocess.DEVNULL, env=env, cwd=tmp)
    startup = time.perf_counter() - t0
    t0 = time.perf_counter()
    with (tmp / "out.jsonl").open("w") as out:
        subprocess.run(cmd + [str(big)], check=True, stdout=out, env=env, cwd=tmp)
    total = time.perf_counter() - t0
    lines = sum(1 for _ in (tmp / "out.jsonl").open())
    assert lines == n, f"predict wrote {lines} lines for {n} posts"
    print(f"predict: {n:,} posts, start-up (imports + model load) {startup:.1f} s, total {total:.1f} s")
    line(f"predict throughput, {n:,} posts, without start-up", n / max(total - startup, 1e-9), "posts/s",
         ">= 5,000", n / max(total - startup, 1e-9) >= TARGET_PREDICT)
    line(f"predict throughput, {n:,} posts, end to end", n / total, "posts/s", "(for info)", True)


def bench_train(n: int) -> None:
    from classify.data import Example, load_seed
    from classify.train import DEFAULT_PARAMS, cross_validate, fit

    seed = load_seed()
    extra = variants([ex.text for ex in seed], max(0, n - len(seed)), seed=1)
    examples = (list(seed) + [Example(f"v{i}", text, seed[src].labels) for i, (src, text) in enumerate(extra)])[:n]
    t0 = time.perf_counter()
    fit(examples, DEFAULT_PARAMS)
    took = time.perf_counter() - t0
    line(f"train (fit) on {len(examples):,} posts", took, "s", "<= 60 s", took <= TARGET_TRAIN_S)
    t0 = time.perf_counter()
    cross_validate(examples, DEFAULT_PARAMS, folds=5)
    cv = time.perf_counter() - t0
    line("  + 5-fold cross-validation (what `train` prints)", cv, "s", "(for info)", True)


_CHILD = r"""
import json, resource, sys, time
sys.path.insert(0, sys.argv[2])
from innoverheid.config import Config
from storage import open_database
from classify.stage import classify_posts
cfg = Config(database=sys.argv[1])
db = open_database(sys.argv[1])
t0 = time.perf_counter()
rep = classify_posts(cfg, db)
took = time.perf_counter() - t0
print(json.dumps({"n": rep.classified, "s": took, "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def make_db(path: Path, n: int) -> None:
    import sqlite3
    from datetime import datetime, timezone

    from classify.data import load_seed
    from storage import open_database

    open_database(f"sqlite:///{path}").dispose()  # schema through the migrations
    texts = [t for _, t in variants([ex.text for ex in load_seed()], min(n, 200_000), seed=3)]
    now = datetime.now(timezone.utc).replace(tzinfo=None).isoformat(sep=" ")
    con = sqlite3.connect(path)
    con.executemany(
        "INSERT INTO posts (source, source_id, text, hashtags, is_repost, harvested_at) VALUES (?,?,?,?,?,?)",
        (("bench", f"b{i}", texts[i % len(texts)], "innoverheid", 0, now) for i in range(n)))
    con.commit()
    con.close()


def bench_classify(sizes: list[int], tmp: Path) -> None:
    results = []
    for n in sizes:
        db = tmp / f"classify_{n}.db"
        make_db(db, n)
        out = subprocess.run([sys.executable, "-c", _CHILD, f"sqlite:///{db}", str(ROOT)], check=True,
                             capture_output=True, text=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        assert r["n"] == n, r
        results.append(r)
        print(f"classify {n:>9,} stored posts: {r['s']:.1f} s ({n / r['s']:,.0f} posts/s), "
              f"peak RSS {r['rss_mb']:.0f} MB", flush=True)
        db.unlink()
    last = results[-1]
    if last["n"] >= 1_000_000:
        line("classify 1,000,000 stored posts (measured)", last["s"], "s", "(for info)", True)
    else:
        line(f"classify 1,000,000 stored posts (extrapolated from {last['n']:,})", last["s"] * 1_000_000 / last["n"],
             "s", "(for info)", True)
    growth = results[-1]["rss_mb"] - results[0]["rss_mb"]
    line(f"peak RSS growth from {results[0]['n']:,} to {results[-1]['n']:,} posts", growth, "MB",
         "~0 (bounded)", growth < 150)
    line("peak RSS, classify", results[-1]["rss_mb"], "MB", "(for info)", True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--predict", type=int, default=50_000)
    ap.add_argument("--train", type=int, default=5_000)
    ap.add_argument("--posts", type=int, default=100_000)
    ap.add_argument("--full", action="store_true", help="also classify 1,000,000 stored posts (slow)")
    ap.add_argument("--skip", action="append", default=[], choices=["predict", "train", "classify"])
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        if "predict" not in args.skip:
            bench_predict(args.predict, tmp)
        if "train" not in args.skip:
            bench_train(args.train)
        if "classify" not in args.skip:
            sizes = sorted({max(1000, args.posts // 5), args.posts} | ({1_000_000} if args.full else set()))
            bench_classify(sizes, tmp)
    print(f"bench process peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
