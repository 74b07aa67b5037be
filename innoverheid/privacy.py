"""Personal data under the AVG (GDPR): erase on request, keep no longer than needed, follow deletions.

Erasing a post removes its row, raw payload, labels and sightings (foreign keys cascade) and
the reposts that copy it; other posts that embed it (quotes, replies) lose their raw payload.
Every erasure is written to the audit log with counts and a keyed hash of the subject, never
the personal data itself.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from sqlalchemy import Connection, func, insert, or_, select, update

from storage import Database
from storage.models import AuditEntry, Label, Post, Sighting

log = logging.getLogger("innoverheid.privacy")
ERASED = "erased"  # stands in for a reference to an erased post
posts_t, labels_t, sightings_t, audit_t = Post.__table__, Label.__table__, Sighting.__table__, AuditEntry.__table__


@dataclass
class Erasure:
    posts: int = 0
    labels: int = 0
    sightings: int = 0
    scrubbed: int = 0  # other posts whose raw payload embedded an erased post
    by_source: dict[str, int] = field(default_factory=dict)

    def summary(self) -> str:
        srcs = ", ".join(f"{k} {v}" for k, v in sorted(self.by_source.items()))
        return (f"erased {self.posts} post(s){' (' + srcs + ')' if srcs else ''}, {self.labels} label(s), "
                f"{self.sightings} sighting(s); removed the embedded copy from {self.scrubbed} other post(s)")


def subject_hash(subject: str, env: dict | None = None, key_env: str = "INNOVERHEID_PSEUDONYM_KEY") -> str | None:
    """A keyed hash lets a repeated request be recognised; without a key we store nothing (a plain hash of a
    handle could be reversed by guessing)."""
    key = (env if env is not None else os.environ).get(key_env)
    if not key:
        return None
    # A key derived for the audit log, so its hashes cannot be matched to export pseudonyms.
    audit_key = hmac.new(key.encode(), b"innoverheid audit log", hashlib.sha256).digest()
    return hmac.new(audit_key, subject.encode(), hashlib.sha256).hexdigest()


def _erase_ids(conn: Connection, ids: Sequence[int]) -> Erasure:
    out = Erasure()
    ids = list(dict.fromkeys(ids))
    if not ids:
        return out
    for i in range(0, len(ids), 1000):
        chunk = ids[i : i + 1000]
        originals = conn.execute(select(posts_t.c.id, posts_t.c.source, posts_t.c.source_id)
                                 .where(posts_t.c.id.in_(chunk))).all()
        sids = [r.source_id for r in originals]
        # Reposts copy the erased text: they go too. Quotes and replies are someone else's words,
        # but their raw payload may embed the erased post: that copy is dropped.
        copies = [r.id for r in conn.execute(select(posts_t.c.id).where(posts_t.c.repost_of.in_(sids),
                                                                           posts_t.c.id.not_in(chunk)))]
        victims = chunk + copies
        out.labels += conn.execute(select(func.count()).select_from(labels_t)
                                   .where(labels_t.c.post_id.in_(victims))).scalar_one()
        out.sightings += conn.execute(select(func.count()).select_from(sightings_t)
                                      .where(sightings_t.c.post_id.in_(victims))).scalar_one()
        for source, n in conn.execute(select(posts_t.c.source, func.count()).where(posts_t.c.id.in_(victims))
                                      .group_by(posts_t.c.source)):
            out.by_source[source] = out.by_source.get(source, 0) + n
        # Explicit deletes (not only ON DELETE CASCADE) so SQLite files opened without foreign keys stay clean.
        conn.execute(labels_t.delete().where(labels_t.c.post_id.in_(victims)))
        conn.execute(sightings_t.delete().where(sightings_t.c.post_id.in_(victims)))
        out.posts += conn.execute(posts_t.delete().where(posts_t.c.id.in_(victims))).rowcount
        out.scrubbed += conn.execute(update(posts_t).where(
            or_(posts_t.c.quote_of.in_(sids), posts_t.c.reply_to.in_(sids)), posts_t.c.raw.is_not(None))
            .values(raw=None)).rowcount
        # References to an erased post name its author (a Bluesky uri holds the DID, a Mastodon uri
        # the user name): they become ERASED, so a reply still reads as a reply to something gone.
        for column in ("reply_to", "quote_of", "conversation_id"):
            conn.execute(update(posts_t).where(posts_t.c[column].in_(sids)).values({column: ERASED}))
    return out


def _audit(conn: Connection, action: str, reason: str, er: Erasure, subject: str | None) -> None:
    conn.execute(insert(audit_t).values(action=action, reason=reason, n_posts=er.posts, n_labels=er.labels,
                                        n_sightings=er.sightings, subject_hash=subject))


def forget_author(db: Database, handle: str, reason: str = "request of the person", env: dict | None = None,
                  key_env: str = "INNOVERHEID_PSEUDONYM_KEY") -> Erasure:
    handle = handle.strip().lstrip("@")
    with db.write() as conn:
        ids = [r for r in conn.execute(select(posts_t.c.id).where(or_(
            func.lower(posts_t.c.author_handle) == handle.lower(),
            func.lower(posts_t.c.author_handle) == "@" + handle.lower(),
            posts_t.c.author_id == handle))).scalars()]
        er = _erase_ids(conn, ids)
        _audit(conn, "forget_author", reason, er, subject_hash(handle.lower(), env, key_env))
    return er


def find_post_ids(conn: Connection, ref: str, source: str | None = None) -> list[int]:
    """A post by its source id, its URL, or 'source:source_id'."""
    conds = [posts_t.c.source_id == ref, posts_t.c.url == ref]
    if ":" in ref and not ref.startswith(("at://", "http")):
        src, sid = ref.split(":", 1)
        conds.append((posts_t.c.source == src) & (posts_t.c.source_id == sid))
    stmt = select(posts_t.c.id).where(or_(*conds))
    if source:
        stmt = stmt.where(posts_t.c.source == source)
    return list(conn.execute(stmt).scalars())


def forget_post(db: Database, ref: str, source: str | None = None, reason: str = "request",
                env: dict | None = None, key_env: str = "INNOVERHEID_PSEUDONYM_KEY") -> Erasure:
    with db.write() as conn:
        er = _erase_ids(conn, find_post_ids(conn, ref, source))
        _audit(conn, "forget_post", reason, er, subject_hash(ref, env, key_env))
    return er


def enforce_retention(cfg, db: Database, now: datetime | None = None) -> Erasure:
    """Erase posts older than privacy.retention_days (by posting date, else by harvest date)."""
    days = cfg.privacy.retention_days
    if not days:
        return Erasure()
    cutoff = (now or datetime.now(timezone.utc)) - timedelta(days=days)
    with db.write() as conn:
        ids = list(conn.execute(select(posts_t.c.id).where(
            func.coalesce(posts_t.c.created_at, posts_t.c.harvested_at) < cutoff)).scalars())
        er = _erase_ids(conn, ids)
        if er.posts:
            _audit(conn, "retention", f"older than {days} days", er, None)
    if er.posts:
        log.info("retention: %s", er.summary())
    return er


def deletion_check(cfg, db: Database, sources: list | None = None, now: datetime | None = None) -> Erasure:
    """Re-fetch the recent posts from each platform and erase those deleted at the source."""
    from harvester.base import MissingCredentials, SourceError

    if sources is None:
        from innoverheid.pipeline import build_enabled_sources

        sources = build_enabled_sources(cfg, db)
    if cfg.privacy.deletion_check_days <= 0:
        return Erasure()
    since = (now or datetime.now(timezone.utc)) - timedelta(days=cfg.privacy.deletion_check_days)
    total = Erasure()
    for src in sources:
        if isinstance(src, MissingCredentials) or not hasattr(src, "still_present"):
            continue
        with db.read() as conn:
            rows = conn.execute(select(posts_t.c.id, posts_t.c.source_id).where(
                posts_t.c.source == src.name, posts_t.c.is_repost.is_(False),
                func.coalesce(posts_t.c.created_at, posts_t.c.harvested_at) >= since)).all()
        if not rows:
            continue
        try:
            present = src.still_present([r.source_id for r in rows])
        except SourceError as exc:
            log.warning("deletion check for %s did not run: %s", src.name, exc)
            continue
        gone = [r.id for r in rows if r.source_id not in present]
        if gone:
            with db.write() as conn:
                er = _erase_ids(conn, gone)
                _audit(conn, "deleted_at_source", f"{src.name}: deleted by its author", er, None)
            total.posts += er.posts
            total.labels += er.labels
            total.sightings += er.sightings
            total.scrubbed += er.scrubbed
            for k, v in er.by_source.items():
                total.by_source[k] = total.by_source.get(k, 0) + v
    return total
