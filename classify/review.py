"""Human review: the posts the model is least sure about, labelled by a person.

`least_sure` walks the model's labels from the lowest confidence up and keeps one post per
near-duplicate group (posts.group_id when set, else the post itself), skipping groups a person
already labelled. A person's labels are stored with who and when (storage.labels), always win
over the model's, and feed the next `train`. Labelling the shown post labels its whole
near-duplicate group: they say the same thing.

The same round trip works through a spreadsheet: `export_csv` writes the list with an empty
`labels` column; a person fills it in (label names separated by ';', primary first); and
`import_csv` stores every filled-in row, reporting bad rows by line number.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import and_, exists, func, or_, select

from classify.data import check_labels
from classify.model import LABELS
from storage import Database
from report.export import neutralise
from storage.labels import set_person_labels
from storage.models import Label, Post

CSV_COLUMNS = ["post_id", "text", "model_labels", "confidence", "labels", "who"]
_SCAN = 2000


@dataclass
class ReviewItem:
    post_id: int
    group: int
    text: str
    model_labels: list[str]
    confidence: float


@dataclass
class ImportSummary:
    stored: int = 0
    unchanged_blank: int = 0
    problems: list[tuple[int, str]] = field(default_factory=list)


def _person_labelled_groups():
    posts = Post.__table__
    person = Label.__table__.alias("person")  # an alias: the outer query reads the labels table too
    other = posts.alias("other")
    group_of = func.coalesce(posts.c.group_id, posts.c.id)
    return exists().where(and_(
        person.c.origin == "person", person.c.post_id == other.c.id,
        or_(other.c.id == group_of, and_(other.c.group_id.is_not(None), other.c.group_id == posts.c.group_id)),
    ))


def least_sure(db: Database, limit: int = 20) -> list[ReviewItem]:
    """Up to `limit` posts, least confident first, one per near-duplicate group, none a person labelled."""
    posts, labels = Post.__table__, Label.__table__
    base = (select(posts.c.id, posts.c.group_id, posts.c.text, labels.c.confidence)
            .join(labels, labels.c.post_id == posts.c.id)
            .where(labels.c.origin == "model", labels.c.rank == 0, ~_person_labelled_groups())
            .order_by(labels.c.confidence.asc(), posts.c.id.asc()))
    chosen: list[ReviewItem] = []
    seen: set[int] = set()
    offset = 0
    with db.read() as conn:
        while len(chosen) < limit:
            rows = conn.execute(base.limit(_SCAN).offset(offset)).all()
            if not rows:
                break
            offset += len(rows)
            for r in rows:
                group = r.group_id if r.group_id is not None else r.id
                if group in seen:
                    continue
                seen.add(group)
                chosen.append(ReviewItem(r.id, group, r.text, [], float(r.confidence or 0.0)))
                if len(chosen) >= limit:
                    break
        ids = [c.post_id for c in chosen]
        model_labels: dict[int, list[str]] = {}
        for i in range(0, len(ids), 500):
            for pid, lab in conn.execute(select(labels.c.post_id, labels.c.label)
                                         .where(labels.c.origin == "model", labels.c.post_id.in_(ids[i:i + 500]))
                                         .order_by(labels.c.post_id, labels.c.rank)):
                model_labels.setdefault(pid, []).append(lab)
    for c in chosen:
        c.model_labels = model_labels.get(c.post_id, [])
    return chosen


def store_person_labels(db: Database, post_id: int, labels: list[str], who: str) -> int:
    """Store a person's labels for the post and every post in its near-duplicate group; returns how many."""
    labels = list(check_labels(labels))
    posts = Post.__table__
    with db.write() as conn:
        row = conn.execute(select(posts.c.id, posts.c.group_id).where(posts.c.id == post_id)).first()
        if row is None:
            raise KeyError(post_id)
        ids = [row.id]
        if row.group_id is not None:
            ids = [r[0] for r in conn.execute(select(posts.c.id).where(
                or_(posts.c.group_id == row.group_id, posts.c.id == row.group_id)))]
            ids = sorted(set(ids) | {row.id})
        for pid in ids:
            set_person_labels(conn, pid, labels, who)
    return len(ids)


