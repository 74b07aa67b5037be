"""Writing posts: executemany upserts, sightings and bookmarks in one transaction per page."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from storage.models import Bookmark, HarvestRun, Post, Sighting, utcnow

posts_t = Post.__table__
sightings_t = Sighting.__table__
runs_t = HarvestRun.__table__
bookmarks_t = Bookmark.__table__

_IN_CHUNK = 500  # bound parameters per IN (...) query: well under SQLite's limit
_METRICS = ("like_count", "repost_count", "reply_count", "quote_count")


def _dialect_insert(conn: Connection, table):
    return pg_insert(table) if conn.dialect.name == "postgresql" else sqlite_insert(table)


def _chunks(seq: Sequence, n: int) -> Iterable[Sequence]:
    for i in range(0, len(seq), n):
        yield seq[i : i + n]


def existing_ids(conn: Connection, source: str, source_ids: Sequence[str]) -> dict[str, int]:
    found: dict[str, int] = {}
    for chunk in _chunks(list(source_ids), _IN_CHUNK):
        rows = conn.execute(
            select(posts_t.c.source_id, posts_t.c.id).where(
                posts_t.c.source == source, posts_t.c.source_id.in_(chunk)
            )
        )
        found.update({sid: pid for sid, pid in rows})
    return found


def insert_posts(
    conn: Connection, rows: list[dict[str, Any]], *, refresh_metrics: bool = False,
    harvested_at: datetime | None = None,
) -> tuple[dict[tuple[str, str], int], int, int]:
    """Insert rows not yet stored; returns ({(source, source_id): post_id}, n_new, n_known).

    Duplicates inside the batch count once. With refresh_metrics the engagement counts of
    already-known posts are updated (likes grow after the first harvest).
    """
    when = harvested_at or utcnow()
    by_source: dict[str, dict[str, dict]] = {}
    for row in rows:
        by_source.setdefault(row["source"], {}).setdefault(row["source_id"], row)
    ids: dict[tuple[str, str], int] = {}
    n_new = n_known = 0
    for source, unique in by_source.items():
        known = existing_ids(conn, source, list(unique))
        fresh = [dict(r, harvested_at=when) for sid, r in unique.items() if sid not in known]
        if fresh:
            stmt = _dialect_insert(conn, posts_t).on_conflict_do_nothing(
                index_elements=["source", "source_id"]
            )
            conn.execute(stmt, fresh)
            after = existing_ids(conn, source, [r["source_id"] for r in fresh])
        else:
            after = {}
        n_known += len(known)
        n_new += len(after)
        if refresh_metrics and known:
            updates = [
                {"b_id": known[sid], **{m: r.get(m) for m in _METRICS}}
                for sid, r in unique.items()
                if sid in known and any(r.get(m) is not None for m in _METRICS)
            ]
            if updates:
                from sqlalchemy import bindparam

                conn.execute(
                    update(posts_t).where(posts_t.c.id == bindparam("b_id")).values(
                        **{m: bindparam(m) for m in _METRICS}
                    ),
                    updates,
                )
        ids.update({(source, sid): pid for sid, pid in {**known, **after}.items()})
    return ids, n_new, n_known


def record_sightings(conn: Connection, run_id: int, post_ids: Iterable[int]) -> None:
    rows = [{"run_id": run_id, "post_id": pid} for pid in set(post_ids)]
    if rows:
        stmt = _dialect_insert(conn, sightings_t).on_conflict_do_nothing(index_elements=["run_id", "post_id"])
        conn.execute(stmt, rows)


def get_bookmark(conn: Connection, source: str, hashtag: str, instance: str = "") -> dict | None:
    return conn.execute(
        select(bookmarks_t.c.state).where(
            bookmarks_t.c.source == source, bookmarks_t.c.hashtag == hashtag, bookmarks_t.c.instance == instance
        )
    ).scalar_one_or_none()


def set_bookmark(conn: Connection, source: str, hashtag: str, instance: str, state: dict) -> None:
    stmt = _dialect_insert(conn, bookmarks_t).values(
        source=source, hashtag=hashtag, instance=instance, state=state, updated_at=utcnow()
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=["source", "hashtag", "instance"], set_={"state": state, "updated_at": utcnow()}
    )
    conn.execute(stmt)


def start_run(conn: Connection, source: str, hashtag: str, instance: str = "", job_run_id: int | None = None) -> int:
    return conn.execute(
        insert(runs_t).values(source=source, hashtag=hashtag, instance=instance, started_at=utcnow(),
                              outcome="running", job_run_id=job_run_id).returning(runs_t.c.id)
    ).scalar_one()


def finish_run(conn: Connection, run_id: int, outcome: str, error: str | None = None, **counts: int) -> None:
    conn.execute(update(runs_t).where(runs_t.c.id == run_id).values(
        finished_at=utcnow(), outcome=outcome, error=error, **counts))


def add_run_counts(conn: Connection, run_id: int, **deltas: int) -> None:
    conn.execute(update(runs_t).where(runs_t.c.id == run_id).values(
        **{k: getattr(runs_t.c, k) + v for k, v in deltas.items()}))


def close_stale_runs(conn: Connection) -> int:
    """Runs left 'running' by a killed process become 'interrupted' (their pages are safe)."""
    return conn.execute(update(runs_t).where(runs_t.c.outcome == "running").values(
        outcome="interrupted", finished_at=utcnow())).rowcount


def delete_posts(conn: Connection, post_ids: Sequence[int]) -> int:
    n = 0
    for chunk in _chunks(list(post_ids), _IN_CHUNK):
        n += conn.execute(delete(posts_t).where(posts_t.c.id.in_(chunk))).rowcount
    return n
