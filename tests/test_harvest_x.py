"""X harvesting: the real tweepy client against the local X API v2 fake, into a real database."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
from sqlalchemy import select

from harvester import x as hx
from harvester.base import BadItem, MissingCredentials
from harvester.registry import BuildContext
from harvester.retry import RetryPolicy
from harvester.runner import harvest_source
from harvester.x_map import split_page, to_post
from innoverheid.config import Config
from innoverheid.sandbox.sample import SamplePost
from innoverheid.sandbox.x import XServer
from storage import posts as q
from storage.models import Post as PostRow

T0 = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
TAG = "innoverheid"
RECORDED = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "recorded" / "twitter"


@pytest.fixture
def harvest_log(caplog):
    """caplog on the "innoverheid" logger itself: the CLI's logging setup stops it propagating to root."""
    logger = logging.getLogger("innoverheid")
    old_level = logger.level
    logger.addHandler(caplog.handler)
    logger.setLevel(logging.DEBUG)
    yield caplog
    logger.removeHandler(caplog.handler)
    logger.setLevel(old_level)


def make_posts(n: int, *, prefix: str = "p", start: datetime = T0, step: timedelta = timedelta(minutes=3),
               tag: str = "innoverheid") -> list[SamplePost]:
    return [SamplePost(id=f"{prefix}{i}", text=f"Idee {prefix}{i}: minder vergaderen, meer doen #{tag}",
                       author=f"ambtenaar{i % 9}", author_name=f"Ambtenaar {i % 9}",
                       created_at=start + i * step, likes=i % 5) for i in range(n)]


def make_source(server: XServer, sleeps: list[float] | None = None, *, used: int = 0, env: dict | None = None,
                **x_settings):
    config: dict = {"harvest": {"timeout": 1.0, "max_retries": 3, "backoff_base": 0.01, "backoff_max": 0.05}}
    environ: dict[str, str] = {}
    server.configure(config, environ)
    config["sources"]["x"].update(x_settings)
    environ.update(env or {})
    cfg = Config.model_validate(config)
    policy = RetryPolicy.from_config(cfg.harvest, sleep=(sleeps if sleeps is not None else []).append)
    return hx.build(BuildContext(cfg=cfg, env=environ, policy=policy, used_this_month=lambda name: used))


def stored(db) -> dict[str, dict]:
    with db.read() as conn:
        rows = conn.execute(select(PostRow.__table__).where(PostRow.__table__.c.source == "x")).mappings()
        return {r["source_id"]: dict(r) for r in rows}


def bookmark(db) -> dict | None:
    with db.read() as conn:
        state = q.get_bookmark(conn, "x", TAG, "")
    return json.loads(state) if isinstance(state, str) else state


def searches(server: XServer) -> list[dict[str, str]]:
    return [{k: v[-1] for k, v in r.query.items()} for r in server.requests if r.path == "/2/tweets/search/recent"]


def ids_of(server: XServer, posts: list[SamplePost]) -> set[str]:
    return {server.tweet_id(p.id) for p in posts}


# ---------------------------------------------------------------- paging and bookmarks


def test_pages_to_the_end_and_stores_every_post_once(db):
    posts = make_posts(250)
    with XServer(posts) as server:
        report = harvest_source(db, make_source(server), [TAG])
        reqs = searches(server)
    assert report.status == "ok" and (report.new, report.pages) == (250, 3)
    assert set(stored(db)) == ids_of(server, posts)
    assert [r.get("next_token") is None for r in reqs] == [True, False, False]
    assert all(r["query"] == "#innoverheid" and r["max_results"] == "100" for r in reqs)
    newest = max(ids_of(server, posts), key=int)
    assert bookmark(db) == {"since_id": newest, "walk": None}


def test_second_run_asks_only_for_what_is_new(db):
    first, later = make_posts(120), make_posts(30, prefix="n", start=T0 + timedelta(days=1))
    with XServer(first) as server:
        harvest_source(db, make_source(server), [TAG])
        newest = bookmark(db)["since_id"]
        server.add(later)
        server.requests.clear()
        report = harvest_source(db, make_source(server), [TAG])
        reqs = searches(server)
    assert reqs[0]["since_id"] == newest and "until_id" not in reqs[0]
    assert (report.new, report.known) == (30, 0)
    assert len(stored(db)) == 150