def parse_answer(answer: str) -> list[str]:
    """A person's typed answer -> label list. Numbers (1-9, as shown) or names, separated by space/comma/;."""
    parts = [p for p in answer.replace(",", " ").replace(";", " ").split() if p]
    out = []
    for p in parts:
        if p.isdigit() and 1 <= int(p) <= len(LABELS):
            out.append(LABELS[int(p) - 1])
        elif p in LABELS:
            out.append(p)
        else:
            matches = [lab for lab in LABELS if lab.startswith(p)]
            if len(matches) != 1:
                raise ValueError(f"{p!r} is not a label number (1-{len(LABELS)}) or name")
            out.append(matches[0])
    return list(check_labels(out))


def export_csv(db: Database, out: Path, limit: int) -> int:
    """Write the review list to a CSV for a spreadsheet; returns the number of rows."""
    items = least_sure(db, limit)
    tmp = out.with_name(out.name + ".partial")
    with tmp.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(CSV_COLUMNS)
        for it in items:
            # inert in a spreadsheet; the post id, not the text, identifies the row
            w.writerow([it.post_id, neutralise(it.text), ";".join(it.model_labels), f"{it.confidence:.3f}", "", ""])
    tmp.replace(out)
    return len(items)


def _rows(path: Path) -> Iterator[tuple[int, dict]]:
    with path.open("r", newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        if not reader.fieldnames or "post_id" not in reader.fieldnames or "labels" not in reader.fieldnames:
            raise ValueError("the first row must name the columns, including post_id and labels "
                             "(export a file with 'innoverheid review --export FILE.csv' to start from)")
        for row in reader:
            yield reader.line_num, row


def import_csv(db: Database, path: Path, who: str, on_row: Callable[[], None] = lambda: None) -> ImportSummary:
    """Store the labels filled in on a review CSV; blank `labels` cells are left alone."""
    summary = ImportSummary()
    for line, row in _rows(path):
        on_row()
        raw = (row.get("labels") or "").strip()
        if not raw:
            summary.unchanged_blank += 1
            continue
        try:
            post_id = int(str(row.get("post_id") or "").strip())
        except ValueError:
            summary.problems.append((line, f"post_id {row.get('post_id')!r} is not a number"))
            continue
        try:
            labels = parse_answer(raw)
            store_person_labels(db, post_id, labels, (row.get("who") or "").strip() or who)
        except KeyError:
            summary.problems.append((line, f"post {post_id} is not in the database"))
            continue
        except ValueError as exc:
            summary.problems.append((line, str(exc)))
            continue
        summary.stored += 1
    return summary


HELP = ("Type the label numbers or names (primary first), e.g. '2 1' or 'leiderschap open_cultuur'; "
        "Enter accepts the model's labels, 's' skips, 'q' stops.")


def terminal_loop(db: Database, items: list[ReviewItem], who: str, ask: Callable[[str], str],
                  say: Callable[[str], None]) -> int:
    """Show each item and store the person's answer; returns how many posts were labelled."""
    say(HELP)
    say("  " + "  ".join(f"{i}={lab}" for i, lab in enumerate(LABELS, 1)))
    done = 0
    for n, it in enumerate(items, 1):
        say("")
        say(f"[{n}/{len(items)}] post {it.post_id}  model: {';'.join(it.model_labels) or '-'} "
            f"(confidence {it.confidence:.2f})")
        say(it.text)
        while True:
            answer = ask("labels").strip()
            if answer.lower() in ("q", "quit"):
                return done
            if answer.lower() in ("s", "skip"):
                break
            try:
                labels = parse_answer(answer) if answer else list(check_labels(it.model_labels))
            except ValueError as exc:
                say(f"  {exc}; {HELP}")
                continue
            store_person_labels(db, it.post_id, labels, who)
            done += 1
            say(f"  stored: {';'.join(labels)}")
            break
    return done
