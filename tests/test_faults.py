"""Property-based fault schedules against all three platforms' local servers (issue 7, point 1).

For random schedules of 429s, 5xx, timeouts, connection resets, truncated bodies, malformed
items and kills between pages (a graceful stop after k pages, a crash inside the k-th page's
transaction, or a fault budget beyond max_retries so the source gives up), every platform
in the registry must end, after reruns, with every post its server offered stored exactly
once; and after every run each stored bookmark covers only posts that are stored. The one
exception is an item the server corrupted ("malformed"): it is skipped and counted, and lost
only if its page was committed.

One fake server per platform serves every example; each example gets a fresh SQLite file
(a copy of a migrated template), a fresh fault script and an injected sleep (no real waits).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from harvester.mastodon import base_url
from harvester.registry import REGISTRY
from harvester.retry import RetryPolicy
from innoverheid.config import Config
from innoverheid.pipeline import run_harvest
from innoverheid.sandbox.bluesky import BlueskyServer
from innoverheid.sandbox.mastodon import MastodonFake
from innoverheid.sandbox.sample import SamplePost
from innoverheid.sandbox.server import FAULTS, LocalServer, Response
from innoverheid.sandbox.x import XServer
from storage import open_database
from storage import posts as q
from storage.models import HarvestRun, Post as PostRow, Sighting

TAG = "innoverheid"
T0 = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
N_POSTS = 45
PAGE_SIZE = 10  # X refuses fewer than 10 per page; 45 posts make 5 pages (Mastodon: 2-3 per instance)
CLIENT_TIMEOUT = 0.5  # seconds; a scripted "timeout" stalls the server longer than this
SERVER_STALL = 0.8
MAX_RETRIES = 2
# Quick faults, drawn freely; "timeout" and "slow" cost real time, so at most one of each per example.
QUICK = ("429", "500", "502", "503", "reset", "truncate", "malformed")


def sample_posts() -> list[SamplePost]:
    posts = []
    for i in range(N_POSTS):
        text = f"Idee {i}: minder vergaderen, meer doen #{TAG}" if i % 4 else f"Meer ruimte {i} #Innoverheid 🙂"
        posts.append(SamplePost(
            id=f"p{i}", text=text, author=f"ambtenaar{i % 7}", author_name=f"Ambtenaar {i % 7}",
            created_at=T0 + i * timedelta(minutes=3), likes=i % 5,
            reply_to=f"p{i - 1}" if i % 9 == 5 else None, quote_of=f"p{i - 2}" if i % 11 == 7 else None,
            # Mastodon only: federation is partial; some posts reach one instance, some both.
            instances=[["a.example", "b.example"], ["a.example"], ["b.example"]][i % 3]))
    return posts


# ---------------------------------------------------------------- the platforms


def _items(body: Any) -> list:
    if isinstance(body, list):  # Mastodon: a JSON array of statuses
        return body
    if isinstance(body, dict):  # Bluesky {"posts": [...]}, X {"data": [...]}
        items = body.get("posts", body.get("data"))
        return items if isinstance(items, list) else []
    return []


def _identity(item: Any) -> str | None:
    if not isinstance(item, dict):
        return None
    return item.get("uri") or item.get("id")  # the source_id each mapper stores (X: the tweet id)


def record_corruption(server: LocalServer, corrupted: set[str]) -> None:
    """Wrap the fake's `malformed` so the test knows which item a "malformed" fault broke."""
    original = server.malformed

    def malformed(response: Response) -> Response:
        before = _items(json.loads(response.encoded() or b"null"))
        after_response = original(response)
        after = _items(json.loads(after_response.encoded() or b"null"))
        for old, new in zip(before, after, strict=False):
            if old != new and _identity(old):
                corrupted.add(_identity(old))
        return after_response

    server.malformed = malformed  # type: ignore[method-assign]


