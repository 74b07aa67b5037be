"""Bluesky harvesting: the real atproto SDK against the local Bluesky fake, into a real database."""

from __future__ import annotations

import json
import logging
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from atproto import Client, Session
from atproto_client.exceptions import ModelError
from sqlalchemy import select

from harvester import bluesky as hb
from harvester.base import BadItem, MissingCredentials, Post
from harvester.bluesky_map import map_page, to_post
from harvester.registry import BuildContext
from harvester.retry import RetryPolicy
from harvester.runner import harvest_source
from innoverheid.config import Config
from innoverheid.sandbox.bluesky import BlueskyServer
from innoverheid.sandbox.sample import SamplePost
from storage import posts as q
from storage.models import Post as PostRow

T0 = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
TAG = "innoverheid"
RECORDED = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "recorded" / "bluesky"


def make_posts(n: int, *, prefix: str = "p", start: datetime = T0, step: timedelta = timedelta(minutes=3),
               tag: str = "innoverheid") -> list[SamplePost]:
    return [SamplePost(id=f"{prefix}{i}", text=f"Idee {prefix}{i}: minder vergaderen, meer doen #{tag}",
                       author=f"ambtenaar_{i % 9}", author_name=f"Ambtenaar {i % 9}",
                       created_at=start + i * step, likes=i % 5) for i in range(n)]


def make_source(server: BlueskyServer, state_dir: Path, sleeps: list[float] | None = None, *,
                env: dict | None = None, harvest: dict | None = None, **bsky_settings) -> hb.BlueskySource:
    config: dict = {"harvest": {"timeout": 2.0, "max_retries": 3, "backoff_base": 0.01, "backoff_max": 0.05,
                                **(harvest or {})}}
    environ: dict[str, str] = {}
    server.configure(config, environ)
    config["sources"]["bluesky"].update(bsky_settings)
    environ.update(env or {})
    cfg = Config.model_validate(config)
    policy = RetryPolicy.from_config(cfg.harvest, sleep=(sleeps if sleeps is not None else []).append)
    return hb.build(BuildContext(cfg=cfg, env=environ, policy=policy, state_dir=state_dir))


@pytest.fixture
def state_dir(tmp_path) -> Path:
    return tmp_path / "state"


@pytest.fixture
def harvest_log(caplog):
    """caplog attached to the harvest logger itself, whatever the CLI's logging setup did to propagation."""
    logger = logging.getLogger("innoverheid.harvest")
    old_level = logger.level
    logger.addHandler(caplog.handler)
    logger.setLevel(logging.INFO)
    yield caplog
    logger.removeHandler(caplog.handler)
    logger.setLevel(old_level)


def stored(db) -> dict[str, dict]:
    with db.read() as conn:
        table = PostRow.__table__
        rows = conn.execute(select(table).where(table.c.source == "bluesky")).mappings()
        return {r["source_id"]: dict(r) for r in rows}


def bookmark(db) -> dict | None:
    with db.read() as conn:
        state = q.get_bookmark(conn, "bluesky", TAG, "")
    return json.loads(state) if isinstance(state, str) else state


def searches(server: BlueskyServer) -> list[dict[str, str]]:
    return [{k: v[-1] for k, v in r.query.items()} for r in server.requests
            if r.path == "/xrpc/app.bsky.feed.searchPosts"]


def uris(server: BlueskyServer, posts: list[SamplePost]) -> set[str]:
    return {server.uris[p.id] for p in posts}


def _iso(dt: datetime) -> str:
    return dt.isoformat(timespec="milliseconds").replace("+00:00", "Z")


# ---------------------------------------------------------------- paging and bookmarks


def test_pages_to_the_end_and_stores_every_post_once(db, state_dir):
    posts = make_posts(250)
    with BlueskyServer(posts) as server:
        report = harvest_source(db, make_source(server, state_dir), [TAG])
        reqs = searches(server)
    assert report.status == "ok" and report.new == 250
    assert set(stored(db)) == uris(server, posts)
    assert [r.get("cursor") for r in reqs] == [None, "100", "200"]
    assert all(r["sort"] == "latest" and r["limit"] == "100" and r["tag"] == TAG and r["q"] == "#innoverheid"
               for r in reqs)
    assert bookmark(db) == {"mark": _iso(posts[-1].created_at), "walk": None}


