"""Rebuild the bundled starter model from the seed corpus (what ships in classify/models/starter).

    python -m classify.starter

Trains on classify/data/seed/*.jsonl with the default parameters, every line as written (`innoverheid
train --seed-only` also merges a text that recurs across files, such as '👀', into one example, so
its model differs slightly), and records in model.json: the 5-fold cross-validated figures, the
leave-one-writer-out figures (each seed file was written by a different person, so this is
the closest the seed corpus gets to "posts by someone the model never read"), and, for
reporting only, the figures on the held-out evaluation split classify/data/eval.jsonl, which
is never used to train or tune anything.
"""

from __future__ import annotations

import os
import sys

from classify import store
from classify.data import EVAL_FILE, LineProblems, load_seed, read_labelled, seed_files
from classify.metrics import render, score
from classify.model import decide
from classify.train import DEFAULT_PARAMS, out_of_fold, train


def writer_groups() -> list[str]:
    """The seed file each example of load_seed() came from, in the same order."""
    groups: list[str] = []
    for path in seed_files():
        problems = LineProblems()
        groups += [path.stem] * len(read_labelled(path, problems))
    return groups


def main() -> int:
    examples = load_seed()
    say = print
    say(f"seed corpus: {len(examples)} posts from {len(seed_files())} files")
    jobs = os.cpu_count() or 1  # folds are independent and deterministic: same figures, sooner
    result = train(examples, DEFAULT_PARAMS, note="starter model: trained on the bundled seed corpus only",
                   n_jobs=jobs)
    say(render(result.cv, "5-fold cross-validation on the seed corpus:"))
    groups = writer_groups()
    pred = out_of_fold(examples, DEFAULT_PARAMS, groups=groups, n_jobs=jobs)
    held_out = score([list(e.labels) for e in examples], pred)
    say(render(held_out, "leave-one-writer-out cross-validation on the seed corpus:"))
    result.meta["metrics"]["writer_held_out"] = held_out.to_dict()
    # Per writer: how far a new writer's posts may land from the average.
    per_writer = {}
    for name in sorted(set(groups), key=lambda n: (len(n), n)):
        rows = [i for i, g in enumerate(groups) if g == name]
        rep = score([list(examples[i].labels) for i in rows], [pred[i] for i in rows])
        per_writer[name] = {k: round(getattr(rep, k), 4)
                            for k in ("theme_macro_f1", "geen_idee_f1", "primary_accuracy")}
        say(f"  {name:8s} posts {len(rows):4d}  theme macro-F1 {rep.theme_macro_f1:.3f}  "
            f"geen_idee F1 {rep.geen_idee_f1:.3f}  primary-theme accuracy {rep.primary_accuracy:.3f}")
    result.meta["metrics"]["writer_held_out_per_writer"] = per_writer
    if EVAL_FILE.is_file():
        problems = LineProblems()
        evals = read_labelled(EVAL_FILE, problems)
        predicted = decide(result.pipeline, [e.text for e in evals])
        rep = score([list(e.labels) for e in evals], [d.labels for d in predicted])
        say(render(rep, f"held-out evaluation split {EVAL_FILE.name} (never trained or tuned on):"))
        result.meta["metrics"]["eval"] = rep.to_dict()
    store.save(result.pipeline, result.meta, store.STARTER_DIR)
    say(f"starter model {result.meta['version']} written to {store.STARTER_DIR}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