def test_kill_mid_walk_resumes_below_the_last_stored_page(db):
    posts, newer = make_posts(350), make_posts(10, prefix="n", start=T0 + timedelta(days=2))
    with XServer(posts) as server:
        pages = []
        harvest_source(db, make_source(server), [TAG], progress=lambda label, n: pages.append(n),
                       should_stop=lambda: len(pages) >= 2)
        walk = bookmark(db)
        kept = stored(db)
        assert len(kept) == 200 and walk["since_id"] is None
        assert walk["walk"]["until_id"] == min(kept, key=int)
        assert walk["walk"]["newest_id"] == max(kept, key=int)

        server.add(newer)  # posted while the harvest was down
        server.requests.clear()
        second = harvest_source(db, make_source(server), [TAG])
        resumed = searches(server)[0]
        assert resumed["until_id"] == walk["walk"]["until_id"] and "since_id" not in resumed
        assert bookmark(db) == {"since_id": walk["walk"]["newest_id"], "walk": None}

        third = harvest_source(db, make_source(server), [TAG])
    assert (second.new, third.new) == (150, 10)
    assert set(stored(db)) == ids_of(server, posts + newer)


def test_a_run_that_gives_up_mid_walk_loses_nothing_on_rerun(db):
    posts = make_posts(300)
    with XServer(posts, faults=[None] + ["500"] * 4) as server:
        failed = harvest_source(db, make_source(server), [TAG])
        assert failed.status == "failed" and "still failing" in failed.errors[0]
        assert len(stored(db)) == 100 and bookmark(db)["walk"] is not None
        again = harvest_source(db, make_source(server), [TAG])
    assert again.status == "ok" and again.new == 200
    assert set(stored(db)) == ids_of(server, posts)


# ---------------------------------------------------------------- faults


def test_429_waits_for_the_announced_reset_then_continues(db, harvest_log):
    sleeps: list[float] = []
    with XServer(make_posts(150), faults=[None, "429"], rate_limit_reset=2) as server:
        report = harvest_source(db, make_source(server, sleeps), [TAG])
    assert report.new == 150 and report.status == "ok"
    assert len(sleeps) == 1 and 1.0 <= sleeps[0] <= 4.0  # until x-rate-limit-reset, plus a second
    assert "waiting" in harvest_log.text and "reset" in harvest_log.text


@pytest.mark.parametrize("fault", ["500", "503", "truncate", "reset", "timeout"])
def test_transient_failure_is_retried_and_nothing_is_lost(db, fault):
    sleeps: list[float] = []
    with XServer(make_posts(150), faults=[None, fault]) as server:
        server.timeout_seconds = 1.5  # longer than the client's 1 s timeout
        report = harvest_source(db, make_source(server, sleeps), [TAG])
        assert server.faults_applied == [fault]
        assert len(searches(server)) == 3  # the second page was asked twice
    assert report.status == "ok" and report.new == 150 and len(sleeps) == 1


def test_slow_page_is_waited_for(db):
    with XServer(make_posts(150), faults=["slow", "slow"]) as server:
        report = harvest_source(db, make_source(server), [TAG])
    assert report.status == "ok" and report.new == 150


def test_malformed_item_is_skipped_counted_and_the_rest_kept(db, harvest_log):
    with XServer(make_posts(150), faults=["malformed"]) as server:
        report = harvest_source(db, make_source(server), [TAG])
        bad = server.tweet_id("p99")  # the middle of the first page (newest first: p149 .. p50)
    assert (report.new, report.skipped) == (149, 1)
    assert report.skipped_reasons == {"missing or invalid text": 1}
    assert f"skipped malformed item {bad}" in harvest_log.text and bad not in stored(db)
    assert bookmark(db)["walk"] is None  # the bad item did not stop the walk


def test_401_ends_the_source_naming_the_env_var_not_the_secret(db):
    with XServer(make_posts(20)) as server:
        source = make_source(server, env={"X_BEARER_TOKEN": "wrong-secret-1234"})
        report = harvest_source(db, source, [TAG, "anderetag"])
        assert len(searches(server)) == 1  # the same credentials are not tried for the next hashtag
    assert report.status == "failed"
    assert "X_BEARER_TOKEN" in report.errors[0] and "wrong-secret-1234" not in report.errors[0]
    assert stored(db) == {}


