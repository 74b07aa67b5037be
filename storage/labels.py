"""Labels: the model's (with version and confidence) and a person's (with who and when).

A person's label always wins: `effective_labels` is the one place that decides, and every
stage (export, digest, review, training) reads labels through it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Connection, delete, insert, select

from storage.models import Label, utcnow

# The nine labels of the codebook, in charter order (interface.md). Defined once, here, because
# every stage reads labels through storage.
THEMES = (
    "open_cultuur",
    "leiderschap",
    "ruimte_voor_de_professional",
    "sturen_op_talent",
    "netwerken",
    "flexibilisering",
    "slimmer_organiseren",
)
OVERIG, GEEN_IDEE = "overig", "geen_idee"
LABELS = THEMES + (OVERIG, GEEN_IDEE)

labels_t = Label.__table__
_CHUNK = 500


@dataclass
class Effective:
    labels: list[str] = field(default_factory=list)  # primary first
    origin: str | None = None  # "person" | "model" | None (unlabelled)
    confidence: float | None = None
    model_version: str | None = None
    needs_review: bool = False
    created_by: str | None = None
    created_at: datetime | None = None

    @property
    def primary(self) -> str | None:
        return self.labels[0] if self.labels else None


def effective_labels(conn: Connection, post_ids: Sequence[int]) -> dict[int, Effective]:
    """The label set that counts for each post: the person's if any, else the model's."""
    rows_by_post: dict[int, list] = {}
    ids = list(post_ids)
    for i in range(0, len(ids), _CHUNK):
        chunk = ids[i : i + _CHUNK]
        rows = conn.execute(
            select(labels_t.c.post_id, labels_t.c.label, labels_t.c.rank, labels_t.c.origin,
                   labels_t.c.model_version, labels_t.c.confidence, labels_t.c.needs_review,
                   labels_t.c.created_by, labels_t.c.created_at)
            .where(labels_t.c.post_id.in_(chunk))
        )
        for r in rows:
            rows_by_post.setdefault(r.post_id, []).append(r)
    out: dict[int, Effective] = {}
    for pid, rows in rows_by_post.items():
        person = [r for r in rows if r.origin == "person"]
        chosen = person or [r for r in rows if r.origin == "model"]
        if not chosen:
            continue
        chosen.sort(key=lambda r: r.rank)
        first = chosen[0]
        out[pid] = Effective(
            labels=[r.label for r in chosen],
            origin=first.origin,
            confidence=1.0 if first.origin == "person" else first.confidence,
            model_version=first.model_version,
            needs_review=False if first.origin == "person" else bool(first.needs_review),
            created_by=first.created_by,
            created_at=first.created_at,
        )
    return out


@dataclass
class Prediction:
    post_id: int
    labels: list[str]
    confidence: float
    needs_review: bool


def replace_model_labels(conn: Connection, predictions: Iterable[Prediction], model_version: str) -> int:
    """Store the model's answer for each post, replacing its earlier model labels (one batch, executemany)."""
    preds = list(predictions)
    ids = [p.post_id for p in preds]
    for i in range(0, len(ids), _CHUNK):
        conn.execute(delete(labels_t).where(labels_t.c.origin == "model", labels_t.c.post_id.in_(ids[i : i + _CHUNK])))
    now = utcnow()
    rows = [
        {"post_id": p.post_id, "label": lab, "rank": rank, "origin": "model", "model_version": model_version,
         "confidence": p.confidence, "needs_review": p.needs_review, "created_at": now, "created_by": "model"}
        for p in preds for rank, lab in enumerate(p.labels)
    ]
    if rows:
        conn.execute(insert(labels_t), rows)
    return len(preds)


def set_person_labels(conn: Connection, post_id: int, labels: Sequence[str], who: str) -> None:
    """A person's judgement replaces their earlier one for this post; the model's stays for the record."""
    conn.execute(delete(labels_t).where(labels_t.c.origin == "person", labels_t.c.post_id == post_id))
    now = utcnow()
    conn.execute(insert(labels_t), [
        {"post_id": post_id, "label": lab, "rank": rank, "origin": "person", "model_version": None,
         "confidence": 1.0, "needs_review": False, "created_at": now, "created_by": who}
        for rank, lab in enumerate(labels)
    ])
