"""Mastodon harvest: the real Mastodon.py against local fake instances, through the runner."""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import text

from harvester import mastodon as hm
from harvester.base import BadItem, Post
from harvester.html_text import html_to_text
from harvester.mastodon_map import to_post
from harvester.registry import BuildContext
from harvester.retry import RetryPolicy
from harvester.runner import harvest_source, store_page
from innoverheid.config import Config
from innoverheid.sandbox.mastodon import MastodonFake
from innoverheid.sandbox.sample import SamplePost
from storage import posts as q

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)
RECORDED = Path(__file__).resolve().parent.parent.parent / "shared" / "fixtures" / "recorded" / "mastodon"
TOKEN_VAR = "MASTODON_TOKEN"


def sample(n: int, start: int = 0, **kw) -> list[SamplePost]:
    return [SamplePost(id=f"p{i}", text=f"Idee {i}: minder vergaderen #innoverheid", author=f"user{i % 7}",
                       author_name=f"User {i % 7}", created_at=T0 + timedelta(minutes=i), **kw)
            for i in range(start, start + n)]


class Harness:
    """A fake wired into a config, a source built by the real build(), sleeps recorded."""

    def __init__(self, fake: MastodonFake, db, *, env: dict | None = None, **mastodon_cfg):
        self.fake, self.db, self.slept = fake, db, []
        config: dict = {"harvest": {"timeout": 1.0, "max_retries": 3, "backoff_base": 0.01, "backoff_max": 0.05}}
        self.env: dict = {}
        fake.configure(config, self.env)
        config["sources"]["mastodon"].update(mastodon_cfg)
        if env is not None:
            self.env = env
        self.cfg = Config(**config)
        self.policy = RetryPolicy.from_config(self.cfg.harvest, sleep=self.slept.append)
        self.source = hm.build(BuildContext(cfg=self.cfg, env=self.env, policy=self.policy))

    def run(self, tag: str = "innoverheid", **kw):
        return harvest_source(self.db, self.source, [tag], **kw)

    def count(self, where: str = "1=1") -> int:
        with self.db.engine.connect() as conn:
            return conn.execute(text(f"select count(*) from posts where {where}")).scalar_one()

    def rows(self) -> list[dict]:
        with self.db.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(text("select * from posts order by created_at"))]

    def bookmark(self, target: str) -> dict | None:
        with self.db.engine.connect() as conn:
            return q.get_bookmark(conn, "mastodon", "innoverheid", target)


def timeline_requests(server) -> list[dict]:
    return [{k: v[-1] for k, v in r.query.items()} for r in server.requests if "/timelines/tag/" in r.path]


@pytest.fixture
def started():
    fakes: list[MastodonFake] = []

    def _start(posts, faults=None, **options) -> MastodonFake:
        fake = MastodonFake(posts, faults, **options).start()
        fakes.append(fake)
        return fake

    yield _start
    for fake in fakes:
        fake.stop()


# ---------------------------------------------------------------- paging and bookmarks


def test_pages_oldest_first_to_the_end(db, started):
    fake = started(sample(95))
    h = Harness(fake, db)
    report = h.run()
    assert report.status == "ok" and report.new == 95 and h.count() == 95
    asked = timeline_requests(fake)
    assert asked[0]["min_id"] == "0"  # first run: the whole history of the tag
    assert len(asked) == 4  # 40 + 40 + 15, then an empty page ends the walk
    assert all(int(b["min_id"]) > int(a["min_id"]) for a, b in zip(asked, asked[1:], strict=False))
    newest = max(int(json.loads(r["raw"])["id"]) for r in h.rows())
    assert h.bookmark(fake.url) == {"newest_id": str(newest)}


def test_incremental_run_asks_only_for_what_is_new(db, started):
    fake = started(sample(30))
    h = Harness(fake, db, overlap_minutes=0)
    h.run()
    mark = h.bookmark(fake.url)["newest_id"]
    for post in sample(5, start=30):
        fake.add(post)
    fake.requests.clear()
    report = h.run()
    assert (report.new, report.known) == (5, 0)
    asked = timeline_requests(fake)
    assert asked[0]["min_id"] == mark and all(int(a["min_id"]) >= int(mark) for a in asked)
    assert h.count() == 35


def test_late_federated_post_is_caught_by_the_overlap(db, started):
    # A remote post reaches the instance after the last run, with an id from its (older) publication time.
    fake = started(sample(10))
    h = Harness(fake, db)  # default overlap: 60 minutes
    h.run()
    late = SamplePost(id="late", text="laat binnen #innoverheid", author="remote", author_name="R",
                      created_at=T0 + timedelta(minutes=5, seconds=30))
    fake.add(late)
    report = h.run()
    assert report.new == 1 and h.count() == 11
    # Without the overlap the same post would be passed over: its id sorts below the bookmark.
    assert int(fake.federation.ids[fake.name]["late"]) < int(h.bookmark(fake.url)["newest_id"])