@dataclass
class Platform:
    """A started fake plus what it offers and how to read a bookmark's promise."""

    name: str
    fake: LocalServer
    servers: list[LocalServer]
    offered: set[str]
    # (bookmark state, instance) -> source_ids the bookmark claims are behind it (so: must be stored)
    covered: Callable[[dict, str], set[str]]
    corrupted: set[str] = field(default_factory=set)

    def configure(self, state_dir: Path) -> tuple[Config, dict[str, str]]:
        config: dict = {"hashtags": [TAG], "harvest": {"timeout": CLIENT_TIMEOUT, "max_retries": MAX_RETRIES,
                                                       "state_dir": str(state_dir)}}
        env: dict[str, str] = {}
        self.fake.configure(config, env)
        config["sources"][self.name]["page_size"] = PAGE_SIZE
        return Config.model_validate(config), env


def _time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


def bluesky_platform() -> Platform:
    fake = BlueskyServer(sample_posts()).start()
    # Search orders and filters on createdAt and indexedAt; take both from what the fake serves.
    times = {}
    for uri in fake._index[TAG][1]:
        view = json.loads(fake._views[uri])
        times[uri] = (_time(view["record"]["createdAt"]), _time(view["indexedAt"]))

    def covered(state: dict, instance: str) -> set[str]:
        out: set[str] = set()
        mark = _time(state.get("mark"))
        if mark:  # every post up to the high-water mark was walked
            out |= {u for u, (created, indexed) in times.items() if min(created, indexed) <= mark}
        walk = state.get("walk") or {}
        top, edge = _time(walk.get("top")), _time(walk.get("edge"))
        if top and edge:  # the walk under way has stored everything from its top down to its edge
            out |= {u for u, (created, indexed) in times.items()
                    if max(created, indexed) >= edge and min(created, indexed) <= top}
        return out

    return Platform("bluesky", fake, [fake], set(times), covered)


def mastodon_platform() -> Platform:
    fake = MastodonFake(sample_posts()).start()
    fed = fake.federation
    uri_of = {pid: json.loads(fed.status_bytes(fake.name, pid))["uri"] for pid in fed.posts}
    # Each instance's tag timeline: (local id, uri), as that instance numbers them.
    timelines = {base_url(s.url): [(local, uri_of[fed.by_local[name][local]]) for local in fed.timeline(name, TAG)]
                 for name, s in fake.servers.items()}
    offered = {uri for timeline in timelines.values() for _, uri in timeline}

    def covered(state: dict, instance: str) -> set[str]:
        newest = state.get("newest_id")
        if newest is None:
            return set()
        return {uri for local, uri in timelines[instance] if local <= int(newest)}

    return Platform("mastodon", fake, list(fake.servers.values()), offered, covered)


def x_platform() -> Platform:
    posts = sample_posts()
    fake = XServer(posts).start()
    ids = {int(fake.tweet_id(p.id)) for p in posts}

    def covered(state: dict, instance: str) -> set[str]:
        out: set[int] = set()
        if state.get("since_id"):
            out |= {i for i in ids if i <= int(state["since_id"])}
        walk = state.get("walk") or {}
        if walk.get("until_id") and walk.get("newest_id"):
            out |= {i for i in ids if int(walk["until_id"]) <= i <= int(walk["newest_id"])}
        return {str(i) for i in out}

    return Platform("x", fake, [fake], {str(i) for i in ids}, covered)


FAKES: dict[str, Callable[[], Platform]] = {"bluesky": bluesky_platform, "mastodon": mastodon_platform,
                                            "x": x_platform}


@pytest.fixture(scope="module")
def platforms(tmp_path_factory):
    """Started lazily, one per platform, shared by all examples; stopped at the end of the module."""
    started: dict[str, Platform] = {}

    def get(name: str) -> Platform:
        if name not in started:
            p = started[name] = FAKES[name]()
            for server in p.servers:
                server.timeout_seconds = SERVER_STALL
                record_corruption(server, p.corrupted)
        return started[name]

    yield get
    for p in started.values():
        p.fake.stop()


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    """A migrated, empty SQLite file; each example copies it (migrating each time would cost more)."""
    path = tmp_path_factory.mktemp("template") / "empty.db"
    open_database(f"sqlite:///{path}").dispose()
    return path


# ---------------------------------------------------------------- one example


class Killed(BaseException):
    """The process dies: not an Exception, so nothing in the pipeline may catch it."""


@dataclass
class Run:
    faults: list[list[str | None]]  # one script per server (Mastodon has two instances)
    stop: str | None  # None: run to the end (or until the source gives up) | "stop" | "crash"
    after: int  # with stop: pages stored before the graceful stop; with crash: the page whose commit dies


