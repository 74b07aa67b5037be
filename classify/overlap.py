"""Check that no near-duplicate straddles the seed corpus and the evaluation split.

Each text is normalised (classify.text: no campaign hashtag, URLs or mentions, lower case, no
accents) and turned into character 3-5-gram TF-IDF vectors; a seed post whose cosine with any
evaluation post reaches `THRESHOLD` is an overlap. Figures on the evaluation split are only
honest when none exists. Only the SEED side is ever printed or removed: the evaluation texts
stay unread, so nobody tunes on them by accident.

    python -m classify.overlap            # list offending seed posts; exit 1 if any
    python -m classify.overlap --remove   # also drop them from the seed files
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer

from classify.data import EVAL_FILE, seed_files
from classify.text import normalise

THRESHOLD = 0.75


@dataclass
class Overlap:
    seed_file: Path
    seed_line: int
    seed_id: str
    seed_text: str
    eval_id: str
    cosine: float


def _read(path: Path) -> list[tuple[int, dict]]:
    out = []
    with path.open(encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if line.strip():
                try:
                    out.append((n, json.loads(line)))
                except json.JSONDecodeError:
                    continue
    return out


def near_duplicates(texts: list[str], others: list[str], threshold: float = THRESHOLD) -> list[tuple[int, int, float]]:
    """(i, j, cosine) for each text i whose closest text j in `others` reaches the threshold."""
    if not texts or not others:
        return []
    a, b = [normalise(t) for t in texts], [normalise(t) for t in others]
    vec = TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5), lowercase=False, sublinear_tf=True).fit(a + b)
    A, B = vec.transform(a), vec.transform(b)
    out = []
    for start in range(0, A.shape[0], 1000):
        sims = (A[start:start + 1000] @ B.T).toarray()
        best = sims.argmax(axis=1)
        for i in np.flatnonzero(sims.max(axis=1) >= threshold):
            out.append((start + int(i), int(best[i]), float(sims[i, best[i]])))
    return out


def find_overlaps(seed_paths: list[Path] | None = None, eval_path: Path = EVAL_FILE,
                  threshold: float = THRESHOLD) -> list[Overlap]:
    seed_paths = seed_files() if seed_paths is None else seed_paths
    seed = [(p, n, rec) for p in seed_paths for n, rec in _read(p)]
    evals = [rec for _, rec in _read(eval_path)] if eval_path.is_file() else []
    pairs = near_duplicates([str(r.get("text", "")) for _, _, r in seed], [str(r.get("text", "")) for r in evals],
                            threshold)
    return [Overlap(seed[i][0], seed[i][1], str(seed[i][2].get("id")), seed[i][2].get("text", ""),
                    str(evals[j].get("id")), cos) for i, j, cos in pairs]


def remove(overlaps: list[Overlap]) -> int:
    """Rewrite each affected seed file without the offending lines; returns how many were dropped."""
    by_file: dict[Path, set[int]] = {}
    for o in overlaps:
        by_file.setdefault(o.seed_file, set()).add(o.seed_line)
    for path, lines in by_file.items():
        kept = [line for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(True), 1) if n not in lines]
        path.write_text("".join(kept), encoding="utf-8")
    return sum(len(v) for v in by_file.values())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threshold", type=float, default=THRESHOLD)
    ap.add_argument("--remove", action="store_true", help="drop the offending seed posts from the seed files")
    args = ap.parse_args(argv)
    overlaps = find_overlaps(threshold=args.threshold)
    for o in overlaps:
        print(f"{o.seed_file.name}:{o.seed_line} {o.seed_id} (cosine {o.cosine:.2f} with eval {o.eval_id}): "
              f"{o.seed_text}")
    print(f"{len(overlaps)} seed posts within cosine {args.threshold} of an evaluation post")
    if overlaps and args.remove:
        print(f"removed {remove(overlaps)} seed posts")
        return 0
    return 1 if overlaps else 0


if __name__ == "__main__":
    sys.exit(main())