# ---------------------------------------------------------------- faults


def test_429_waits_until_the_announced_reset(db, started, caplog):
    fake = started(sample(50), ["429"], rate_limit_reset=2.0)
    h = Harness(fake, db)
    with caplog.at_level(logging.WARNING, logger="innoverheid.harvest"):
        report = h.run()
    assert report.status == "ok" and h.count() == 50
    assert fake.faults_applied == ["429"]
    assert len(h.slept) == 1 and 1.5 <= h.slept[0] <= 5.0  # reset (ISO header) minus now, plus a margin
    assert "waiting" in caplog.text and "reset" in caplog.text


@pytest.mark.parametrize("faults", [["500"], ["502", "503"], ["truncate"], ["reset"], ["timeout"]])
def test_server_errors_and_broken_responses_are_retried(db, started, faults):
    fake = started(sample(45), [None, *faults])  # the second page fails first
    h = Harness(fake, db)
    report = h.run()
    assert report.status == "ok" and report.errors == []
    assert h.count() == 45 and fake.faults_applied == faults
    assert len(h.slept) == len(faults)  # one backoff per failure, through the policy


def test_slow_page_is_simply_waited_for(db, started):
    fake = started(sample(45), [None, "slow"])
    h = Harness(fake, db)
    assert h.run().status == "ok" and h.count() == 45 and h.slept == []


def test_malformed_item_is_skipped_and_counted_rest_kept(db, started):
    fake = started(sample(45), ["malformed"])
    h = Harness(fake, db)
    report = h.run()
    assert report.skipped == 1 and report.skipped_reasons == {"missing uri": 1}
    assert h.count() == 44 and report.status == "ok"
    assert h.bookmark(fake.url)["newest_id"]  # the walk went on past the bad item


def test_gives_up_after_retries_then_the_rerun_completes(db, started):
    fake = started(sample(95), [None] + ["500"] * 4)
    h = Harness(fake, db, overlap_minutes=0)
    first = h.run()
    assert first.status == "failed" and "still failing" in first.errors[0]
    assert h.count() == 40  # page one is safe, its bookmark stored
    mark = h.bookmark(fake.url)["newest_id"]
    fake.requests.clear()
    second = h.run()
    assert second.status == "ok" and timeline_requests(fake)[0]["min_id"] == mark
    assert h.count() == 95 == len({r["source_id"] for r in h.rows()})


def test_kill_between_fetch_and_store_then_rerun(db, started):
    fake = started(sample(95))
    h = Harness(fake, db)
    target = fake.url
    with db.write() as conn:
        run_id = q.start_run(conn, "mastodon", "innoverheid", target)
    walk = h.source.pages("innoverheid", target, None)
    store_page(db, run_id, "mastodon", "innoverheid", target, next(walk))
    next(walk)  # fetched, never stored: the process dies here
    walk.close()
    assert h.count() == 40
    report = h.run()
    assert report.status == "ok" and h.count() == 95
    with db.engine.connect() as conn:
        assert conn.execute(text("select count(distinct source_id) from posts")).scalar_one() == 95


def test_stop_signal_after_a_page_then_resume(db, started):
    fake = started(sample(95))
    h = Harness(fake, db)
    stops = iter([False, True])
    report = h.run(should_stop=lambda: next(stops, True))
    assert h.count() == 80 and report.pages == 2
    assert h.run().status == "ok" and h.count() == 95


# ---------------------------------------------------------------- credentials


def test_bad_token_ends_the_source_naming_the_variable(db, started):
    fake = started(sample(5))
    secret = "this-is-a-wrong-token-0123456789"
    h = Harness(fake, db, env={TOKEN_VAR: secret})
    report = h.run()
    assert report.status == "failed" and h.count() == 0
    assert TOKEN_VAR in report.errors[0] and secret not in report.errors[0]


def test_instance_requiring_login_is_reported_and_others_still_run(db, started):
    posts = sample(6, instances=["open.example", "closed.example"])
    fake = started(posts, require_auth={"closed.example"})
    h = Harness(fake, db, env={})  # no token at all
    report = h.run()
    assert h.count() == 6 and report.status == "failed"
    assert len(report.errors) == 1 and TOKEN_VAR in report.errors[0] and "logged-in" in report.errors[0]
    assert timeline_requests(fake.instance("closed.example")) == []  # known from the instance document