def test_second_run_asks_only_for_what_is_new(db, state_dir):
    first, later = make_posts(120), make_posts(30, prefix="n", start=T0 + timedelta(days=2))
    with BlueskyServer(first) as server:
        harvest_source(db, make_source(server, state_dir), [TAG])
        server.add_posts(later)
        before = len(searches(server))
        report = harvest_source(db, make_source(server, state_dir), [TAG])
        second = searches(server)[before:]
    # since = last high-water mark minus the 10 minute overlap; nothing older is asked for.
    assert [r.get("since") for r in second] == [_iso(first[-1].created_at - timedelta(minutes=10))]
    assert report.new == 30 and report.known == 4  # the overlap re-delivers the last few: harmless
    assert len(stored(db)) == 150
    assert bookmark(db)["mark"] == _iso(later[-1].created_at)


def test_search_cap_is_worked_around_by_narrowing_until(db, state_dir):
    posts = make_posts(620, step=timedelta(seconds=7))
    with BlueskyServer(posts, search_cap=250) as server:
        report = harvest_source(db, make_source(server, state_dir, search_cap=250), [TAG])
        reqs = searches(server)
    assert set(stored(db)) == uris(server, posts) and report.status == "ok"
    untils = [r["until"] for r in reqs if "until" in r and "cursor" not in r]
    assert len(untils) >= 2 and untils == sorted(untils, reverse=True)  # each query reaches further back
    assert all(int(r.get("cursor", 0)) <= 250 for r in reqs)


# ---------------------------------------------------------------- faults


def test_429_waits_for_the_announced_reset_then_succeeds(db, state_dir, harvest_log):
    sleeps: list[float] = []
    with BlueskyServer(make_posts(150), faults=[None, "429"], rate_limit_reset=2) as server:
        report = harvest_source(db, make_source(server, state_dir, sleeps), [TAG])
    assert report.status == "ok" and len(stored(db)) == 150
    assert len(sleeps) == 1 and 1.0 <= sleeps[0] <= 4.0  # RateLimit-Reset (epoch seconds) + 1 s margin
    assert "rate limited" in harvest_log.text and "waiting" in harvest_log.text


@pytest.mark.parametrize("fault", ["500", "502", "truncate", "reset"])
def test_server_errors_and_cut_off_bodies_are_retried(db, state_dir, fault):
    sleeps: list[float] = []
    with BlueskyServer(make_posts(150), faults=[None, fault]) as server:
        report = harvest_source(db, make_source(server, state_dir, sleeps), [TAG])
        assert server.faults_applied == [fault]
    assert report.status == "ok" and len(stored(db)) == 150 and len(sleeps) == 1


def test_a_malformed_post_is_skipped_counted_and_the_page_kept(db, state_dir, harvest_log):
    posts = make_posts(40)
    with BlueskyServer(posts, faults=["malformed"]) as server:
        report = harvest_source(db, make_source(server, state_dir), [TAG])
    assert (report.new, report.skipped) == (39, 1) and report.skipped_reasons == {"no author": 1}
    missing = uris(server, posts) - set(stored(db))
    assert len(missing) == 1 and missing.pop() in harvest_log.text  # logged with its uri


def test_the_sdk_alone_would_lose_the_whole_page():
    """Why the source reads raw JSON: the SDK's models reject a page with one bad PostView."""
    with BlueskyServer(make_posts(10), faults=["malformed"]) as server:
        client = Client(base_url=server.url)
        client.login(server.handle, server.password, fetch_bsky_profile=False)
        with pytest.raises(ModelError):
            client.app.bsky.feed.search_posts({"q": "#innoverheid"})


def test_a_slow_page_is_waited_for_and_a_timeout_retried(db, state_dir):
    sleeps: list[float] = []
    with BlueskyServer(make_posts(150), faults=["slow", "timeout"]) as server:
        server.timeout_seconds = 1.5
        report = harvest_source(db, make_source(server, state_dir, sleeps, harvest={"timeout": 0.8}), [TAG])
    assert report.status == "ok" and len(stored(db)) == 150 and len(sleeps) == 1  # only the timeout retried


# ---------------------------------------------------------------- kill and resume


def test_killed_mid_walk_then_rerun_stores_every_post_exactly_once(db, state_dir):
    old, new = make_posts(100, prefix="o"), make_posts(350, prefix="n", start=T0 + timedelta(days=1))
    with BlueskyServer(old) as server:
        harvest_source(db, make_source(server, state_dir), [TAG])
        server.add_posts(new)
        pages = []
        harvest_source(db, make_source(server, state_dir), [TAG],
                       progress=lambda label, n: pages.append(n), should_stop=lambda: len(pages) >= 2)
        mid = bookmark(db)
        # The mark has not moved past posts not yet stored; the walk remembers how far down it got.
        assert mid["mark"] == _iso(old[-1].created_at) and mid["walk"]["edge"] is not None
        assert len(stored(db)) == 300
        server.add_posts(late := make_posts(5, prefix="l", start=T0 + timedelta(days=3)))
        before = len(searches(server))
        harvest_source(db, make_source(server, state_dir), [TAG])
        resumed = searches(server)[before]
        harvest_source(db, make_source(server, state_dir), [TAG])  # the next night picks up the late ones
    # Continued just above the lower edge stored (the oldest post seen, by its later indexedAt), no cursor.
    assert resumed["until"] == _iso(new[-200].created_at + timedelta(milliseconds=801))
    assert "cursor" not in resumed
    assert resumed["since"] == _iso(old[-1].created_at - timedelta(minutes=10))
    rows = stored(db)
    assert set(rows) == uris(server, old + new + late) and len(rows) == 455


