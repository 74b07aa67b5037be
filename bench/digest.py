"""Benchmark: near-duplicate grouping and the digest over 1,000,000 labelled posts.

    python bench/digest.py [--posts 1000000] [--new 10000] [--db PATH] [--keep]

Generates posts with labels straight into a SQLite file (raw sqlite3 executemany: ideas,
reposts, quote-posts, cross-posts and light rewordings, on three platforms), then measures in
a fresh child process each:
  1. grouping from scratch (every post without a group) + the digest,
  2. the incremental case: `--new` more posts arrive, grouping + the digest again.
Each line prints the wall time and the child's peak memory (getrusage ru_maxrss) beside the
targets from issue 5: 60 s and 1.5 GB for the digest over a million posts.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TARGET_S, TARGET_MB = 60.0, 1536.0
from storage.labels import THEMES  # noqa: E402
_WHO = ["teams", "managers", "collega's", "beleidsmedewerkers", "nieuwe medewerkers", "gemeenten", "provincies",
        "ministeries", "waterschappen", "inspecteurs", "leidinggevenden", "trainees", "wethouders", "directeuren",
        "projectleiders", "adviseurs", "klantmedewerkers", "juristen", "ict-afdelingen", "stagiairs"]
_DO = {
    "open_cultuur": ["hun fouten openlijk bespreken", "rapporten meteen online zetten", "concepten delen",
                     "tegenspraak organiseren", "hun agenda openbaar maken", "experimenten eerlijk evalueren"],
    "leiderschap": ["eerst honderd dagen luisteren", "vertrouwen geven en loslaten", "het goede voorbeeld geven",
                    "innovators dekken", "obstakels opruimen", "zichtbaar zijn op de werkvloer"],
    "ruimte_voor_de_professional": ["zelf beslissen over maatwerk", "een eigen budget krijgen",
                                    "afwijken van het protocol", "10 procent tijd voor eigen ideeen krijgen",
                                    "minder registreren", "zelf hun gereedschap kiezen"],
    "sturen_op_talent": ["werven op vaardigheden", "hun ontwikkelgesprek zelf leiden", "een mentor krijgen",
                         "aan job crafting doen", "een leerbudget krijgen", "zij-instromers een kans geven"],
    "netwerken": ["kennis delen met de buurgemeente", "een community of practice starten", "lunchroulette doen",
                  "samen met bewoners ontwerpen", "vragen stellen aan het hele netwerk", "over grenzen samenwerken"],
    "flexibilisering": ["thuiswerken als dat beter past", "flexibele werktijden krijgen",
                        "videobellen in plaats van reizen", "gedetacheerd worden bij een andere overheid",
                        "in een flexpool werken", "een eigen laptop gebruiken"],
    "slimmer_organiseren": ["de helft van de vergaderingen schrappen", "de parafenlijn inkorten",
                            "een login voor alles krijgen", "gegevens maar een keer uitvragen", "pilots opschalen",
                            "samen inkopen"],
    "overig": ["brieven in eenvoudige taal schrijven", "langer open zijn op zaterdag", "duurzaam inkopen",
               "vergunningen bundelen", "een burgerpanel betrekken", "betaaltermijnen halveren"],
}
_WHY = ["dan gaat het werk sneller", "dat scheelt veel tijd", "zo leren we van elkaar", "dat geeft vertrouwen",
        "zo houden we talent vast", "dat is goed voor de burger", "dan wordt vernieuwen normaal",
        "dat kost bijna niets",
        "zo voorkomen we dubbel werk", "dat maakt mensen trotser op hun werk", "het werkt al in Zweden",
        "probeer het een maand", "waarom kan dat nu nog niet", "dan blijft er meer tijd over voor inwoners"]
_OPEN = ["Laat", "Waarom laten we niet", "Idee: laat", "Voorstel: laat", "Stel je voor: laat", "Kunnen we"]
_NOISE = ["Leuke bijeenkomst vandaag in de Stampijfabriek", "Vanmiddag webinar over het charter, aanmelden via de site",
          "Wie heeft er voorbeelden voor het charter", "Dank aan iedereen die meedacht",
          "Slides van vandaag staan online"]
_SOURCES = [("x", 0.4), ("bluesky", 0.35), ("mastodon", 0.25)]
START = datetime(2013, 2, 4, tzinfo=timezone.utc)
_SYLLABLES = ("ver ge be ont over werk plan team raad taak net data open leer ruimte tijd geld regel proces "
              "klant dienst wijk stad land huis school zorg recht beleid keten pilot lab ken nis heid ing er "
              "lijk baar en isch tje de ste ig aar").split()
_LEXICON = sorted({"".join(random.Random(i).choices(_SYLLABLES, k=random.Random(-i).randint(2, 4)))
                   for i in range(6000)})


def _fmt(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%d %H:%M:%S.%f")


def _idea(rng: random.Random) -> tuple[str, list[str]]:
    r = rng.random()
    if r < 0.12:
        return f"{rng.choice(_NOISE)} ({rng.randint(1, 99999)})", ["geen_idee"]
    if r < 0.2:
        theme = "overig"
        labels = ["overig"]
    else:
        theme = rng.choice(THEMES)
        labels = [theme] + ([rng.choice([t for t in THEMES if t != theme])] if rng.random() < 0.2 else [])
    words = " ".join(rng.choice(_LEXICON) for _ in range(rng.randint(6, 14)))
    text = (f"{rng.choice(_OPEN)} {rng.choice(_WHO)} {rng.choice(_DO[theme])}: {words}, "
            f"{rng.choice(_WHY)}")
    return text, labels


def _reword(text: str, rng: random.Random) -> str:
    words = text.split()
    i = rng.randrange(len(words))
    words[i:i] = [rng.choice(["echt", "gewoon", "nou", "toch", "eindelijk"])]
    if rng.random() < 0.5:
        j = rng.randrange(len(words))
        words[j] = words[j].upper() if rng.random() < 0.5 else words[j] + "!"
    return " ".join(words)


def generate(path: Path, n_posts: int, *, first_id: int = 1, seed: int = 1, harvested: datetime | None = None) -> int:
    """Append n_posts posts (with model labels, 1 % also labelled by a person) to the SQLite file."""
    rng = random.Random(seed)
    con = sqlite3.connect(path)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=OFF")
    cols = ("id, source, source_id, url, author_handle, author_name, created_at, lang, text, hashtags, is_repost, "
            "repost_of, quote_of, like_count, repost_count, harvested_at, raw")
    posts, labels, ideas = [], [], _earlier_ideas(con, 20_000) if first_id > 1 else []
    pid = first_id
    n_authors = max(50, n_posts // 15)
    while pid < first_id + n_posts:
        r = rng.random()
        src = rng.choices([s for s, _ in _SOURCES], [w for _, w in _SOURCES])[0]
        author = f"user{rng.randrange(n_authors)}"
        created = START + timedelta(minutes=rng.randrange(60 * 24 * 70))
        repost_of = quote_of = None
        if ideas and r < 0.25:  # a repost of an earlier post on the same platform
            orig = ideas[rng.randrange(len(ideas))]
            text, labs, src = f"RT @{orig[3]}: {orig[1]}", orig[2], orig[4]
            repost_of = orig[0]
        elif ideas and r < 0.30:  # a quote-post
            orig = ideas[rng.randrange(len(ideas))]
            text, labs, src = f"Helemaal mee eens! {rng.randint(1, 99)}", orig[2], orig[4]
            quote_of = orig[0]
        elif ideas and r < 0.42:  # a light rewording or a cross-post on another platform
            orig = ideas[rng.randrange(len(ideas))]
            text = _reword(orig[1], rng) if rng.random() < 0.6 else orig[1] + " https://example.org/c"
            labs = orig[2]
        else:
            text, labs = _idea(rng)
        sid = f"{src}:{pid}"
        if repost_of is None and quote_of is None and len(ideas) < 400_000:
            ideas.append((sid, text, labs, author, src))
        likes = rng.randrange(30) if src != "mastodon" or rng.random() < 0.5 else None
        posts.append((pid, src, sid, f"https://{src}.example/{author}/{pid}", author, author.title(), _fmt(created),
                      "nl", text + " #innoverheid", "innoverheid", int(repost_of is not None), repost_of, quote_of,
                      None if repost_of else likes, None if repost_of else rng.randrange(10),
                      _fmt(harvested or created + timedelta(hours=3)), None))
        conf = rng.random() * 0.6 + 0.4
        for rank, lab in enumerate(labs):
            labels.append((pid, lab, rank, "model", "bench-1", conf, int(conf < 0.5), _fmt(created), "model"))
        if rng.random() < 0.01:
            labels.append((pid, labs[0], 0, "person", None, 1.0, 0, _fmt(created), "bench"))
        pid += 1
        if len(posts) >= 50_000:
            _flush(con, cols, posts, labels)
    _flush(con, cols, posts, labels)
    con.commit()
    con.close()
    return pid


def _earlier_ideas(con: sqlite3.Connection, n: int) -> list[tuple]:
    """Originals already stored, so new posts can repost and reword them (the incremental case)."""
    rows = con.execute("SELECT p.id, p.source_id, p.text, p.author_handle, p.source FROM posts p "
                       "WHERE p.is_repost = 0 AND p.quote_of IS NULL ORDER BY random() LIMIT ?", (n,)).fetchall()
    labs: dict[int, list[str]] = {}
    for pid, lab in con.execute("SELECT post_id, label FROM labels WHERE origin = 'model' AND post_id IN "
                                f"({','.join(str(r[0]) for r in rows)}) ORDER BY post_id, rank"):
        labs.setdefault(pid, []).append(lab)
    return [(sid, text.removesuffix(" #innoverheid"), labs.get(pid, ["geen_idee"]), author, src)
            for pid, sid, text, author, src in rows]


def _flush(con: sqlite3.Connection, cols: str, posts: list, labels: list) -> None:
    con.executemany(f"INSERT INTO posts ({cols}) VALUES ({','.join('?' * 17)})", posts)
    con.executemany("INSERT INTO labels (post_id, label, rank, origin, model_version, confidence, needs_review, "
                    "created_at, created_by) VALUES (?,?,?,?,?,?,?,?,?)", labels)
    posts.clear()
    labels.clear()


def _prepare(path: Path, n_posts: int) -> None:
    from storage import open_database

    open_database(f"sqlite:///{path}").dispose()  # schema through the real migrations
    generate(path, n_posts)
    metrics = {"eval": {"per_label": {t: {"precision": 0.8, "recall": 0.7, "f1": 0.75, "support": 40}
                                      for t in THEMES}}}
    con = sqlite3.connect(path)
    con.execute("INSERT INTO models (version, trained_at, path, metrics) VALUES (?,?,?,?)",
                ("bench-1", _fmt(START), None, json.dumps(metrics)))
    for src in ("x", "bluesky", "mastodon"):
        con.execute("INSERT INTO harvest_runs (source, hashtag, instance, started_at, finished_at, outcome, n_pages, "
                    "n_new, n_known, n_skipped, n_errors) VALUES (?,?,?,?,?,?,0,0,0,0,0)",
                    (src, "innoverheid", "", _fmt(START), _fmt(START), "ok"))
    con.commit()
    con.close()


def _child(path: Path, out: Path) -> None:
    """Runs in a fresh process: grouping, then the digest; prints one JSON line."""
    from classify.grouping import assign_groups
    from innoverheid.config import Config
    from report.digest import write_digest
    from storage import open_database

    db = open_database(f"sqlite:///{path}")
    cfg = Config()
    t0 = time.perf_counter()
    n = assign_groups(db)
    t1 = time.perf_counter()
    result = write_digest(cfg, db, out_dir=out)
    t2 = time.perf_counter()
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"grouped": n, "group_s": t1 - t0, "digest_s": t2 - t1, "peak_mb": peak_mb,
                      "ideas": result.n_ideas, "posts": result.n_posts}))


def _run_child(path: Path, out: Path) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--child", str(path), "--out", str(out)],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        sys.exit(f"child failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _report(label: str, r: dict) -> None:
    total = r["group_s"] + r["digest_s"]
    ok = "within" if total <= TARGET_S and r["peak_mb"] <= TARGET_MB else "OVER"
    print(f"{label}: grouped {r['grouped']:,} posts in {r['group_s']:.1f} s, digest in {r['digest_s']:.1f} s "
          f"(together {total:.1f} s, target {TARGET_S:.0f} s); peak memory {r['peak_mb']:.0f} MB "
          f"(target {TARGET_MB:.0f} MB): {ok} budget; {r['posts']:,} posts, {r['ideas']:,} ideas in the digest")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--posts", type=int, default=1_000_000)
    ap.add_argument("--new", type=int, default=10_000, help="posts added for the incremental measurement")
    ap.add_argument("--db", type=Path, help="SQLite file to create (default: a temporary file)")
    ap.add_argument("--keep", action="store_true", help="keep the database and the digest")
    ap.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        _child(args.child, args.out)
        return
    tmp = Path(tempfile.mkdtemp(prefix="innoverheid-bench-"))
    path = args.db or tmp / "bench.db"
    if path.exists():
        sys.exit(f"{path} exists; give a new --db path")
    print(f"machine: {os.cpu_count()} CPUs; python {sys.version.split()[0]}")
    t = time.perf_counter()
    _prepare(path, args.posts)
    print(f"generated {args.posts:,} posts with labels in {time.perf_counter() - t:.1f} s "
          f"({path.stat().st_size / 1e6:.0f} MB SQLite file; not part of the budget)")
    _report("from scratch", _run_child(path, tmp / "digest-1"))
    con = sqlite3.connect(path)
    next_id = con.execute("SELECT MAX(id) FROM posts").fetchone()[0] + 1
    con.close()
    generate(path, args.new, first_id=next_id, seed=2, harvested=datetime.now(timezone.utc))
    _report(f"incremental (+{args.new:,} posts)", _run_child(path, tmp / "digest-2"))
    if args.keep:
        print(f"kept: {tmp}")
    else:
        for p in sorted(tmp.rglob("*"), reverse=True):
            p.unlink() if p.is_file() else p.rmdir()
        tmp.rmdir()


if __name__ == "__main__":
    main()