def test_missing_token_names_the_variable():
    cfg = Config.model_validate({"sources": {"x": {"enabled": True, "bearer_token_env": "MY_X_TOKEN"}}})
    with pytest.raises(MissingCredentials) as exc:
        hx.build(BuildContext(cfg=cfg, env={}))
    assert exc.value.variables == ["MY_X_TOKEN"]


def test_old_since_id_outside_the_7_day_window_is_moved_up_and_said(db, harvest_log):
    posts = make_posts(40, step=timedelta(hours=6))  # 10 days of posts
    window = T0 + timedelta(days=5)
    with XServer(posts, searchable_since=window) as server:
        with db.write() as conn:
            q.set_bookmark(conn, "x", TAG, "", {"since_id": server.tweet_id("p3"), "walk": None})
        report = harvest_source(db, make_source(server), [TAG])
    reachable = {server.tweet_id(p.id) for p in posts if p.created_at > window + timedelta(minutes=1)}
    assert report.status == "ok" and set(stored(db)) == reachable
    assert "only the last 7 days" in harvest_log.text


def test_a_walk_that_fell_out_of_the_window_is_closed_and_the_newer_posts_fetched(db):
    posts = make_posts(40, step=timedelta(hours=6))
    with XServer(posts, searchable_since=T0 + timedelta(days=5)) as server:
        tid = server.tweet_id
        with db.write() as conn:  # a walk from p30 down to p5 was stopped more than 7 days ago
            q.set_bookmark(conn, "x", TAG, "", {"since_id": tid("p1"), "walk": {"until_id": tid("p5"),
                                                                               "newest_id": tid("p30")}})
        report = harvest_source(db, make_source(server), [TAG])
        last = searches(server)[-1]
    assert report.status == "ok" and last["since_id"] == tid("p30") and "until_id" not in last
    assert set(stored(db)) == {tid(f"p{i}") for i in range(31, 40)}
    assert bookmark(db) == {"since_id": tid("p39"), "walk": None}


def test_the_bearer_token_never_reaches_the_logs(db, harvest_log):
    with XServer(make_posts(120), faults=[None, "500"]) as server:
        with harvest_log.at_level(logging.DEBUG):  # root too: tweepy, requests and urllib3 log there
            harvest_source(db, make_source(server), [TAG])
        assert len(stored(db)) == 120
    assert "X API request" in harvest_log.text and "urllib3" in harvest_log.text
    assert server.bearer_token not in harvest_log.text


# ---------------------------------------------------------------- budget


def test_monthly_budget_stops_before_the_cap_and_resumes_next_month(db):
    posts = make_posts(300)
    with XServer(posts) as server:
        report = harvest_source(db, make_source(server, monthly_cap=1130, used=1000), [TAG])
        asked = [int(r["max_results"]) for r in searches(server)]
        assert asked == [100, 30] and len(stored(db)) == 130
        assert report.status == "ok" and "monthly post budget" in report.errors[0]
        assert bookmark(db)["walk"] is not None
        server.requests.clear()
        harvest_source(db, make_source(server, monthly_cap=1130, used=0), [TAG])  # a new month
        assert "until_id" in searches(server)[0]
    assert set(stored(db)) == ids_of(server, posts)


def test_less_budget_than_one_page_makes_no_request(db):
    with XServer(make_posts(20)) as server:
        report = harvest_source(db, make_source(server, monthly_cap=100, used=95), [TAG])
        assert searches(server) == []
    assert "monthly post budget" in report.errors[0] and stored(db) == {}


def test_platform_usage_cap_stops_without_retrying(db):
    sleeps: list[float] = []
    with XServer(make_posts(150), usage_cap=100) as server:
        report = harvest_source(db, make_source(server, sleeps), [TAG])
        assert len(searches(server)) == 2
    assert report.status == "ok" and "usage cap" in report.errors[0] and sleeps == []
    assert len(stored(db)) == 100


