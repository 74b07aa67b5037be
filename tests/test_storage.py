"""Storage: migrations, uniqueness, provenance, bookmarks, the person-wins rule. Runs on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from sqlalchemy import func, select, text

from harvester.base import BadItem, Page, Post
from harvester.runner import harvest_source
from storage import open_database
from storage import posts as q
from storage.labels import Prediction, effective_labels, replace_model_labels, set_person_labels
from storage.models import Base, Post as PostRow, Sighting

pytestmark = pytest.mark.postgres


def _post(i: int, text: str = "idee") -> Post:
    return Post("fake", f"id-{i}", f"{text} {i} #innoverheid", {"n": i}, author_handle=f"user{i % 7}",
                created_at=datetime(2013, 2, 4, 10, i % 60, tzinfo=timezone.utc), hashtags=["innoverheid"])


class FakeSource:
    name = "fake"

    def __init__(self, n_pages: int, per_page: int = 3, fail_after: int | None = None):
        self.n_pages, self.per_page, self.fail_after = n_pages, per_page, fail_after

    def targets(self):
        return [""]

    def pages(self, hashtag, target, bookmark):
        start = (bookmark or {}).get("next", 0)
        for page in range(start, self.n_pages):
            if self.fail_after is not None and page >= self.fail_after:
                raise RuntimeError("connection lost")
            yield Page([_post(page * self.per_page + j) for j in range(self.per_page)], bookmark={"next": page + 1})


def test_migrations_create_every_table_and_match_the_models(db):
    with db.read() as conn:
        tables = set(db.engine.dialect.get_table_names(conn))
    assert set(Base.metadata.tables) <= tables
    assert db.current_revision() == db.head_revision()


def test_reopening_an_existing_database_keeps_its_posts(db_url):
    first = open_database(db_url)
    with first.write() as conn:
        q.insert_posts(conn, [_post(1).row()])
    first.dispose()
    again = open_database(db_url)
    with again.read() as conn:
        assert conn.execute(select(func.count()).select_from(PostRow.__table__)).scalar_one() == 1


def test_redelivery_is_harmless_and_counted_as_known(db):
    with db.write() as conn:
        _, new, known = q.insert_posts(conn, [_post(1).row(), _post(2).row(), _post(1).row()])
    assert (new, known) == (2, 0)
    with db.write() as conn:
        _, new, known = q.insert_posts(conn, [_post(2).row(), _post(3).row()])
    assert (new, known) == (1, 1)
    with db.read() as conn:
        assert conn.execute(select(func.count()).select_from(PostRow.__table__)).scalar_one() == 3


def test_a_source_that_fails_halfway_keeps_the_safe_pages_and_resumes(db):
    report = harvest_source(db, FakeSource(5, fail_after=2), ["innoverheid"])
    assert report.status == "failed" and report.new == 6
    with db.read() as conn:
        assert q.get_bookmark(conn, "fake", "innoverheid") == {"next": 2}
    report = harvest_source(db, FakeSource(5), ["innoverheid"])
    assert report.status == "ok" and report.new == 9
    with db.read() as conn:
        assert conn.execute(select(func.count()).select_from(PostRow.__table__)).scalar_one() == 15
        # every post was seen by exactly one run: nothing doubled
        per_post = conn.execute(select(func.count()).select_from(Sighting.__table__)
                                .group_by(Sighting.__table__.c.post_id)).scalars().all()
        assert set(per_post) == {1}


def test_timestamps_come_back_as_utc(db):
    with db.write() as conn:
        q.insert_posts(conn, [_post(5).row()])
    with db.read() as conn:
        created = conn.execute(select(PostRow.__table__.c.created_at)).scalar_one()
    assert created == datetime(2013, 2, 4, 10, 5, tzinfo=timezone.utc)


def test_a_persons_label_wins_over_the_models(db):
    with db.write() as conn:
        ids, _, _ = q.insert_posts(conn, [_post(1).row()])
        pid = next(iter(ids.values()))
        replace_model_labels(conn, [Prediction(pid, ["netwerken"], 0.42, True)], "m-1")
    with db.read() as conn:
        eff = effective_labels(conn, [pid])[pid]
    assert eff.labels == ["netwerken"] and eff.origin == "model" and eff.needs_review
    with db.write() as conn:
        set_person_labels(conn, pid, ["leiderschap", "open_cultuur"], "redacteur")
        replace_model_labels(conn, [Prediction(pid, ["flexibilisering"], 0.9, False)], "m-2")
    with db.read() as conn:
        eff = effective_labels(conn, [pid])[pid]
    assert eff.labels == ["leiderschap", "open_cultuur"] and eff.origin == "person" and eff.created_by == "redacteur"


def test_erasing_a_post_removes_its_labels_and_sightings(db):
    harvest_source(db, FakeSource(1), ["innoverheid"])
    with db.write() as conn:
        pid = conn.execute(select(PostRow.__table__.c.id).limit(1)).scalar_one()
        replace_model_labels(conn, [Prediction(pid, ["netwerken"], 0.9, False)], "m-1")
        q.delete_posts(conn, [pid])
    with db.read() as conn:
        assert conn.execute(text("select count(*) from labels where post_id = :p"), {"p": pid}).scalar_one() == 0
        assert conn.execute(text("select count(*) from sightings where post_id = :p"), {"p": pid}).scalar_one() == 0


def test_a_redelivered_post_updates_its_engagement_counts(db):
    first = _post(1)
    first.like_count = 2
    with db.write() as conn:
        q.insert_posts(conn, [first.row()], refresh_metrics=True)
    again = _post(1)
    again.like_count, again.repost_count = 40, 3
    with db.write() as conn:
        _, new, known = q.insert_posts(conn, [again.row(), _post(2).row()], refresh_metrics=True)
    assert (new, known) == (1, 1)
    with db.read() as conn:
        likes = conn.execute(select(PostRow.__table__.c.like_count, PostRow.__table__.c.repost_count)
                             .where(PostRow.__table__.c.source_id == "id-1")).one()
    assert tuple(likes) == (40, 3)  # likes grow after the first harvest; the stored post follows


class NoisySource(FakeSource):
    """Each page: 3 kept posts, 2 without the campaign tag (search is fuzzy), 1 malformed item."""

    def pages(self, hashtag, target, bookmark):
        for page in super().pages(hashtag, target, bookmark):
            page.off_topic += 2
            page.skipped.append(BadItem("broken", "no text"))
            yield page


def test_the_monthly_count_includes_every_post_the_platform_returned(db):
    """X bills each post a search returns, kept or not: the budget must count them all, and a
    page of known posts re-delivered still costs its posts."""
    from innoverheid.status import posts_this_month

    harvest_source(db, NoisySource(4), ["innoverheid"])
    assert posts_this_month(db, "fake") == 4 * 6
    with db.write() as conn:  # the walk starts over: the same 12 posts come back as known
        q.set_bookmark(conn, "fake", "innoverheid", "", {"next": 0})
    report = harvest_source(db, NoisySource(4), ["innoverheid"])
    assert report.new == 0 and report.known == 12
    assert posts_this_month(db, "fake") == 2 * 4 * 6


class StoppedInAWait(FakeSource):
    """A stop asked for while the retry policy sleeps: StopRequested comes out of the page walk."""

    def pages(self, hashtag, target, bookmark):
        from innoverheid.signals import StopRequested

        yield from super().pages(hashtag, target, bookmark)
        raise StopRequested("stop requested during a wait")


def test_a_stop_during_a_wait_keeps_the_pages_and_marks_the_run_interrupted(db):
    from innoverheid.signals import StopRequested
    from storage.models import HarvestRun

    with pytest.raises(StopRequested):
        harvest_source(db, StoppedInAWait(2), ["innoverheid"])
    with db.read() as conn:
        run = conn.execute(select(HarvestRun.__table__)).mappings().one()
        assert conn.execute(select(func.count()).select_from(PostRow.__table__)).scalar_one() == 6
        assert q.get_bookmark(conn, "fake", "innoverheid") == {"next": 2}
    assert run["outcome"] == "interrupted" and "during a wait" in run["error"] and run["finished_at"] is not None