class Harness:
    def __init__(self, platform: Platform, folder: Path, template: Path):
        self.p = platform
        shutil.copy(template, folder / "test.db")
        self.db = open_database(f"sqlite:///{folder / 'test.db'}")
        self.cfg, self.env = platform.configure(folder.parent / f"state-{platform.name}")

    def run(self, run: Run) -> str:
        """Run one harvest with this run's faults; returns how it ended (ok, failed, interrupted, killed)."""
        scripts: list[list[str | None]] = [[] for _ in self.p.servers]
        for i, script in enumerate(run.faults):  # one server: its script is all of them, in turn
            scripts[i % len(scripts)] += script
        for server, script in zip(self.p.servers, scripts, strict=True):
            server.faults = script
        pages = []
        policy = RetryPolicy(max_retries=MAX_RETRIES, backoff_base=0.01, backoff_max=0.05, sleep=lambda s: None)
        real_set_bookmark = q.set_bookmark

        def dying_set_bookmark(*args, **kwargs):
            if run.stop == "crash" and len(pages) + 1 == run.after:
                raise Killed()  # inside the page's transaction: its posts were inserted, then roll back
            return real_set_bookmark(*args, **kwargs)

        try:
            with mock.patch.object(q, "set_bookmark", dying_set_bookmark):
                report = run_harvest(
                    self.cfg, self.db, [self.p.name], policy=policy, env=self.env,
                    progress=lambda label, n: pages.append(n),
                    should_stop=lambda: run.stop == "stop" and len(pages) >= run.after)
            return "interrupted" if report.interrupted else report.sources[0].status
        except Killed:
            return "killed"
        finally:
            for server in self.p.servers:
                server.faults = []

    def stored(self) -> set[str]:
        with self.db.read() as conn:
            t = PostRow.__table__
            rows = conn.execute(select(t.c.source_id).where(t.c.source == self.p.name)).scalars().all()
        assert len(rows) == len(set(rows))
        return set(rows)

    def bookmarks(self) -> dict[str, dict]:
        from storage.models import Bookmark

        with self.db.read() as conn:
            t = Bookmark.__table__
            rows = conn.execute(select(t.c.instance, t.c.state).where(t.c.source == self.p.name)).all()
        return {instance: state for instance, state in rows}

    def unstored_behind_bookmarks(self) -> set[str]:
        """Posts some bookmark claims are behind it but that are not stored (nor were corrupted)."""
        stored = self.stored()
        missing: set[str] = set()
        for instance, state in self.bookmarks().items():
            missing |= self.p.covered(state or {}, instance) - stored
        return missing - self.p.corrupted

    def consistent_counts(self) -> tuple[int, int, int]:
        """(posts stored, new posts the runs counted, posts without any sighting)."""
        with self.db.read() as conn:
            posts = conn.execute(select(func.count()).select_from(PostRow)).scalar_one()
            counted = conn.execute(select(func.coalesce(func.sum(HarvestRun.n_new), 0))).scalar_one()
            unseen = conn.execute(select(func.count()).select_from(PostRow).where(
                ~PostRow.id.in_(select(Sighting.post_id)))).scalar_one()
        return posts, counted, unseen

    def close(self) -> None:
        self.db.dispose()


def check_schedule(platform: Platform, template: Path, runs: list[Run]) -> None:
    platform.corrupted.clear()
    with tempfile.TemporaryDirectory(prefix="faults-") as tmp:
        folder = Path(tmp) / "example"
        folder.mkdir()
        h = Harness(platform, folder, template)
        try:
            for run in runs:
                event(f"a run ended: {h.run(run)} ({run.stop})")
                assert h.unstored_behind_bookmarks() == set(), "a bookmark passed a post that was not stored"
            assert h.run(Run([[]], None, 0)) == "ok"  # the next night: no faults
            stored = h.stored()
            assert stored <= platform.offered
            lost = platform.offered - stored
            event(f"corrupted items lost: {min(len(lost), 2)}{'+' if len(lost) > 1 else ''}")
            assert lost <= platform.corrupted, f"{len(lost - platform.corrupted)} offered post(s) never stored"
            if not platform.corrupted:
                assert stored == platform.offered
            posts, counted, unseen = h.consistent_counts()
            assert posts == counted == len(stored) and unseen == 0
            assert h.unstored_behind_bookmarks() == set()
        finally:
            h.close()