def test_budget_left_and_coverage_note():
    cfg = Config().sources.x
    assert hx.budget_left(cfg, 9_990) == cfg.monthly_cap - 9_990
    assert hx.budget_left(cfg, cfg.monthly_cap + 5) == 0
    now = datetime(2025, 3, 20, tzinfo=UTC)
    assert hx.coverage_note(now - timedelta(days=6), now) is None
    note = hx.coverage_note(now - timedelta(days=12), now)
    assert "12 days ago" in note and "7 days" in note and "2025-03-08" in note


# ---------------------------------------------------------------- mapping and references


def test_mapping_on_recorded_search_responses():
    nyc = json.loads((RECORDED / "pytwitter_search_tweets_for_nyc.json").read_text())
    mapped = [to_post(item) for item in split_page(nyc)]
    retweet, reply = mapped[0], mapped[1]
    assert retweet.is_repost and retweet.repost_of == "1275809336988557314"
    assert retweet.text.startswith("RT @skipbolden:") and retweet.lang == "en"
    assert retweet.created_at == datetime(2020, 6, 24, 17, 19, 7, tzinfo=UTC)
    assert reply.reply_to == "1275781448855891968" and reply.hashtags == ["ny12"] and not reply.is_repost
    rt_of_quote = mapped[-1]
    assert rt_of_quote.repost_of == "1275837188715020290" and rt_of_quote.quote_of == "1275622383555133440"

    with_users = json.loads((RECORDED / "pytwitter_search_tweets_query.json").read_text())
    first = to_post(split_page(with_users)[0])
    assert (first.author_handle, first.author_name, first.author_id) == ("happycamper", "Emily Waligoske 🏕",
                                                                           "63046977")
    assert first.url == "https://x.com/happycamper/status/1276035977375477760"
    assert first.raw["includes"]["tweets"][0]["id"] == "1275653067283759104"  # the replied-to tweet kept

    minimal = json.loads((RECORDED / "test_client_search_recent_tweets.json").read_text())
    bare = to_post(minimal["data"][0])
    assert bare.source_id == "1578516068309794817" and bare.created_at is None and bare.author_handle is None
    assert bare.url == "https://x.com/i/web/status/1578516068309794817"


def test_mapping_reports_bad_items_instead_of_raising():
    assert isinstance(to_post({"data": "not an object"}), BadItem)
    assert to_post({"id": "12", "text": None}).reason == "missing or invalid text"
    assert to_post({"id": "12", "text": "x", "created_at": "gisteren"}).reason == "invalid created_at"
    assert to_post({"text": "no id"}).reason == "missing or invalid id"
    ok = to_post({"id": "12", "text": "x", "public_metrics": {"like_count": "many"}, "entities": []})
    assert ok.like_count is None and ok.hashtags == []


def test_hashtags_match_case_insensitively(db):
    posts = [SamplePost(id="a", text="Flexwerken! #InnoVerheid", author="a", author_name="A", created_at=T0,
                        hashtags=[]),
             SamplePost(id="b", text="Talent #INNOVERHEID", author="b", author_name="B",
                        created_at=T0 + timedelta(minutes=1), hashtags=[]),
             SamplePost(id="c", text="Iets anders #overheid", author="c", author_name="C",
                        created_at=T0 + timedelta(minutes=2), hashtags=[])]
    with XServer(posts) as server:
        report = harvest_source(db, make_source(server), ["InnoVerheid"])
        rows = stored(db)
    assert report.new == 2 and {r["hashtags"] for r in rows.values()} == {"innoverheid"}


