"""The database schema, as SQLAlchemy 2 declarative models.

Bulk paths use the tables through Core (`Post.__table__`) for executemany speed; the ORM
classes are for readability elsewhere. Every change here needs an Alembic revision in
storage/migrations/versions (tests check that the two agree).
"""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class UTCDateTime(TypeDecorator):
    """Stores UTC; always hands back timezone-aware UTC datetimes, on SQLite as on PostgreSQL."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


class Base(DeclarativeBase):
    pass


class Post(Base):
    __tablename__ = "posts"
    __table_args__ = (
        UniqueConstraint("source", "source_id", name="uq_posts_source_source_id"),
        Index("ix_posts_created_at", "created_at"),
        Index("ix_posts_author_handle", "author_handle"),
        Index("ix_posts_group_id", "group_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(String(40))
    # Bluesky: at:// uri; Mastodon: the status `uri` (same post via two instances = one row); X: tweet id.
    source_id: Mapped[str] = mapped_column(String(512))
    url: Mapped[str | None] = mapped_column(Text)
    author_handle: Mapped[str | None] = mapped_column(String(255))
    author_name: Mapped[str | None] = mapped_column(String(255))
    author_id: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    lang: Mapped[str | None] = mapped_column(String(20))
    text: Mapped[str] = mapped_column(Text, default="")
    hashtags: Mapped[str] = mapped_column(Text, default="")  # lower-case, ';'-joined
    is_repost: Mapped[bool] = mapped_column(Boolean, default=False)
    repost_of: Mapped[str | None] = mapped_column(String(512))
    reply_to: Mapped[str | None] = mapped_column(String(512))
    quote_of: Mapped[str | None] = mapped_column(String(512))
    conversation_id: Mapped[str | None] = mapped_column(String(512))
    like_count: Mapped[int | None] = mapped_column(Integer)
    repost_count: Mapped[int | None] = mapped_column(Integer)
    reply_count: Mapped[int | None] = mapped_column(Integer)
    quote_count: Mapped[int | None] = mapped_column(Integer)
    instance: Mapped[str | None] = mapped_column(String(255))  # Mastodon instance that first showed it
    raw: Mapped[str | None] = mapped_column(Text)  # the payload exactly as the platform sent it (JSON)
    harvested_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Near-duplicate group: the id of the group's representative post (see classify/grouping.py).
    group_id: Mapped[int | None] = mapped_column(Integer)


class HarvestRun(Base):
    __tablename__ = "harvest_runs"
    __table_args__ = (Index("ix_harvest_runs_source_started", "source", "started_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(String(40))
    hashtag: Mapped[str] = mapped_column(String(255))
    instance: Mapped[str] = mapped_column(String(255), default="")
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # running | ok | failed | skipped | interrupted
    outcome: Mapped[str] = mapped_column(String(20), default="running")
    n_pages: Mapped[int] = mapped_column(Integer, default=0)
    n_new: Mapped[int] = mapped_column(Integer, default=0)
    n_known: Mapped[int] = mapped_column(Integer, default=0)
    n_skipped: Mapped[int] = mapped_column(Integer, default=0)
    n_errors: Mapped[int] = mapped_column(Integer, default=0)
    # Items the platform returned (kept, known, off-topic or malformed): X bills every one of them.
    n_read: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    error: Mapped[str | None] = mapped_column(Text)
    job_run_id: Mapped[int | None] = mapped_column(Integer)


class Sighting(Base):
    """Which harvest run saw which post: provenance and coverage."""

    __tablename__ = "sightings"

    run_id: Mapped[int] = mapped_column(ForeignKey("harvest_runs.id", ondelete="CASCADE"), primary_key=True)
    post_id: Mapped[int] = mapped_column(ForeignKey("posts.id", ondelete="CASCADE"), primary_key=True, index=True)
    seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Bookmark(Base):
    """Where the next harvest of (source, hashtag, instance) resumes; JSON state owned by the source."""

    __tablename__ = "bookmarks"

    source: Mapped[str] = mapped_column(String(40), primary_key=True)
    hashtag: Mapped[str] = mapped_column(String(255), primary_key=True)
    instance: Mapped[str] = mapped_column(String(255), primary_key=True, default="")
    state: Mapped[dict] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Label(Base):
    __tablename__ = "labels"
    __table_args__ = (Index("ix_labels_post_origin", "post_id", "origin"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    post_id: Mapped[int] = mapped_column(ForeignKey("posts.id", ondelete="CASCADE"))
    label: Mapped[str] = mapped_column(String(64))
    rank: Mapped[int] = mapped_column(Integer, default=0)  # 0 = primary theme
    origin: Mapped[str] = mapped_column(String(10))  # "model" | "person"
    model_version: Mapped[str | None] = mapped_column(String(64))
    confidence: Mapped[float | None] = mapped_column(Float)
    needs_review: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(255))  # person's name, or "model"


class ModelRecord(Base):
    __tablename__ = "models"

    version: Mapped[str] = mapped_column(String(64), primary_key=True)
    trained_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    path: Mapped[str | None] = mapped_column(Text)
    corpus_hash: Mapped[str | None] = mapped_column(String(128))
    metrics: Mapped[dict | None] = mapped_column(JSON)


class JobRun(Base):
    """One run of a scheduled or manual job (the nightly pipeline, a weekly digest ...)."""

    __tablename__ = "job_runs"
    __table_args__ = (Index("ix_job_runs_job_started", "job", "started_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job: Mapped[str] = mapped_column(String(100))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    outcome: Mapped[str] = mapped_column(String(20), default="running")  # ok|partial|failed|skipped|running
    counts: Mapped[dict | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)
    host: Mapped[str | None] = mapped_column(String(255))
    pid: Mapped[int | None] = mapped_column(Integer)


class Lease(Base):
    """A lock with an expiry, so a killed process cannot block the next run forever."""

    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    owner: Mapped[str] = mapped_column(String(255))
    acquired_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)


class AuditEntry(Base):
    """What was erased and why, without the personal data itself (AVG accountability)."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    action: Mapped[str] = mapped_column(String(50))  # forget_author | forget_post | retention | deleted_at_source
    reason: Mapped[str | None] = mapped_column(Text)
    n_posts: Mapped[int] = mapped_column(Integer, default=0)
    n_labels: Mapped[int] = mapped_column(Integer, default=0)
    n_sightings: Mapped[int] = mapped_column(Integer, default=0)
    # A keyed hash of the subject, so a repeated request can be recognised without storing who it was.
    subject_hash: Mapped[str | None] = mapped_column(String(128))


class AlertState(Base):
    """Remembers what we alerted about, so a failure repeated every night is summarised, not re-sent."""

    __tablename__ = "alert_state"

    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    first_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    count: Mapped[int] = mapped_column(Integer, default=0)
    suppressed: Mapped[int] = mapped_column(Integer, default=0)
    message: Mapped[str | None] = mapped_column(Text)


class DigestRecord(Base):
    """Each digest written, with the idea groups it showed, for 'new since the previous digest'."""

    __tablename__ = "digests"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    out_dir: Mapped[str | None] = mapped_column(Text)
    group_ids: Mapped[list | None] = mapped_column(JSON)
