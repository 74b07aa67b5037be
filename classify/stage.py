"""The classify stage: label stored posts with the current model, a batch at a time.

Posts are read by keyset paging on their id, `batch_size` at a time, so memory stays flat
however many posts the database holds (1,000,000 included). Each batch is predicted and its
labels written in one transaction: an interrupted run keeps what it finished, and the next run
picks up where it stopped, because by default only posts without a label from the current
model version are read. `all=True` re-labels every post.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import and_, exists, select

from classify import store
from storage import Database
from storage.labels import Prediction, replace_model_labels
from storage.models import Label, ModelRecord, Post

log = logging.getLogger(__name__)


@dataclass
class ClassifyReport:
    model_version: str
    classified: int = 0
    needs_review: int = 0
    batches: int = 0


def register_model(db: Database, model: store.LoadedModel) -> None:
    """Record the model in the `models` table once (version, where it lives, corpus hash, figures)."""
    t = ModelRecord.__table__
    with db.write() as conn:
        if conn.execute(select(t.c.version).where(t.c.version == model.version)).first() is None:
            conn.execute(t.insert().values(version=model.version, path=str(model.path),
                                           corpus_hash=model.meta.get("corpus_hash"),
                                           metrics=model.meta.get("metrics")))


def _batch_query(version: str, relabel_all: bool, after: int, size: int):
    posts, labels = Post.__table__, Label.__table__
    stmt = select(posts.c.id, posts.c.text).where(posts.c.id > after).order_by(posts.c.id).limit(size)
    if not relabel_all:
        done = exists().where(and_(labels.c.post_id == posts.c.id, labels.c.origin == "model",
                                   labels.c.model_version == version))
        stmt = stmt.where(~done)
    return stmt


def count_todo(db: Database, version: str, relabel_all: bool = False) -> int:
    from sqlalchemy import func

    q = _batch_query(version, relabel_all, 0, 1).limit(None).order_by(None).subquery()
    with db.read() as conn:
        return int(conn.execute(select(func.count()).select_from(q)).scalar_one())


def classify_posts(cfg, db: Database, all: bool = False, on_progress: Callable[[int], None] = lambda n: None,
                   model: store.LoadedModel | None = None) -> ClassifyReport:
    """Label every post that has no label from the current model (all=True: every post)."""
    model = model or store.load_configured(cfg)
    register_model(db, model)
    size = cfg.classifier.batch_size
    min_conf = cfg.classifier.min_confidence
    report = ClassifyReport(model_version=model.version)
    last_id = 0
    while True:
        with db.read() as conn:
            rows = conn.execute(_batch_query(model.version, all, last_id, size)).all()
        if not rows:
            break
        last_id = rows[-1].id
        decisions = model.decide([r.text or "" for r in rows])
        preds = [Prediction(post_id=r.id, labels=d.labels, confidence=round(d.confidence, 6),
                            needs_review=d.confidence < min_conf) for r, d in zip(rows, decisions, strict=True)]
        with db.write() as conn:
            replace_model_labels(conn, preds, model.version)
        report.classified += len(preds)
        report.needs_review += sum(p.needs_review for p in preds)
        report.batches += 1
        on_progress(len(preds))
        del rows, decisions, preds
    log.info("classified %d posts with %s (%d for review)", report.classified, model.version, report.needs_review)
    return report
