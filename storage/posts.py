"""Writing posts: executemany upserts, sightings and bookmarks in one transaction per page."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, delete, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from storage.models import Bookmark, HarvestRun, Post, Sighting, utcnow

posts_t = Post.__table__
sightings_t = Sighting.__table__
runs_t = HarvestRun.__table__
bookmarks_t = Bookmark.__table__

_IN_CHUNK = 5000  # bound parameters per IN (...) query: under SQLite's 32766 and PostgreSQL's 65535
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


class _BulkInsert:
    """INSERT ... ON CONFLICT DO NOTHING through the driver's executemany.

    SQLAlchemy's per-row parameter processing costs more than SQLite's own insert; here the
    column types' bind processors are looked up once and applied only where a type needs one.
    """

    def __init__(self, conn: Connection, table, columns: Sequence[str], conflict: Sequence[str]):
        dialect = conn.dialect
        mark = "?" if dialect.paramstyle == "qmark" else "%s"
        self.sql = (f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES ({', '.join([mark] * len(columns))}) "
                    f"ON CONFLICT ({', '.join(conflict)}) DO NOTHING")
        self.columns = list(columns)
        self.procs = [(i, table.c[c].type._cached_bind_processor(dialect)) for i, c in enumerate(columns)]
        self.procs = [(i, p) for i, p in self.procs if p is not None]

    def run(self, conn: Connection, rows: Iterable[dict[str, Any]]) -> int:
        params = []
        cols, procs = self.columns, self.procs
        last_in: list = [object()] * len(cols)
        last_out: list = [None] * len(cols)
        for row in rows:
            values = [row.get(c) for c in cols]
            for i, proc in procs:
                v = values[i]
                # A batch shares one harvested_at/seen_at: convert the same object once.
                if v is last_in[i]:
                    values[i] = last_out[i]
                else:
                    last_in[i], last_out[i] = v, proc(v)
                    values[i] = last_out[i]
            params.append(values)
        if not params:
            return 0
        cur = conn.connection.driver_connection.cursor()
        try:
            cur.executemany(self.sql, params)
            return cur.rowcount
        finally:
            cur.close()


_POST_COLUMNS = [c.name for c in posts_t.c if c.name not in ("id", "group_id")]


def insert_posts(
    conn: Connection, rows: list[dict[str, Any]], *, refresh_metrics: bool = False,
    harvested_at: datetime | None = None,
) -> tuple[dict[tuple[str, str], int], int, int]:
    """Insert rows not yet stored; returns ({(source, source_id): post_id}, n_new, n_known).

    Duplicates inside the batch count once. With refresh_metrics the engagement counts of
    posts are updated (likes grow after the first harvest).
    """
    when = harvested_at or utcnow()
    unique: dict[tuple[str, str], dict] = {}
    for row in rows:
        unique.setdefault((row["source"], row["source_id"]), row)
    if not unique:
        return {}, 0, 0
    for row in unique.values():
        row.setdefault("harvested_at", when)
    n_new = _BulkInsert(conn, posts_t, _POST_COLUMNS, ["source", "source_id"]).run(conn, unique.values())
    ids: dict[tuple[str, str], int] = {}
    by_source: dict[str, list[str]] = {}
    for source, sid in unique:
        by_source.setdefault(source, []).append(sid)
    for source, sids in by_source.items():
        ids.update({(source, sid): pid for sid, pid in existing_ids(conn, source, sids).items()})
    if refresh_metrics and n_new < len(unique):  # only already-known posts can have stale counts
        updates = [
            {"b_id": ids[key], **{m: r.get(m) for m in _METRICS}}
            for key, r in unique.items()
            if key in ids and any(r.get(m) is not None for m in _METRICS)
        ]
        if updates:
            conn.execute(
                update(posts_t).where(posts_t.c.id == bindparam("b_id")).values(
                    **{m: bindparam(m) for m in _METRICS}),
                updates,
            )
    return ids, n_new, len(unique) - n_new


def record_sightings(conn: Connection, run_id: int, post_ids: Iterable[int]) -> None:
    when = utcnow()
    _BulkInsert(conn, sightings_t, ["run_id", "post_id", "seen_at"], ["run_id", "post_id"]).run(
        conn, ({"run_id": run_id, "post_id": pid, "seen_at": when} for pid in set(post_ids)))


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