def test_giving_up_mid_walk_keeps_the_bookmark_and_the_rerun_completes(db, state_dir):
    posts = make_posts(300)
    with BlueskyServer(posts, faults=[None, "503", "503", "503", "503"]) as server:
        first = harvest_source(db, make_source(server, state_dir), [TAG])
        assert first.status == "failed" and "503" in first.errors[0]
        assert bookmark(db)["walk"] is not None and len(stored(db)) == 100
        second = harvest_source(db, make_source(server, state_dir), [TAG])
    assert second.status == "ok" and set(stored(db)) == uris(server, posts)
    assert bookmark(db)["walk"] is None


# ---------------------------------------------------------------- authentication and sessions


def test_wrong_app_password_ends_the_source_naming_the_variable(db, state_dir):
    with BlueskyServer(make_posts(5)) as server:
        source = make_source(server, state_dir, env={"BSKY_APP_PASSWORD": "wrong-pass"})
        report = harvest_source(db, source, [TAG])
        assert server.logins == 0 and len(server.requests) == 1  # refused once, never retried
    assert report.status == "failed" and "BSKY_APP_PASSWORD" in report.errors[0]
    assert "wrong-pass" not in report.errors[0] and not stored(db)


def test_missing_credentials_name_both_variables(state_dir):
    cfg = Config.model_validate({})
    with pytest.raises(MissingCredentials) as err:
        hb.build(BuildContext(cfg=cfg, env={"BSKY_HANDLE": "someone.bsky.social"}, state_dir=state_dir))
    assert err.value.variables == ["BSKY_APP_PASSWORD"]


def test_the_session_is_stored_privately_and_reused_across_runs(db, state_dir, db_url):
    with BlueskyServer(make_posts(30)) as server:
        harvest_source(db, make_source(server, state_dir), [TAG])
        harvest_source(db, make_source(server, state_dir), [TAG])
        assert (server.logins, server.refreshes) == (1, 0)
    path = state_dir / hb.SESSION_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    tokens = Session.decode(json.loads(path.read_text())["session"])
    if db_url.startswith("sqlite"):
        raw = Path(db_url.removeprefix("sqlite:///")).read_bytes()
        assert tokens.access_jwt.encode() not in raw and tokens.refresh_jwt.encode() not in raw


def _store_session(server: BlueskyServer, state_dir: Path, **ttl) -> str:
    s = server.mint_session(**ttl)
    session = Session(s["handle"], s["did"], s["accessJwt"], s["refreshJwt"], server.url).encode()
    hb.SessionFile(state_dir / hb.SESSION_FILE).save(server.url, server.handle, session)
    return session


def test_an_expired_bluesky_session_is_refreshed_without_logging_in(db, state_dir):
    with BlueskyServer(make_posts(30)) as server:
        old = _store_session(server, state_dir, access_ttl=-60)
        report = harvest_source(db, make_source(server, state_dir), [TAG])
        assert (server.logins, server.refreshes) == (0, 1)
    assert report.status == "ok" and len(stored(db)) == 30
    assert json.loads((state_dir / hb.SESSION_FILE).read_text())["session"] != old  # the new tokens are kept


@pytest.mark.parametrize("how", ["refresh token expired too", "tokens revoked on the server"])
def test_a_refused_session_costs_exactly_one_login(db, state_dir, harvest_log, how):
    with BlueskyServer(make_posts(130)) as server:
        if how == "refresh token expired too":
            old = _store_session(server, state_dir, access_ttl=-60, refresh_ttl=-60)
        else:
            old = _store_session(server, state_dir)
            server.revoke_all()
        report = harvest_source(db, make_source(server, state_dir), [TAG])
        assert server.logins == 1
    assert report.status == "ok" and len(stored(db)) == 130
    assert "logging in again" in harvest_log.text
    new = json.loads((state_dir / hb.SESSION_FILE).read_text())["session"]
    for secret in (server.password, *old.split(":::")[2:4], *new.split(":::")[2:4]):
        assert secret not in harvest_log.text  # neither the password nor a token is ever logged