def test_token_is_only_sent_to_its_own_instance(db, started):
    fake = started(sample(4, instances=["a.example", "b.example"]))
    a, b = fake.instance("a.example"), fake.instance("b.example")
    host_a = a.url.split("//")[1]
    for value in (fake.token_value, f"{host_a}={fake.token_value}"):  # a bare token: the first instance's
        a.requests.clear()
        b.requests.clear()
        assert Harness(fake, db, env={TOKEN_VAR: value}).run().status == "ok"
        assert {r.headers.get("authorization") for r in a.data_requests()} == {f"Bearer {fake.token_value}"}
        assert b.data_requests() and all("authorization" not in r.headers for r in b.requests)


# ---------------------------------------------------------------- federation and references


def test_same_post_on_two_instances_is_stored_once_with_a_sighting_from_each(db, started):
    posts = sample(3, instances=["a.example", "b.example"]) + sample(2, start=3, instances=["b.example"])
    fake = started(posts)
    a, b = fake.instance("a.example"), fake.instance("b.example")
    assert fake.federation.ids["a.example"]["p0"] != fake.federation.ids["b.example"]["p0"]
    h = Harness(fake, db)
    report = h.run()
    assert (report.new, report.known) == (5, 3) and h.count() == 5
    seen: dict[str, set[str]] = {}
    with db.engine.connect() as conn:
        for sid, where in conn.execute(text(
                "select p.source_id, r.instance from posts p join sightings s on s.post_id = p.id "
                "join harvest_runs r on r.id = s.run_id")):
            seen.setdefault(sid, set()).add(where)
    both = [sid for sid, where in seen.items() if where == {a.url, b.url}]
    assert len(both) == 3 and all(sid.startswith(a.url) for sid in both)  # the uri from the home instance


def test_reposts_replies_and_quotes_keep_their_references(db, started):
    base = sample(2)
    extra = [
        SamplePost(id="off", text="zonder tag", author="x", author_name="X", created_at=T0, hashtags=[]),
        SamplePost(id="reply", text="Goed plan #innoverheid", author="y", author_name="Y",
                   created_at=T0 + timedelta(hours=1), reply_to="p0"),
        SamplePost(id="reply2", text="Eens #innoverheid", author="y", author_name="Y",
                   created_at=T0 + timedelta(hours=2), reply_to="off"),
        SamplePost(id="boost", text="", author="z", author_name="Z", created_at=T0 + timedelta(hours=3),
                   repost_of="p1"),
        SamplePost(id="quote", text="Dit dus #innoverheid", author="z", author_name="Z",
                   created_at=T0 + timedelta(hours=4), quote_of="p0"),
    ]
    fake = started(base + extra)
    h = Harness(fake, db)
    assert h.run().status == "ok"
    rows = {r["text"].split(":")[0]: r for r in h.rows()}
    by_id = {json.loads(r["raw"])["id"]: r for r in h.rows()}
    ids = fake.federation.ids[fake.name]
    p0, p1 = by_id[str(ids["p0"])], by_id[str(ids["p1"])]
    assert rows["Goed plan #innoverheid"]["reply_to"] == p0["source_id"]
    assert rows["Eens #innoverheid"]["reply_to"] == f"{fake.url}/api/v1/statuses/{ids['off']}"
    boost = next(r for r in h.rows() if r["is_repost"])
    assert boost["repost_of"] == p1["source_id"] and boost["source_id"] != p1["source_id"]
    assert rows["Dit dus #innoverheid"]["quote_of"] == p0["source_id"]
    assert h.count() == 6  # the untagged parent is not harvested


def test_hashtags_match_case_insensitively(db, started):
    posts = [SamplePost(id=str(i), text=f"Idee {i} #{tag}", author="a", author_name="A",
                        created_at=T0 + timedelta(minutes=i), hashtags=[tag])
             for i, tag in enumerate(["InnoVerheid", "INNOVERHEID", "innoverheid"])]
    fake = started(posts)
    h = Harness(fake, db)
    report = harvest_source(db, h.source, ["InnoVerheid"])
    assert report.new == 3 and {r["hashtags"] for r in h.rows()} == {"innoverheid"}


def test_still_present_asks_each_home_instance(db, started):
    posts = sample(3, instances=["a.example"]) + sample(2, start=3, instances=["b.example"])
    for version, path in (("4.6.4", "/api/v1/statuses"), ("4.2.0", "/api/v1/statuses/")):
        fake = started(posts, version=version)
        h = Harness(fake, db)
        fa, fb = fake.instance("a.example"), fake.instance("b.example")
        uris = [f"{fa.url}/users/user{i}/statuses/{fake.federation.ids['a.example'][f'p{i}']}" for i in range(3)]
        uris += [f"{fb.url}/users/user{i}/statuses/{fake.federation.ids['b.example'][f'p{i}']}" for i in (3, 4)]
        fake.delete("p1")
        fake.delete("p4")
        elsewhere = "https://elders.example/users/q/statuses/1"
        assert h.source.still_present(uris + [elsewhere]) == {uris[0], uris[2], uris[3], elsewhere}
        asked = [r.path for r in fa.requests if r.path.startswith("/api/v1/statuses")]
        assert asked and all(p == path if path == "/api/v1/statuses" else p.startswith(path) for p in asked)


