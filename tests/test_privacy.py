"""AVG: erasure on request, retention, audit without personal data. Runs on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select, text

from harvester.base import Post
from innoverheid.config import Config
from innoverheid.privacy import enforce_retention, forget_author, forget_post
from storage import posts as q
from storage.labels import Prediction, replace_model_labels
from storage.models import AuditEntry, Post as PostRow

pytestmark = pytest.mark.postgres
NOW = datetime(2026, 11, 27, tzinfo=timezone.utc)


def _store(db, posts):
    with db.write() as conn:
        run = q.start_run(conn, "bluesky", "innoverheid")
        ids, _, _ = q.insert_posts(conn, [p.row() for p in posts])
        q.record_sightings(conn, run, ids.values())
        replace_model_labels(conn, [Prediction(i, ["netwerken"], 0.9, False) for i in ids.values()], "m1")
    return ids


def _count(db, table="posts"):
    with db.read() as conn:
        return conn.execute(text(f"select count(*) from {table}")).scalar_one()


def test_forget_author_erases_posts_reposts_labels_sightings_and_keeps_others(db):
    _store(db, [
        Post("bluesky", "at://anne/1", "Anne's idee #innoverheid", {"author": "anne.bsky.social"},
             author_handle="anne.bsky.social", author_name="Anne de Vries"),
        Post("bluesky", "at://bob/2", "", {"reposted": "at://anne/1"}, author_handle="bob.bsky.social",
             is_repost=True, repost_of="at://anne/1"),
        Post("bluesky", "at://carla/3", "Eens met Anne!", {"embed": "Anne de Vries: Anne's idee"},
             author_handle="carla.bsky.social", quote_of="at://anne/1"),
        Post("bluesky", "at://dirk/4", "Ander idee", {}, author_handle="dirk.bsky.social"),
    ])
    er = forget_author(db, "@Anne.bsky.social", env={"INNOVERHEID_PSEUDONYM_KEY": "k"})
    assert er.posts == 2 and er.labels == 2 and er.sightings == 2 and er.scrubbed == 1
    with db.read() as conn:
        left = dict(conn.execute(select(PostRow.__table__.c.source_id, PostRow.__table__.c.raw)).all())
        audit = conn.execute(select(AuditEntry.__table__)).mappings().one()
    assert set(left) == {"at://carla/3", "at://dirk/4"}
    assert left["at://carla/3"] is None  # the embedded copy of Anne's post is gone
    assert _count(db, "labels") == 2 and _count(db, "sightings") == 2
    assert audit["action"] == "forget_author" and audit["n_posts"] == 2
    assert "anne" not in " ".join(str(v) for v in audit.values()).lower()


def test_forget_post_by_id_or_url(db):
    _store(db, [Post("mastodon", "https://m.nl/users/a/statuses/1", "x", {}, url="https://m.nl/@a/1"),
                Post("mastodon", "https://m.nl/users/a/statuses/2", "y", {})])
    assert forget_post(db, "https://m.nl/@a/1").posts == 1
    assert forget_post(db, "mastodon:https://m.nl/users/a/statuses/2").posts == 1
    assert forget_post(db, "nothing-here").posts == 0
    assert _count(db) == 0 and _count(db, "audit_log") == 3


def test_retention_erases_only_old_posts(db):
    _store(db, [Post("x", "1", "oud", {}, created_at=NOW - timedelta(days=400)),
                Post("x", "2", "nieuw", {}, created_at=NOW - timedelta(days=10))])
    cfg = Config.model_validate({"privacy": {"retention_days": 365}})
    assert enforce_retention(cfg, db, now=NOW).posts == 1
    with db.read() as conn:
        assert conn.execute(select(PostRow.__table__.c.source_id)).scalars().all() == ["2"]
    assert enforce_retention(Config(), db, now=NOW).posts == 0  # no retention configured: nothing happens


def test_forget_command(workdir, run_cli):
    (workdir / "in.jsonl").write_text('{"text": "a", "author": "anne"}\n{"text": "b", "author": "bob"}\n')
    run_cli("import", "in.jsonl")
    result = run_cli("forget", "--author", "anne", "--yes")
    assert result.exit_code == 0 and "erased 1 post(s)" in result.stdout
    assert run_cli("forget").exit_code == 2
    assert run_cli("forget", "--author", "a", "--post", "b").exit_code == 2
    out = workdir / "o.csv"
    run_cli("export", "--out", str(out))
    assert "anne" not in out.read_text() and "bob" in out.read_text()