def test_a_refused_session_and_a_wrong_password_fail_after_one_attempt(db, state_dir):
    with BlueskyServer(make_posts(5)) as server:
        _store_session(server, state_dir)
        server.revoke_all()
        report = harvest_source(db, make_source(server, state_dir, env={"BSKY_APP_PASSWORD": "stale"}), [TAG])
        assert server.logins == 0
        assert [r.path.rsplit(".", 1)[-1] for r in server.requests] == ["searchPosts", "createSession"]
    assert report.status == "failed" and "BSKY_APP_PASSWORD" in report.errors[0]


# ---------------------------------------------------------------- mapping and references


def _fixture(name: str) -> dict:
    return json.loads((RECORDED / name).read_text())


def test_mapping_a_recorded_reply():
    post = to_post(_fixture("atat_postview_postWithoutEmbed.json"))
    assert isinstance(post, Post)
    assert post.source_id == "at://did:plc:yf6b2cgjhxo5wevddebvklna/app.bsky.feed.post/3lhmgh4f5es2q"
    assert post.url == "https://bsky.app/profile/xxiainxx.bsky.social/post/3lhmgh4f5es2q"
    assert (post.author_handle, post.author_name, post.author_id) == (
        "xxiainxx.bsky.social", "¡a!n", "did:plc:yf6b2cgjhxo5wevddebvklna")
    assert post.created_at == datetime(2025, 2, 7, 20, 21, 22, 374000, tzinfo=UTC) and post.lang == "en"
    assert post.reply_to == "at://did:plc:x2rfmy3ldn2k6d2diyp7ofi2/app.bsky.feed.post/3lhmfcfualc2s"
    assert post.conversation_id == "at://did:plc:r6xugwwpp4ss5liddodf7thw/app.bsky.feed.post/3lhmf2be2rc2b"
    assert post.text.startswith("There's a Peter Kay") and post.raw["cid"].startswith("bafyrei")


@pytest.mark.parametrize("name, quoted, likes", [
    ("atat_postview_externalRepostWithComment.json",
     "at://did:plc:7exlcsle4mjfhu3wnhcgizz6/app.bsky.feed.post/3lhljcua7lv2e", 3),
    ("atat_postview_postWithMedia.json",  # recordWithMedia: a quote with pictures
     "at://did:plc:ab5inzxnpw4j2zvzlxupr5ut/app.bsky.feed.post/3lhnuqw5cms2h", 4),
    ("atat_postview_postWithRecordEmbed.json",
     "at://did:plc:6y3jllixhqf3vjupdvzdtxsf/app.bsky.feed.post/3lhmdqmtrj22m", 1),
    ("atat_postview_externalEmbed.json", None, 0),
    ("atat_postview_postWithVideo.json", None, 0),
    ("atat_postview_postWithImagesEmbed.json", None, 0),
])
def test_mapping_recorded_quotes_and_embeds(name, quoted, likes):
    raw = _fixture(name)
    post = to_post(raw)
    assert isinstance(post, Post) and post.source_id == raw["uri"] and post.reply_to is None
    assert (post.quote_of, post.like_count, post.is_repost) == (quoted, likes, False)
    assert post.conversation_id == raw["uri"] and post.raw is raw


def test_mapping_a_recorded_repost_keeps_the_reference():
    raw = _fixture("atat_postview_repost.json")
    post = to_post(raw)
    assert post.is_repost and post.repost_of == raw["post"]["uri"] and post.author_handle == "daniloc.xyz"
    assert post.source_id != post.repost_of
    assert post.created_at == datetime(2025, 2, 6, 17, 58, 31, 348000, tzinfo=UTC)  # when it was reposted


def test_mapping_tolerates_missing_fields_and_reports_bad_items():
    raw = _fixture("atat_postview_externalEmbed.json")
    for key in ("embed", "likeCount", "indexedAt", "viewer", "labels", "cid"):
        raw.pop(key)
    raw["record"].pop("langs", None)
    raw["author"].pop("displayName")
    post = to_post(raw)
    assert isinstance(post, Post) and post.text.startswith("A great user experience")
    assert (post.lang, post.author_name, post.like_count) == (None, None, None)
    assert isinstance(to_post(_fixture("atat_embedview_image_noAspectRatio.json")), BadItem)
    bad = to_post({"uri": raw["uri"], "record": {"text": "x"}})
    assert isinstance(bad, BadItem) and bad.item_id == raw["uri"] and bad.reason == "no author"


