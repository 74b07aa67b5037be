"""X (Twitter API v2) through tweepy: recent search by hashtag, newest first, resumable walks.

Search pages newest-first, so a bookmark is a high-water mark (`since_id`) plus, while a walk
is under way, the lower edge reached so far (`walk.until_id`) and the newest id seen
(`walk.newest_id`). A killed walk resumes below its lower edge; only when it reaches the old
mark does `since_id` advance. Retweets are kept (they count as support) as reposts.

X only searches the last 7 days and bills every post read against a monthly cap; both limits
are stated plainly (`coverage_note`, `budget_left`, BudgetExhausted).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import requests
import tweepy

from harvester.base import (
    AuthError,
    BudgetExhausted,
    MissingCredentials,
    Page,
    RateLimited,
    SourceError,
    TransientError,
)
from harvester.retry import RetryPolicy
from harvester.x_map import EXPANSIONS, SOURCE, TWEET_FIELDS, USER_FIELDS, split_page, to_post

log = logging.getLogger("innoverheid.harvest")

SEARCH_WINDOW = timedelta(days=7)
MIN_RESULTS = 10  # the search endpoint refuses max_results below 10
LOOKUP_BATCH = 100  # GET /2/tweets?ids= takes at most 100 ids
_STALE_ID = re.compile(r"'(since_id|until_id)' must be a tweet id created after (\S+?)\.? Please use a "
                       r"'\1' that is larger than (\d+)")
# The searchable window slides while we retry; aim a minute inside its edge (snowflake ms << 22).
_EDGE_MARGIN = 60_000 << 22


class XClient(tweepy.Client):
    """tweepy's v2 Client pointed at a configurable host (tweepy hard-codes api.twitter.com).

    Mirrors tweepy.client.BaseClient.request (4.14-4.17): the same status -> exception mapping,
    so tweepy's own error classes reach the source. Differences, on purpose: the host comes
    from config, every request has a timeout (tweepy sets none, so a stalled server would hang
    the nightly run), the debug log leaves out the Authorization header (tweepy logs the
    bearer token), and rate limits are never slept on here (harvester.retry decides).
    """

    def __init__(self, bearer_token: str, *, base_url: str, timeout: float = 30.0):
        # return_type=dict: tweepy's Tweet objects parse every item eagerly, so one bad item
        # would fail a whole page; the mapper handles items one by one instead.
        super().__init__(bearer_token=bearer_token, return_type=dict, wait_on_rate_limit=False)
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout

    def request(self, method: str, route: str, params: dict | None = None, json: Any = None,
                user_auth: bool = False) -> requests.Response:
        if user_auth:
            raise TypeError("innoverheid uses app-only bearer authentication for X")
        url = self.base_url + route
        headers = {"User-Agent": self.user_agent, "Authorization": f"Bearer {self.bearer_token}"}
        log.debug("X API request: %s %s %s", method, url, params)
        with self.session.request(method, url, params=params, json=json, headers=headers,
                                  timeout=self.timeout) as response:
            status = response.status_code
            if status == 400:
                raise tweepy.BadRequest(response)
            if status == 401:
                raise tweepy.Unauthorized(response)
            if status == 403:
                raise tweepy.Forbidden(response)
            if status == 404:
                raise tweepy.NotFound(response)
            if status == 429:
                raise tweepy.TooManyRequests(response)
            if status >= 500:
                raise tweepy.TwitterServerError(response)
            if not 200 <= status < 300:
                raise tweepy.HTTPException(response)
            return response


class _IdTooOld(SourceError):
    """400: a since_id/until_id lies outside the 7-day search window; `floors` maps param -> id."""

    def __init__(self, floors: dict[str, int], message: str):
        self.floors = floors
        super().__init__(message)


def _id(value: Any) -> int | None:
    return int(value) if isinstance(value, str) and value.isdigit() else None


def _problem(exc: tweepy.HTTPException) -> dict:
    try:
        body = exc.response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def budget_left(cfg_x: Any, used_this_month: int) -> int:
    """Posts the plan may still read this calendar month (sources.x.monthly_cap minus what is used)."""
    return max(0, int(cfg_x.monthly_cap) - int(used_this_month))


def coverage_note(last_success_at: datetime | None, now: datetime) -> str | None:
    """A plain warning when the last good X harvest is older than the 7 days search can reach."""
    if last_success_at is None:
        return None
    gap = now - last_success_at
    if gap <= SEARCH_WINDOW:
        return None
    reachable = now - SEARCH_WINDOW
    return (f"X: the last successful harvest was {gap.days} days ago ({last_success_at:%Y-%m-%d %H:%M} UTC); "
            f"X search reaches back only 7 days, so posts from {last_success_at:%Y-%m-%d} to "
            f"{reachable:%Y-%m-%d} can no longer be collected. Run the harvest at least weekly.")


class XSource:
    name: ClassVar[str] = SOURCE

    def __init__(self, client: tweepy.Client, *, policy: RetryPolicy, credential_env: str,
                 page_size: int = 100, monthly_cap: int = 10000, used_this_month: int = 0):
        self.client = client
        self.policy = policy
        self.credential_env = credential_env
        self.page_size = page_size
        self.monthly_cap = monthly_cap
        self.used_this_month = used_this_month
        self.read_this_run = 0  # posts X returned (and billed) in this run, over all hashtags

    def targets(self) -> list[str]:
        return [""]

    def budget_left(self) -> int:
        return max(0, self.monthly_cap - self.used_this_month - self.read_this_run)

    # ------------------------------------------------------------------ errors
    def _translate(self, exc: Exception) -> Exception:
        if isinstance(exc, tweepy.TooManyRequests):
            body = _problem(exc)
            if "usage-capped" in str(body.get("type", "")):
                return BudgetExhausted(f"x: the platform says the plan's usage cap is used up "
                                       f"({body.get('detail') or body.get('title')}); the harvest resumes "
                                       "when the cap resets")
            reset = exc.response.headers.get("x-rate-limit-reset", "")
            at = datetime.fromtimestamp(int(reset), UTC) if reset.isdigit() else None
            return RateLimited(at, "X API 429")
        if isinstance(exc, (tweepy.Unauthorized, tweepy.Forbidden)):
            detail = "; ".join(exc.api_messages) or exc.response.reason
            return AuthError(SOURCE, self.credential_env, f"{exc.response.status_code} {detail}")
        if isinstance(exc, tweepy.TwitterServerError):
            return TransientError(f"X API {exc.response.status_code} {exc.response.reason}")
        if isinstance(exc, tweepy.BadRequest):
            floors = {m.group(1): int(m.group(3)) for m in map(_STALE_ID.search, exc.api_messages) if m}
            if floors:
                return _IdTooOld(floors, "; ".join(exc.api_messages))
            return SourceError(f"X API refused the request: {exc}")
        if isinstance(exc, tweepy.HTTPException):
            return SourceError(f"X API error: {exc}")
        if isinstance(exc, (requests.RequestException, ValueError)):
            # Timeouts, resets, bodies cut off mid-JSON (requests' JSONDecodeError is a ValueError).
            return TransientError(f"X API: {exc.__class__.__name__}")
        return exc

    def _call(self, what: str, fn):
        return self.policy.call(what, fn, self._translate)

    # ------------------------------------------------------------------ harvesting
    def pages(self, hashtag: str, target: str, bookmark: dict[str, Any] | None) -> Iterator[Page]:
        state = bookmark or {}
        walk = state.get("walk") or {}
        since, lower, newest = _id(state.get("since_id")), _id(walk.get("until_id")), _id(walk.get("newest_id"))
        token: str | None = None
        query_until: int | None = None
        last_max = 0
        adjustments = 0

        def mark(done: bool) -> dict[str, Any]:
            if done:
                top = max(i for i in (since, newest, 0) if i is not None)
                return {"since_id": str(top) if top else None, "walk": None}
            walk_state = {"until_id": str(lower), "newest_id": str(newest)} if lower is not None else None
            return {"since_id": str(since) if since else None, "walk": walk_state}

        while True:
            left = self.budget_left()
            if left < MIN_RESULTS:
                raise BudgetExhausted(
                    f"x: monthly post budget reached ({self.used_this_month + self.read_this_run} of "
                    f"{self.monthly_cap} read this month, sources.x.monthly_cap); stopped before passing it. "
                    "The next harvest resumes where this one stopped once the budget allows.")
            max_results = min(self.page_size, left)
            if token is None or max_results != last_max:
                # A fresh query (a next_token belongs to its query's parameters): resume below the walk.
                token, query_until = None, lower
            params: dict[str, Any] = {
                "max_results": max_results, "expansions": EXPANSIONS,
                "tweet_fields": TWEET_FIELDS, "user_fields": USER_FIELDS,
                "since_id": str(since) if since else None,
                "until_id": str(query_until) if query_until else None, "next_token": token,
            }
            try:
                body = self._call(f"x #{hashtag}",
                                  lambda params=params: self.client.search_recent_tweets(f"#{hashtag}", **params))
            except _IdTooOld as exc:
                adjustments += 1
                if adjustments > 3:
                    raise SourceError(f"x #{hashtag}: the search window keeps refusing our ids: {exc}") from None
                log.warning("x #%s: X searches only the last 7 days; posts older than that can no longer be "
                            "collected (%s)", hashtag, exc)
                if "until_id" in exc.floors:  # the rest of the walk fell out of the window: close it
                    since = max(i for i in (since, newest, 0) if i is not None) or None
                    lower = newest = None
                if "since_id" in exc.floors:
                    since = exc.floors["since_id"] + _EDGE_MARGIN
                    if lower is not None and since >= lower:  # nothing reachable is left below the walk
                        since, lower, newest = max(since, newest or 0), None, None
                token = None
                continue
            last_max = max_results
            data = body.get("data") if isinstance(body.get("data"), list) else []
            self.read_this_run += len(data)
            page = self._page(body, hashtag)
            ids = [i for i in (_id(t.get("id")) for t in data if isinstance(t, dict)) if i is not None]
            if ids:
                newest = max(ids + ([newest] if newest else []))
                lower = min(ids + ([lower] if lower else []))
            meta = body.get("meta") if isinstance(body.get("meta"), dict) else {}
            token = meta.get("next_token") if isinstance(meta.get("next_token"), str) else None
            page.bookmark = mark(done=token is None)
            yield page
            if token is None:
                return

    def _page(self, body: dict, hashtag: str) -> Page:
        page = Page(posts=[])
        for raw in split_page(body):
            page.add(to_post(raw), hashtag)
        return page

    def still_present(self, source_ids: list[str]) -> set[str]:
        """Ids that X still serves; deleted, suspended and protected posts come back in `errors`."""
        present: set[str] = set()
        for i in range(0, len(source_ids), LOOKUP_BATCH):
            chunk = source_ids[i:i + LOOKUP_BATCH]
            body = self._call("x lookup", lambda chunk=chunk: self.client.get_tweets(chunk))
            for tweet in body.get("data") or []:
                if isinstance(tweet, dict) and isinstance(tweet.get("id"), str):
                    present.add(tweet["id"])
        return present


def build(ctx) -> XSource:
    cfg = ctx.cfg.sources.x
    token = ctx.env.get(cfg.bearer_token_env)
    if not token:
        raise MissingCredentials(SOURCE, [cfg.bearer_token_env])
    client = XClient(token, base_url=cfg.base_url, timeout=ctx.cfg.harvest.timeout)
    return XSource(client, policy=ctx.policy, credential_env=cfg.bearer_token_env, page_size=cfg.page_size,
                   monthly_cap=cfg.monthly_cap, used_this_month=ctx.used_this_month(SOURCE))