# ---------------------------------------------------------------- mapping recorded payloads


def _recorded_statuses() -> list[dict]:
    out = []
    for path in sorted(RECORDED.glob("*timelines*.json")):
        body = json.loads(path.read_text())
        if not path.name.endswith(".headers.json") and isinstance(body, list):
            out += body
    return out


def test_mapping_recorded_statuses():
    statuses = _recorded_statuses()
    assert len(statuses) > 40
    assert all(isinstance(to_post(s, "http://localhost:3000"), Post) for s in statuses)
    hoot = to_post(json.loads((RECORDED / "test_hashtag_tl__02_GET_api_v1_timelines_tag_hoot.json").read_text())[0])
    assert hoot.source_id == "http://localhost:3000/ap/users/117020566092212359/statuses/117020593741189701"
    assert hoot.url == "http://localhost:3000/@mastodonpy_test_2/117020593741189701"
    assert hoot.text == "#hoot (hashtag toot)" and hoot.hashtags == ["hoot"]
    assert hoot.created_at == datetime(2026, 8, 1, 13, 55, 55, 867000, tzinfo=timezone.utc)
    assert hoot.author_handle == "mastodonpy_test_2@localhost:3000" and hoot.lang == "ja"
    assert (hoot.like_count, hoot.repost_count, hoot.reply_count, hoot.quote_count) == (0, 0, 0, 0)
    assert hoot.raw["content"].startswith("<p>") and not hoot.is_repost and hoot.reply_to is None
    texts = {to_post(s).text for s in statuses}
    assert "@mastodonpy_test beep beep I'm a jeep" in texts and "you can't say that on television" in texts


def test_mapping_tolerates_missing_fields_and_reports_bad_items():
    minimal = to_post({"id": "1", "uri": "https://m.example/users/a/statuses/1"})
    assert isinstance(minimal, Post) and minimal.text == "" and minimal.created_at is None
    for raw, reason in (([], "not an object"), ({"id": "2"}, "missing uri"),
                        ({"id": "3", "uri": "u", "account": "x"}, "account is not an object"),
                        ({"id": "4", "uri": "u", "created_at": "gisteren"}, "unreadable field"),
                        ({"id": "5", "uri": "u", "reblog": {"id": "6"}}, "reblog without uri")):
        bad = to_post(raw)
        assert isinstance(bad, BadItem) and bad.reason.startswith(reason)
    assert to_post({"id": 7}).item_id == "7"


@pytest.mark.parametrize("html, expected", [
    ("<p>Een<br>twee<br />drie</p><p>Vier &amp; vijf</p>", "Een\ntwee\ndrie\n\nVier & vijf"),
    ('<p><a href="https://x/tags/Inno" class="mention hashtag" rel="tag">#<span>Inno</span></a> en '
     '<span class="h-card"><a href="https://x/@an" class="u-url mention">@<span>an</span></a></span></p>',
     "#Inno en @an"),
    ('<p><a href="https://example.com/lang/pad"><span class="invisible">https://</span>'
     '<span class="ellipsis">example.com/la</span><span class="invisible">ng/pad</span></a></p>',
     "https://example.com/lang/pad"),
    ("<p>a<script>alert('x')</script>b<style>p{}</style>c</p>", "abc"),
    ("<p>open <b>vet <i>schuin</p><ul><li>een<li>twee</ul>", "open vet schuin\n\n- een\n- twee"),
    ("&lt;script&gt; &#x1F600; &euro;5 &bogus; & <", "<script> 😀 €5 &bogus; & <"),
    ("<script>nooit gesloten <p>verborgen", ""),
    ("<<p>>>< p>x</p>", "<\n\n>>< p>x"),
    ('<p class="quote-inline">RE: <a href="https://q">q</a></p><p>eigen tekst</p>', "eigen tekst"),
    ("<p>bron\nregels   en  spaties</p>", "bron regels en spaties"),
    ('<img alt=":blobcat:" src="x"> <div><p>blok</p></div>', ":blobcat:\n\nblok"),
])
def test_html_to_text_on_hostile_html(html, expected):
    assert html_to_text(html) == expected
