"""Deterministic training: the same examples and parameters always give the same model.

Training data is the bundled seed corpus, plus any labelled JSONL files given with --data, plus
every post a person labelled in the database (`review`). When the same text appears twice, the
later source wins: a person's label overrides a file's, which overrides the seed's.

Every random choice is seeded (LinearSVC's random_state, the shuffled folds), the folds
themselves depend only on the examples' order, and the version id is a hash of the corpus, the
parameters and the scikit-learn version, so training the seed corpus again reproduces the
bundled starter model exactly (tests/test_classify_starter.py proves it).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np
import sklearn
from joblib import Parallel, delayed
from sklearn.model_selection import StratifiedKFold
from sqlalchemy import select

from classify.data import Example, corpus_hash
from classify.metrics import Report, score
from classify.model import build_pipeline, decide
from classify.text import normalise

# Chosen by leave-one-writer-out cross-validation on the seed corpus (see classify/data/README.md).
DEFAULT_PARAMS: dict = {
    "word_ngrams": (1, 2),
    "char_ngrams": (2, 5),
    "min_df": 2,
    "word_mode": "lemmas+concepts",
    "C_gate": 0.5,
    "C_theme": 0.5,
    "C_primary": 0.5,
    "primary_weight": 0.5,
    "primary_model": "svm+nb",
    "nb_alpha": 0.1,
}
CV_FOLDS = 5


@dataclass
class TrainResult:
    pipeline: object
    meta: dict
    cv: Report | None


def merge(*sources: Sequence[Example]) -> list[Example]:
    """All examples in order; for a repeated text (after normalisation) the later source's labels win."""
    position: dict[str, int] = {}
    out: list[Example | None] = []
    for source in sources:
        for ex in source:
            key = normalise(ex.text)
            if key in position:
                out[position[key]] = None
            position[key] = len(out)
            out.append(ex)
    return [ex for ex in out if ex is not None]


def person_examples(db) -> list[Example]:
    """Posts a person labelled in the database, each with that person's latest labels (primary first)."""
    from storage.models import Label, Post

    labels_t, posts_t = Label.__table__, Post.__table__
    stmt = (select(posts_t.c.id, posts_t.c.text, labels_t.c.label)
            .join(labels_t, labels_t.c.post_id == posts_t.c.id)
            .where(labels_t.c.origin == "person")
            .order_by(posts_t.c.id, labels_t.c.rank))
    by_post: dict[int, tuple[str, list[str]]] = {}
    with db.read() as conn:
        for pid, text, label in conn.execute(stmt):
            by_post.setdefault(pid, (text, []))[1].append(label)
    return [Example(f"post:{pid}", text, tuple(labels)) for pid, (text, labels) in by_post.items() if text]


def version_id(chash: str, params: dict) -> str:
    blob = json.dumps({"corpus": chash, "params": params, "sklearn": sklearn.__version__}, sort_keys=True,
                      default=list)
    return "charter-" + hashlib.sha256(blob.encode()).hexdigest()[:12]


def fit(examples: Sequence[Example], params: dict | None = None):
    """An untrained pipeline built from params, fitted on the examples (deterministic)."""
    pipe = build_pipeline(**(params or DEFAULT_PARAMS))
    pipe.fit([ex.text for ex in examples], [list(ex.labels) for ex in examples])
    return pipe


def _fold_labels(examples: Sequence[Example], train_rows, test_rows, params: dict | None) -> list[list[str]]:
    pipe = fit([examples[j] for j in train_rows], params)
    return [d.labels for d in decide(pipe, [examples[j].text for j in test_rows])]


def cross_validate(examples: Sequence[Example], params: dict | None = None, folds: int = CV_FOLDS,
                   groups: Sequence[str] | None = None,
                   on_fold: Callable[[int, int], None] = lambda i, n: None, n_jobs: int = 1) -> Report:
    """Out-of-fold predictions for every example, scored (see `out_of_fold`)."""
    pred = out_of_fold(examples, params, folds, groups, on_fold, n_jobs)
    return score([list(ex.labels) for ex in examples], pred)


def out_of_fold(examples: Sequence[Example], params: dict | None = None, folds: int = CV_FOLDS,
                groups: Sequence[str] | None = None,
                on_fold: Callable[[int, int], None] = lambda i, n: None, n_jobs: int = 1) -> list[list[str]]:
    """Each example's labels from a model that never saw it. Folds are stratified on the primary
    label, or one per group (e.g. per writer) when groups are given. With n_jobs > 1 folds are
    fitted in parallel processes; each fold is deterministic, so the answers are the same."""
    texts = [ex.text for ex in examples]
    primary = [ex.labels[0] for ex in examples]
    if groups is not None:
        g = np.asarray(groups)
        splits = [(np.flatnonzero(g != name), np.flatnonzero(g == name)) for name in sorted(set(groups))]
    else:
        splits = list(StratifiedKFold(n_splits=folds, shuffle=True, random_state=0).split(texts, primary))
    pred: list[list[str]] = [[] for _ in examples]
    if n_jobs == 1:
        results = (_fold_labels(examples, train, test, params) for train, test in splits)
    else:
        results = Parallel(n_jobs=n_jobs, return_as="generator")(
            delayed(_fold_labels)(examples, train, test, params) for train, test in splits)
    on_fold(0, len(splits))
    for i, ((_, test), labels) in enumerate(zip(splits, results, strict=True)):
        for j, lab in zip(test, labels, strict=True):
            pred[j] = lab
        if i + 1 < len(splits):
            on_fold(i + 1, len(splits))
    return pred


def train(examples: Sequence[Example], params: dict | None = None, cv_folds: int = CV_FOLDS,
          on_fold: Callable[[int, int], None] = lambda i, n: None, note: str = "", n_jobs: int = 1) -> TrainResult:
    """Cross-validate (unless cv_folds is 0), then fit on everything; returns the model and its metadata."""
    params = dict(params or DEFAULT_PARAMS)
    examples = list(examples)
    chash = corpus_hash(examples)
    report = cross_validate(examples, params, cv_folds, on_fold=on_fold, n_jobs=n_jobs) if cv_folds else None
    pipe = fit(examples, params)
    clf = pipe.named_steps["classify"]
    counts: dict[str, int] = {}
    for ex in examples:
        for lab in ex.labels:
            counts[lab] = counts.get(lab, 0) + 1
    meta = {
        "version": version_id(chash, params),
        "trained_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "corpus_hash": chash,
        "n_examples": len(examples),
        "label_counts": counts,
        "params": {k: list(v) if isinstance(v, tuple) else v for k, v in params.items()},
        "thresholds": {**clf.thresholds_, "gate": clf.gate_threshold_},
        "metrics": {"cv_folds": cv_folds, **(report.to_dict() if report else {})},
        "note": note,
    }
    return TrainResult(pipeline=pipe, meta=meta, cv=report)