# ---------------------------------------------------------------- the property

_script = st.lists(st.one_of(st.none(), st.sampled_from(QUICK)), max_size=8)
_run = st.builds(
    Run,
    faults=st.lists(_script, min_size=2, max_size=2),
    stop=st.sampled_from(["crash", "stop", None]),
    after=st.integers(1, 4),
)


@st.composite
def schedules(draw) -> list[Run]:
    runs = draw(st.lists(_run, min_size=1, max_size=3))
    for run in runs:
        # Often a burst beyond the retry budget, so the source gives up mid-walk (a 429 is waited
        # for up to max_retries + 1 times before giving up).
        if draw(st.booleans()):
            fault = draw(st.sampled_from(("500", "502", "503", "reset", "truncate", "429")))
            burst = [fault] * (MAX_RETRIES + (2 if fault == "429" else 1))
            script = run.faults[draw(st.integers(0, 1))]
            at = draw(st.integers(0, len(script)))
            script[at:at] = burst
    # At most one stalled and one slow response per example: each costs real time.
    for fault in ("timeout", "slow"):
        if draw(st.booleans()):
            i, server = draw(st.integers(0, len(runs) - 1)), draw(st.integers(0, 1))
            script = runs[i].faults[server]
            script.insert(draw(st.integers(0, len(script))), fault)
    return runs


def test_every_registered_platform_and_every_fault_kind_is_in_the_schedules():
    assert set(FAKES) == set(REGISTRY)
    assert set(QUICK) | {"timeout", "slow"} == set(FAULTS)


@pytest.mark.parametrize("name", sorted(REGISTRY))
@settings(max_examples=50, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(runs=schedules())
def test_fault_schedules_lose_and_double_nothing(platforms, template, name, runs):
    check_schedule(platforms(name), template, runs)


# ---------------------------------------------------------------- the checks above can fail


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_an_interrupted_walk_leaves_a_partial_bookmark_that_the_check_reads(platforms, template, name, tmp_path):
    """Non-vacuous: after a stop at page 2 the bookmark covers some but not all posts, and all it covers
    is stored; a bookmark moved past unstored posts is caught."""
    p = platforms(name)
    p.corrupted.clear()
    folder = tmp_path / "example"
    folder.mkdir()
    h = Harness(p, folder, template)
    try:
        h.run(Run([[], []], "stop", 2))
        stored = h.stored()
        covered = set().union(*(p.covered(s, i) for i, s in h.bookmarks().items()))
        assert 0 < len(stored) < len(p.offered) and covered and covered <= stored
        # Forge a bookmark that claims everything: the check must notice the gap.
        with h.db.write() as conn:
            for server in p.servers:
                instance = base_url(server.url) if name == "mastodon" else ""
                q.set_bookmark(conn, name, TAG, instance, _claim_everything(name, p))
        assert h.unstored_behind_bookmarks() == p.offered - stored
    finally:
        h.close()


def _claim_everything(name: str, p: Platform) -> dict:
    if name == "bluesky":
        return {"mark": "2099-01-01T00:00:00.000Z", "walk": None}
    if name == "mastodon":
        return {"newest_id": str(1 << 62)}
    return {"since_id": str(max(int(i) for i in p.offered)), "walk": None}


def test_a_crash_inside_a_page_commits_nothing_of_that_page(platforms, template, tmp_path):
    p = platforms("x")
    p.corrupted.clear()
    folder = tmp_path / "example"
    folder.mkdir()
    h = Harness(p, folder, template)
    try:
        h.run(Run([[]], "crash", 3))  # pages 1 and 2 commit; page 3 dies before its commit
        assert len(h.stored()) == 2 * PAGE_SIZE
        assert h.consistent_counts() == (2 * PAGE_SIZE, 2 * PAGE_SIZE, 0)
        h.run(Run([[]], None, 0))
        assert h.stored() == p.offered
    finally:
        h.close()