def test_hashtags_from_recorded_facets_are_lower_case():
    lines = (RECORDED / "jetstream_v1_corpus_events.jsonl").read_text().splitlines()
    event = next(json.loads(line) for line in lines if "HowToTellAiToShutUp" in line)
    record = event["commit"]["record"]
    view = {"uri": f"at://{event['did']}/app.bsky.feed.post/{event['commit']['rkey']}",
            "author": {"did": event["did"], "handle": "handle.invalid"}, "record": record}
    post = to_post(view)
    assert post.hashtags == ["howtotellaitoshutup", "indierebellion"] and post.lang == "de"
    assert post.url == f"https://bsky.app/profile/{event['did']}/post/{event['commit']['rkey']}"


def test_hashtags_match_case_insensitively_and_off_topic_results_are_counted(db, state_dir):
    posts = [
        SamplePost(id="a", text="Flexwerken! #Innoverheid", author="anne", author_name="Anne", created_at=T0),
        SamplePost(id="b", text="MEER RUIMTE #INNOVERHEID", author="bob", author_name="Bob",
                   created_at=T0 + timedelta(minutes=1)),
        SamplePost(id="c", text="Tag only in the record's tags field", author="cor", author_name="Cor",
                   created_at=T0 + timedelta(minutes=2)),
    ]
    with BlueskyServer(posts) as server:
        report = harvest_source(db, make_source(server, state_dir), [TAG])
    # A search result that does not carry the tag at all is counted, not stored.
    page, _, _ = map_page([_fixture("atat_postview_postWithoutEmbed.json")], TAG)
    assert report.new == 3 and all(r["hashtags"] == "innoverheid" for r in stored(db).values())
    assert (page.posts, page.off_topic) == ([], 1)


def test_replies_and_quotes_are_stored_with_references_and_reposts_are_not_search_results(db, state_dir):
    base = make_posts(3)
    posts = base + [
        SamplePost(id="reply", text="Eens! #innoverheid", author="kees", author_name="Kees",
                   created_at=T0 + timedelta(hours=1), reply_to="p1"),
        SamplePost(id="reply2", text="Ook eens #innoverheid", author="els", author_name="Els",
                   created_at=T0 + timedelta(hours=2), reply_to="reply"),
        SamplePost(id="quote", text="Dit dus #innoverheid", author="els", author_name="Els",
                   created_at=T0 + timedelta(hours=3), quote_of="p2"),
        SamplePost(id="boost", text="", author="jan", author_name="Jan", created_at=T0 + timedelta(hours=4),
                   repost_of="p0"),
    ]
    with BlueskyServer(posts) as server:
        harvest_source(db, make_source(server, state_dir), [TAG])
        u = server.uris
    rows = stored(db)
    assert set(rows) == {u[i] for i in ("p0", "p1", "p2", "reply", "reply2", "quote")}
    assert rows[u["reply"]]["reply_to"] == u["p1"] and rows[u["reply"]]["conversation_id"] == u["p1"]
    assert rows[u["reply2"]]["reply_to"] == u["reply"] and rows[u["reply2"]]["conversation_id"] == u["p1"]
    assert rows[u["quote"]]["quote_of"] == u["p2"] and not rows[u["quote"]]["is_repost"]
    assert rows[u["p0"]]["url"].startswith("https://bsky.app/profile/ambtenaar-0.bsky.social/post/")


def test_the_fake_renders_the_recorded_postview_shape():
    recorded = _fixture("atat_postview_postWithoutEmbed.json")
    post = SamplePost(id="x", text="Hallo #innoverheid", author="anne_devries", author_name="Anne",
                      created_at=T0, reply_to="y")
    view = BlueskyServer([]).render(post)
    assert set(view) == set(recorded)
    assert set(view["author"]) <= set(recorded["author"]) | {"avatar"}
    lexicon = json.loads((RECORDED / "lexicons" / "app.bsky.feed.post.json").read_text())
    assert set(view["record"]) - {"$type"} <= set(lexicon["defs"]["main"]["record"]["properties"])
    assert set(view["record"]["reply"]) == set(recorded["record"]["reply"])


# ---------------------------------------------------------------- deletion check


def test_still_present_batches_by_25_and_drops_deleted_posts(db, state_dir):
    posts = make_posts(60)
    with BlueskyServer(posts) as server:
        source = make_source(server, state_dir)
        server.delete("p7")
        present = source.still_present([server.uris[p.id] for p in posts])
        calls = [r for r in server.requests if r.path.endswith("getPosts")]
    assert present == uris(server, posts) - {server.uris["p7"]}
    assert [len(r.query["uris"]) for r in calls] == [25, 25, 10]
