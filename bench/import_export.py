"""Benchmark: import and CSV export of N generated posts on SQLite, each beside its baseline.

    python bench/import_export.py [--posts 1000000]

Import is compared with raw sqlite3 executemany INSERT OR IGNORE of the same rows (read from
the same CSV); export with pandas (read_sql + to_csv) of the same rows. Each stage runs in its
own process so its peak memory (max RSS) is its own.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
WORDS = ("minder vergaderen meer thuiswerken open data leiderschap talent netwerk flexibel ruimte professional "
         "gemeente provincie ambtenaar idee charter vertrouwen lef experiment pilot ICT loket burger").split()


def generate(path: Path, n: int) -> None:
    rng = random.Random(42)
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "text", "author", "created_at", "url"])
        for i in range(n):
            text = " ".join(rng.choices(WORDS, k=rng.randint(8, 30))) + " #innoverheid"
            w.writerow([f"b{i}", text, f"user{rng.randint(0, 50_000)}",
                        f"2013-{rng.randint(2, 4):02d}-{rng.randint(1, 28):02d}T{rng.randint(0, 23):02d}:00:00Z",
                        f"https://example.org/p/{i}"])


def stage(name: str, csv_path: str, db_path: str, out_path: str) -> None:
    """Runs in a child process; prints a JSON line with seconds and rows."""
    t0 = time.perf_counter()
    rows = 0
    if name == "raw_import":
        sys.path.insert(0, str(REPO))
        from storage import open_database

        open_database(f"sqlite:///{db_path}").dispose()  # same schema, created by our migrations
        con = sqlite3.connect(db_path)
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("PRAGMA synchronous=NORMAL")
        t0 = time.perf_counter()
        # The same stored rows as the importer writes (text, author, date, url, hashtags, raw record),
        # with the least work: one tuple per row and INSERT OR IGNORE.
        sql = ("INSERT OR IGNORE INTO posts (source, source_id, text, author_handle, created_at, url, hashtags,"
               " raw, is_repost, harvested_at) VALUES (?,?,?,?,?,?,?,?,?,?)")
        now = time.strftime("%Y-%m-%d %H:%M:%S.000000", time.gmtime())
        with open(csv_path, newline="", encoding="utf-8") as fh:
            r = csv.DictReader(fh)
            batch = []
            for rec in r:
                batch.append(("import", rec["id"], rec["text"], rec["author"],
                              rec["created_at"].replace("T", " ").rstrip("Z") + ".000000", rec["url"], "innoverheid",
                              json.dumps(rec, ensure_ascii=False), 0, now))
                if len(batch) >= 20_000:
                    con.executemany(sql, batch)
                    rows += len(batch)
                    batch = []
            con.executemany(sql, batch)
            rows += len(batch)
        con.commit()
    elif name == "import":
        from harvester.importer import import_file
        from storage import open_database

        db = open_database(f"sqlite:///{db_path}")
        t0 = time.perf_counter()
        rows = import_file(db, Path(csv_path)).imported
    elif name == "export":
        from report.export import ExportFilter, export
        from storage import open_database

        db = open_database(f"sqlite:///{db_path}")
        t0 = time.perf_counter()
        rows = export(db, Path(out_path), "csv", ExportFilter())
    elif name == "pandas_export":
        import pandas as pd

        con = sqlite3.connect(db_path)
        df = pd.read_sql_query("SELECT * FROM posts", con)
        df.to_csv(out_path, index=False)
        rows = len(df)
    secs = time.perf_counter() - t0
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"stage": name, "seconds": secs, "rows": rows, "peak_mb": peak_mb}))


def run_stage(name: str, *args: str) -> dict:
    out = subprocess.run([sys.executable, __file__, "--stage", name, *args], capture_output=True, text=True,
                         cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    if out.returncode != 0:
        sys.exit(f"stage {name} failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--posts", type=int, default=1_000_000)
    ap.add_argument("--stage", help=argparse.SUPPRESS)
    ap.add_argument("rest", nargs="*", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.stage:
        stage(a.stage, *a.rest)
        return
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        src = t / "posts.csv"
        print(f"generating {a.posts:,} posts ...", flush=True)
        generate(src, a.posts)
        raw = run_stage("raw_import", str(src), str(t / "raw.db"), "")
        ours = run_stage("import", str(src), str(t / "ours.db"), "")
        exp = run_stage("export", "", str(t / "ours.db"), str(t / "ours.csv"))
        pdx = run_stage("pandas_export", "", str(t / "ours.db"), str(t / "pandas.csv"))
    imp_rate, raw_rate = ours["rows"] / ours["seconds"], raw["rows"] / raw["seconds"]
    exp_rate, pd_rate = exp["rows"] / exp["seconds"], pdx["rows"] / pdx["seconds"]
    ok = lambda cond: "OK" if cond else "BELOW TARGET"  # noqa: E731
    print(f"import: {imp_rate:,.0f} posts/s (baseline raw sqlite3 executemany {raw_rate:,.0f} posts/s; "
          f"ratio {imp_rate / raw_rate:.2f}x, target >= 0.25x) {ok(imp_rate >= 0.25 * raw_rate)}")
    print(f"export csv: {exp_rate:,.0f} posts/s (baseline pandas read_sql+to_csv {pd_rate:,.0f} posts/s; "
          f"ratio {exp_rate / pd_rate:.2f}x, target >= 0.5x) {ok(exp_rate >= 0.5 * pd_rate)}")
    print(f"export csv peak memory: {exp['peak_mb']:,.0f} MB (pandas {pdx['peak_mb']:,.0f} MB; target <= 1024 MB) "
          f"{ok(exp['peak_mb'] <= 1024)}")


if __name__ == "__main__":
    main()
