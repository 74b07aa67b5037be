"""Deletions at the source are followed (issue 7, point 5): innoverheid.privacy.deletion_check.

The three platforms' local servers, harvested into a real database and labelled; then some
posts are deleted at the source (Bluesky getPosts stops showing them, Mastodon's status lookup
forgets them, X's tweet lookup answers "Not Found"). The check runs as the nightly job runs
it: sources built from the config and the environment. Deleted posts go with their labels,
sightings and the reposts that copy them; posts still there stay; the audit log says what
was erased without saying whose; and a platform that errs leaves its posts as they are.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from harvester.retry import RetryPolicy
from innoverheid.config import Config
from innoverheid.pipeline import run_harvest
from innoverheid.privacy import deletion_check
from innoverheid.sandbox.bluesky import BlueskyServer
from innoverheid.sandbox.mastodon import MastodonFake
from innoverheid.sandbox.sample import SamplePost
from innoverheid.sandbox.x import XServer
from storage.labels import Prediction, replace_model_labels, set_person_labels
from storage.models import AuditEntry, Label, Post as PostRow, Sighting

pytestmark = pytest.mark.postgres
T0 = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
NOW = T0 + timedelta(days=1)  # the check looks back privacy.deletion_check_days (7)
PLATFORMS = ("bluesky", "mastodon", "x")
DELETED = ("p3", "p7", "old")  # deleted by their authors; "old" is older than the window


def posts_for(name: str) -> list[SamplePost]:
    posts = [SamplePost(id=f"p{i}", text=f"Idee {i} #innoverheid", author=f"auteur{i % 4}",
                        author_name=f"Auteur Nummer{i % 4}", created_at=T0 + timedelta(minutes=i),
                        instances=[["a.example", "b.example"], ["b.example"]][i % 2])
             for i in range(30)]  # Bluesky asks getPosts 25 at a time: two batches
    posts.append(SamplePost(id="old", text="Oud idee #innoverheid", author="oudgediende", author_name="Oud",
                            created_at=T0 - timedelta(days=30)))
    posts.append(SamplePost(id="quote", text="Dit dus! #innoverheid", author="citeerder", author_name="Citeerder",
                            created_at=T0 + timedelta(hours=1), quote_of="p3"))
    if name == "x":  # a retweet copies the text of what it retweets
        posts.append(SamplePost(id="rt", text="", author="retweeter", author_name="Retweeter",
                                created_at=T0 + timedelta(hours=2), repost_of="p3"))
    return posts


@dataclass
class World:
    cfg: Config
    env: dict[str, str]
    fakes: dict[str, object]
    ids: dict[str, dict[str, str]]  # platform -> sample id -> source_id

    def delete_at_source(self, name: str, sample_ids=DELETED) -> None:
        fake = self.fakes[name]
        if name == "x":
            fake.remove(list(sample_ids))
        else:
            for sid in sample_ids:
                fake.delete(sid)


def source_ids(name: str, fake, posts: list[SamplePost]) -> dict[str, str]:
    if name == "bluesky":
        return {p.id: fake.uris[p.id] for p in posts}
    if name == "x":
        return {p.id: fake.tweet_id(p.id) for p in posts}
    return {p.id: json.loads(fake.federation.status_bytes(fake.name, p.id))["uri"] for p in posts}


@pytest.fixture
def world(db, tmp_path, monkeypatch):
    """All three fakes harvested into `db`, every post labelled by the model and one by a person."""
    fakes = {"bluesky": BlueskyServer(posts_for("bluesky")).start(),
             "mastodon": MastodonFake(posts_for("mastodon")).start(),
             "x": XServer(posts_for("x")).start()}
    try:
        config: dict = {"harvest": {"timeout": 2, "max_retries": 1, "backoff_base": 0, "backoff_max": 0,
                                    "max_rate_limit_wait": 0, "state_dir": str(tmp_path / "state")}}
        env: dict[str, str] = {}
        for fake in fakes.values():
            fake.configure(config, env)
        for key, value in env.items():
            monkeypatch.setenv(key, value)  # the check builds its sources from the environment, as at night
        cfg = Config.model_validate(config)
        report = run_harvest(cfg, db, list(PLATFORMS), env=env, policy=RetryPolicy(max_retries=1, sleep=lambda s: 0))
        assert not report.failed
        ids = {n: source_ids(n, fakes[n], posts_for(n)) for n in PLATFORMS}
        with db.write() as conn:
            post_ids = conn.execute(select(PostRow.id)).scalars().all()
            replace_model_labels(conn, [Prediction(i, ["netwerken", "open_cultuur"], 0.8, False) for i in post_ids],
                                 "test-model")
            for name in PLATFORMS:
                set_person_labels(conn, _post_id(conn, name, ids[name]["p3"]), ["leiderschap"], "Redacteur")
        yield World(cfg, env, fakes, ids)
    finally:
        for fake in fakes.values():
            fake.stop()


def _post_id(conn, source: str, source_id: str) -> int:
    return conn.execute(select(PostRow.id).where(PostRow.source == source, PostRow.source_id == source_id)
                        ).scalar_one()


def snapshot(db) -> dict[tuple[str, str], dict]:
    """Per stored post: its raw payload and how many labels and sightings it has."""
    with db.read() as conn:
        posts = conn.execute(select(PostRow.id, PostRow.source, PostRow.source_id, PostRow.raw)).all()
        labels = dict(conn.execute(select(Label.post_id, func.count()).group_by(Label.post_id)).all())
        seen = dict(conn.execute(select(Sighting.post_id, func.count()).group_by(Sighting.post_id)).all())
    return {(p.source, p.source_id): {"raw": p.raw, "labels": labels.get(p.id, 0), "sightings": seen.get(p.id, 0)}
            for p in posts}


def audit_rows(db) -> list[dict]:
    with db.read() as conn:
        return [dict(r) for r in conn.execute(select(AuditEntry.__table__)).mappings()]


def personal_strings(db) -> set[str]:
    with db.read() as conn:
        rows = conn.execute(select(PostRow.author_handle, PostRow.author_name, PostRow.author_id, PostRow.text,
                                   PostRow.source_id, PostRow.url)).all()
    return {v for row in rows for v in row if v}


@pytest.fixture
def privacy_log(caplog):
    logger = logging.getLogger("innoverheid.privacy")
    logger.addHandler(caplog.handler)
    old = logger.level
    logger.setLevel(logging.INFO)
    yield caplog
    logger.removeHandler(caplog.handler)
    logger.setLevel(old)


# ---------------------------------------------------------------- deletions followed


def test_posts_deleted_at_the_source_are_erased_with_labels_sightings_and_copies(db, world):
    before = snapshot(db)
    personal = personal_strings(db)
    for name in PLATFORMS:
        world.delete_at_source(name)

    erased = deletion_check(world.cfg, db, now=NOW)

    after = snapshot(db)
    gone = {(n, world.ids[n][s]) for n in PLATFORMS for s in ("p3", "p7")} | {("x", world.ids["x"]["rt"])}
    assert set(before) - set(after) == gone  # the X retweet of p3 copied its text: it goes too
    # Still there at the source: kept as they were, labels and sightings included. The old post is
    # outside the window the check looks at (privacy.deletion_check_days), so it stays until retention.
    quotes = {(n, world.ids[n]["quote"]) for n in PLATFORMS}
    for key in set(after) - quotes:
        assert after[key] == before[key], key
    assert all((n, world.ids[n]["old"]) in after for n in PLATFORMS)
    # A post that quotes an erased one keeps its own words but loses the embedded copy.
    for quote in quotes:
        assert before[quote]["raw"] and after[quote]["raw"] is None, quote
        assert after[quote]["labels"] == before[quote]["labels"]
    assert erased.by_source == {"bluesky": 2, "mastodon": 2, "x": 3} and erased.posts == 7
    assert erased.labels == sum(before[k]["labels"] for k in gone) == 2 * 7 + 3  # one person label each p3
    assert erased.sightings == sum(before[k]["sightings"] for k in gone) >= 7
    with db.read() as conn:
        assert conn.execute(select(func.count()).select_from(Label).where(
            ~Label.post_id.in_(select(PostRow.id)))).scalar_one() == 0  # no label outlives its post

    # Nothing else still points at an erased post: its uri names its author (Bluesky DID, Mastodon user).
    erased_ids = {sid for _, sid in gone}
    with db.read() as conn:
        cells = [v for row in conn.execute(select(PostRow.__table__)).all() for v in row if isinstance(v, str)]
    assert [v for v in cells for sid in erased_ids if sid in v] == []

    if db.dialect == "sqlite":  # nor are the erased words left in the file's free space
        db.dispose()  # as when the nightly process ends: the write-ahead log is folded in
        files = [Path(db.engine.url.database)] + list(Path(db.engine.url.database).parent.glob("*.db-wal"))
        for text in (b"Idee 3 ", b"Idee 7 "):
            assert not any(text in f.read_bytes() for f in files), text

    audit = audit_rows(db)
    assert sorted((a["action"], a["n_posts"]) for a in audit) == [("deleted_at_source", 2), ("deleted_at_source", 2),
                                                                 ("deleted_at_source", 3)]
    assert sum(a["n_labels"] for a in audit) == erased.labels
    words = " ".join(str(v) for a in audit for v in a.values())
    leaked = {s for s in personal if s in words}
    assert leaked == set(), f"the audit log holds personal data: {leaked}"
    assert all(a["subject_hash"] is None for a in audit)


def test_nothing_deleted_nothing_erased(db, world):
    before = snapshot(db)
    erased = deletion_check(world.cfg, db, now=NOW)
    assert erased.posts == 0 and snapshot(db) == before and audit_rows(db) == []


def test_running_the_check_twice_erases_once(db, world):
    world.delete_at_source("x", ["p7"])
    assert deletion_check(world.cfg, db, now=NOW).posts == 1
    assert deletion_check(world.cfg, db, now=NOW).posts == 0
    assert len(audit_rows(db)) == 1


# ---------------------------------------------------------------- a platform that errs


def _break(world: World, name: str, how: str, monkeypatch) -> None:
    fake = world.fakes[name]
    servers = list(fake.servers.values()) if name == "mastodon" else [fake]
    if how == "refused":
        var = {"bluesky": "BSKY_APP_PASSWORD", "mastodon": "MASTODON_TOKEN", "x": "X_BEARER_TOKEN"}[name]
        if name == "bluesky":
            fake.revoke_all()  # the stored session is refused, and then the password too
        value = "wrong-token-value-9d1f" if name != "mastodon" else " ".join(
            f"{s.url.split('//')[1]}=wrong-token-value-9d1f" for s in servers)
        monkeypatch.setenv(var, value)
        return
    fault = {"down": "503", "rate_limited": "429", "cut_off": "truncate", "malformed": "malformed"}[how]
    for server in servers:
        server.faults = [fault] * 10


@pytest.mark.parametrize("how", ["down", "rate_limited", "cut_off", "refused", "malformed"])
@pytest.mark.parametrize("name", PLATFORMS)
def test_a_platform_error_leaves_its_posts_as_they_are(db, world, monkeypatch, privacy_log, name, how):
    for platform in PLATFORMS:
        world.delete_at_source(platform)
    _break(world, name, how, monkeypatch)
    before = snapshot(db)

    erased = deletion_check(world.cfg, db, now=NOW)

    after = snapshot(db)
    mine = {k: v for k, v in before.items() if k[0] == name}
    if how == "malformed":
        # The answer came, with one item unreadable: an unreadable item is no proof of deletion.
        # (Bluesky and X keep the identity of a broken item, Mastodon its local id.)
        erased_here = {k for k in mine if k not in after}
        assert erased_here <= {(name, world.ids[name][s]) for s in ("p3", "p7", "rt") if s in world.ids[name]}
        return
    assert {k: v for k, v in after.items() if k[0] == name} == mine  # untouched, deleted ones included
    assert name not in erased.by_source and not any(name in a["reason"] for a in audit_rows(db))
    assert f"deletion check for {name} did not run" in privacy_log.text
    assert "wrong-token-value-9d1f" not in privacy_log.text
    # The other platforms were still checked.
    others = [n for n in PLATFORMS if n != name]
    assert sorted(erased.by_source) == others


def test_a_failure_on_the_second_batch_discards_the_first(db, world, privacy_log):
    """Bluesky asks 25 posts at a time; if the second request fails, what the first said is not acted on."""
    world.delete_at_source("bluesky")
    fake = world.fakes["bluesky"]
    fake.faults = [None] + ["503"] * 5
    before = snapshot(db)
    erased = deletion_check(world.cfg, db, now=NOW)
    assert fake.faults_applied[-2:] == ["503", "503"]
    assert "bluesky" not in erased.by_source
    assert {k: v for k, v in snapshot(db).items() if k[0] == "bluesky"} == {
        k: v for k, v in before.items() if k[0] == "bluesky"}