def test_reposts_replies_and_quotes_keep_their_references(db):
    idea = SamplePost(id="idea", text="Geef teams hun eigen budget voor experimenten, zonder drie lagen "
                      "goedkeuring; vertrouw de professional en meet achteraf wat het opleverde. Zo leren we "
                      "sneller #innoverheid", author="ideeen", author_name="Idee Ën", created_at=T0, likes=7)
    reply = SamplePost(id="reply", text="Eens, begin klein #innoverheid", author="b", author_name="B",
                       created_at=T0 + timedelta(minutes=5), reply_to="idea")
    quote = SamplePost(id="quote", text="Dit dus #innoverheid", author="c", author_name="C",
                       created_at=T0 + timedelta(minutes=6), quote_of="idea")
    retweet = SamplePost(id="rt", text="", author="d", author_name="D", created_at=T0 + timedelta(minutes=7),
                         repost_of="idea")
    with XServer([idea, reply, quote, retweet]) as server:
        harvest_source(db, make_source(server), [TAG])
        rows, tid = stored(db), server.tweet_id
    original = rows[tid("idea")]
    assert not original["is_repost"] and original["like_count"] == 7 and original["author_name"] == "Idee Ën"
    assert rows[tid("reply")]["reply_to"] == tid("idea")
    assert rows[tid("reply")]["conversation_id"] == tid("idea")
    assert rows[tid("quote")]["quote_of"] == tid("idea")
    rt = rows[tid("rt")]
    assert rt["is_repost"] and rt["repost_of"] == tid("idea") and rt["author_handle"] == "d"
    # X cut the retweet's own text at 140 characters; the stored text is the whole idea.
    assert rt["text"] == f"RT @ideeen: {idea.text}" and rt["hashtags"] == "innoverheid"
    assert json.loads(rt["raw"])["data"]["text"].endswith("…")


# ---------------------------------------------------------------- deletion check and the fake itself


def test_still_present_batches_lookups_and_drops_deleted_posts():
    posts = make_posts(150)
    with XServer(posts) as server:
        source = make_source(server)
        all_ids = sorted(ids_of(server, posts))
        server.remove(["p1", "p2"])
        present = source.still_present(all_ids + ["999"])
        lookups = [r for r in server.requests if r.path == "/2/tweets"]
    assert present == set(all_ids) - {server.tweet_id("p1"), server.tweet_id("p2")}
    assert [len(r.arg("ids").split(",")) for r in lookups] == [100, 51]


def test_fake_speaks_the_recorded_wire_format():
    recorded = [json.loads((RECORDED / f).read_text()) for f in
                ("pytwitter_search_tweets_for_nyc.json", "pytwitter_search_tweets_query.json",
                 "test_client_search_recent_tweets.json")]
    tweet_keys = {k for body in recorded for t in body["data"] for k in t}
    # Documented v2 fields the recordings did not request.
    tweet_keys |= {"public_metrics", "conversation_id"}
    headers = json.loads((RECORDED / "test_client_search_recent_tweets.headers.json").read_text())["headers"]
    idea = make_posts(1)[0]
    with XServer([idea, SamplePost(id="rt", text="", author="d", author_name="D",
                                   created_at=T0 + timedelta(minutes=1), repost_of=idea.id)]) as server:
        params = {"query": "#innoverheid", "max_results": 10, "expansions": ",".join(hx.EXPANSIONS),
                  "tweet.fields": ",".join(hx.TWEET_FIELDS), "user.fields": "username,name"}
        ok = requests.get(f"{server.url}/2/tweets/search/recent", params=params,
                          headers={"Authorization": f"Bearer {server.bearer_token}"}, timeout=5)
        denied = requests.get(f"{server.url}/2/tweets/search/recent", params=params, timeout=5)
    body = ok.json()
    assert list(body) == ["data", "includes", "meta"]
    assert {k for t in body["data"] + body["includes"]["tweets"] for k in t} <= tweet_keys
    assert set(body["meta"]) == set(recorded[0]["meta"]) - {"next_token"}
    assert {k for u in body["includes"]["users"] for k in u} == {"id", "name", "username"}
    assert {h for h in headers if h.startswith("x-rate-limit")} <= {h.lower() for h in ok.headers}
    assert denied.status_code == 401
    assert denied.json() == {"title": "Unauthorized", "detail": "Unauthorized", "type": "about:blank",
                             "status": 401}


def test_fake_rejects_what_x_rejects():
    with XServer(make_posts(5)) as server:
        auth = {"Authorization": f"Bearer {server.bearer_token}"}
        small = requests.get(f"{server.url}/2/tweets/search/recent", params={"query": "#innoverheid",
                             "max_results": 5}, headers=auth, timeout=5)
    assert small.status_code == 400
    assert small.json()["type"] == "https://api.twitter.com/2/problems/invalid-request"
    assert "between 10 and 100" in small.json()["errors"][0]["message"]
