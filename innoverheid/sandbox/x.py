"""A local stand-in for the X API v2 (recent search and tweet lookup) on 127.0.0.1.

Shapes follow the recorded api.twitter.com responses in shared/fixtures/recorded/twitter
(tweepy's VCR cassettes and the v2 documentation examples): `data`, `includes.users`,
`includes.tweets`, `meta` with newest_id/oldest_id/result_count/next_token, the
x-rate-limit-* headers, and error bodies in the v2 problem format. Only requested fields are
returned, as the real API does. Tweet ids are snowflakes derived from the post's time, so
since_id/until_id order them the way X does.
"""

from __future__ import annotations

import bisect
import hashlib
import math
import re
import time
from datetime import UTC, datetime
from typing import Any

from innoverheid.sandbox.sample import SamplePost
from innoverheid.sandbox.server import LocalServer, Request, Response

TWITTER_EPOCH_MS = 1288834974657
DEFAULT_TWEET_FIELDS = {"id", "text", "edit_history_tweet_ids"}
DEFAULT_USER_FIELDS = {"id", "name", "username"}
RATE_LIMIT = 450  # search/recent, app auth (recorded x-rate-limit-limit)
_TAG = re.compile(r"(?<![\w&])#(\w+)")
_MENTION = re.compile(r"(?<!\w)@(\w{1,15})")
_INVALID = "https://api.twitter.com/2/problems/invalid-request"


def snowflake(created_at: datetime, seq: int) -> int:
    ms = int(created_at.timestamp() * 1000) - TWITTER_EPOCH_MS
    return (max(ms, 0) << 22) | (seq & 0x3FFFFF)


def _problem(status: int, title: str, detail: str, kind: str = "about:blank", **extra: Any) -> Response:
    body: dict[str, Any] = {**extra, "title": title, "detail": detail, "type": kind}
    if kind == "about:blank":
        body["status"] = status
    return Response(status, body)


def _invalid(param: str, value: str, message: str) -> Response:
    return _problem(400, "Invalid Request", "One or more parameters to your request was invalid.", _INVALID,
                    errors=[{"parameters": {param: [value]}, "message": message}])


def _entities(text: str) -> dict:
    out: dict[str, list] = {}
    tags = [{"start": m.start(), "end": m.end(), "tag": m.group(1)} for m in _TAG.finditer(text)]
    mentions = [{"start": m.start(), "end": m.end(), "username": m.group(1)} for m in _MENTION.finditer(text)]
    if tags:
        out["hashtags"] = tags
    if mentions:
        out["mentions"] = mentions
    return out


class XServer(LocalServer):
    """GET /2/tweets/search/recent and GET /2/tweets with bearer auth.

    Options: `bearer_token` (what the fake accepts), `searchable_since` (older posts are out of
    the search window and since_id/until_id below it get X's 400), `usage_cap` (posts served
    before X's monthly usage-capped 429), `rate_limit_reset` (seconds ahead a scripted 429 resets).
    """

    def __init__(self, posts: list[SamplePost], faults: list[str | None] | None = None, *,
                 bearer_token: str = "fake-x-bearer-token", searchable_since: datetime | None = None,
                 usage_cap: int | None = None, rate_limit_reset: float = 1.0):
        super().__init__(faults, rate_limit_reset)
        self.bearer_token = bearer_token
        self.floor_id = snowflake(searchable_since, 0) if searchable_since else 0
        self.searchable_since = searchable_since
        self.usage_cap = usage_cap
        self.posts_served = 0
        self._samples: dict[str, SamplePost] = {}
        self._ids: dict[str, str] = {}  # sample id -> tweet id
        self._tweets: dict[str, dict] = {}  # tweet id -> full tweet object
        self._users: dict[str, dict] = {}  # user id -> user object
        self._by_tag: dict[str, list[int]] = {}  # lower-case tag -> ascending tweet ids
        self._window_end = int(time.time()) + 900
        self.add(posts)
        self.route("GET", "/2/tweets/search/recent", self._search)
        self.route("GET", "/2/tweets", self._lookup)

    # ---------------------------------------------------------------- data
    def tweet_id(self, sample_id: str) -> str:
        return self._ids[sample_id]

    def add(self, posts: list[SamplePost]) -> None:
        """Publish more posts (a later harvest sees them as new)."""
        for p in posts:
            self._samples[p.id] = p
            self._ids[p.id] = str(snowflake(p.created_at, len(self._ids)))
            self._users[self._uid(p)] = {"id": self._uid(p), "name": p.author_name, "username": p.author}
        touched: set[str] = set()
        for p in posts:
            tweet, tags = self._render(p)
            self._tweets[tweet["id"]] = tweet
            for tag in tags:
                self._by_tag.setdefault(tag, []).append(int(tweet["id"]))
                touched.add(tag)
        for tag in touched:
            self._by_tag[tag].sort()

    def remove(self, sample_ids: list[str]) -> None:
        """Delete posts at the 'platform' (for the deletion check)."""
        for sid in sample_ids:
            tid = self._ids[sid]
            self._tweets.pop(tid, None)
            for ids in self._by_tag.values():
                i = bisect.bisect_left(ids, int(tid))
                if i < len(ids) and ids[i] == int(tid):
                    ids.pop(i)

    def _full_text(self, p: SamplePost) -> str:
        present = {t.lower() for t in _TAG.findall(p.text)}
        return (p.text + "".join(f" #{h}" for h in p.hashtags if h.lower() not in present)).strip()

    def _uid(self, p: SamplePost) -> str:
        return str(int(hashlib.sha1(p.author.encode()).hexdigest()[:12], 16))

    def _render(self, p: SamplePost) -> tuple[dict, set[str]]:
        tid, refs = self._ids[p.id], []
        orig = self._samples.get(p.repost_of or "")
        hops = 0
        while orig is not None and orig.repost_of in self._samples and hops < 50:  # X retweets the original
            orig, hops = self._samples[orig.repost_of], hops + 1
        text = self._full_text(p)
        tags = {t.lower() for t in _TAG.findall(text)}
        if orig is not None:
            full = f"RT @{orig.author}: {self._full_text(orig)}"
            text = full if len(full) <= 140 else full[:139] + "…"  # X cuts retweet text like this
            tags = {t.lower() for t in _TAG.findall(self._full_text(orig))}  # search matches the original
            refs.append({"type": "retweeted", "id": self._ids[orig.id]})
        else:
            if p.quote_of in self._ids:
                refs.append({"type": "quoted", "id": self._ids[p.quote_of]})
            if p.reply_to in self._ids:
                refs.append({"type": "replied_to", "id": self._ids[p.reply_to]})
        root, seen = p, 0
        while root.reply_to in self._samples and seen < 50 and orig is None:
            root, seen = self._samples[root.reply_to], seen + 1
        tweet: dict[str, Any] = {
            "author_id": self._uid(p),
            "conversation_id": self._ids[root.id],
            "created_at": p.created_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.")
            + f"{p.created_at.microsecond // 1000:03d}Z",
            "edit_history_tweet_ids": [tid],
            "entities": _entities(text),
            "id": tid,
            "lang": p.lang,
            "public_metrics": {"retweet_count": p.reposts, "reply_count": p.replies, "like_count": p.likes,
                               "quote_count": 0, "bookmark_count": 0, "impression_count": 0},
            "text": text,
        }
        if not tweet["entities"]:
            del tweet["entities"]
        if refs:
            tweet["referenced_tweets"] = refs
        if orig is None and p.reply_to in self._samples:
            tweet["in_reply_to_user_id"] = self._uid(self._samples[p.reply_to])
        return tweet, tags

    # ---------------------------------------------------------------- wire format
    def is_data_request(self, req: Request) -> bool:
        return req.path.startswith("/2/")

    def _limit_headers(self, remaining: int | None = None, reset: int | None = None) -> dict[str, str]:
        if remaining is None:
            remaining = max(0, RATE_LIMIT - len(self.requests) % RATE_LIMIT)
        return {"api-version": "2.52", "x-rate-limit-limit": str(RATE_LIMIT),
                "x-rate-limit-remaining": str(remaining), "x-rate-limit-reset": str(reset or self._window_end)}

    def rate_limit_response(self, reset_at: datetime) -> Response:
        resp = _problem(429, "Too Many Requests", "Too Many Requests")
        resp.headers = self._limit_headers(0, math.ceil(reset_at.timestamp()))
        return resp

    def error_response(self, status: int) -> Response:
        titles = {500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable"}
        title = titles.get(status, "Error")
        return _problem(status, title, title)

    def malformed(self, response: Response) -> Response:
        body = response.body
        if isinstance(body, dict) and isinstance(body.get("data"), list) and body["data"]:
            data = list(body["data"])
            i = len(data) // 2
            data[i] = {**data[i], "text": None, "created_at": "2021-02-30T25:61:00.000Z"}
            response.body = {**body, "data": data}
        return response

    def _auth(self, req: Request) -> Response | None:
        if req.headers.get("authorization") != f"Bearer {self.bearer_token}":
            return _problem(401, "Unauthorized", "Unauthorized")
        return None

    @staticmethod
    def _fields(req: Request, name: str, default: set[str]) -> set[str]:
        return default | {f for f in (req.arg(name) or "").split(",") if f}

    def _shape(self, tweet: dict, fields: set[str]) -> dict:
        return {k: v for k, v in tweet.items() if k in fields}

    def _respond(self, req: Request, tweets: list[dict], extra: dict[str, Any]) -> Response:
        tweet_fields = self._fields(req, "tweet.fields", DEFAULT_TWEET_FIELDS)
        user_fields = self._fields(req, "user.fields", DEFAULT_USER_FIELDS)
        expansions = set((req.arg("expansions") or "").split(","))
        body: dict[str, Any] = {}
        if tweets:
            body["data"] = [self._shape(t, tweet_fields) for t in tweets]
        included: dict[str, dict] = {}
        if "referenced_tweets.id" in expansions:
            for t in tweets:
                for ref in t.get("referenced_tweets", []):
                    if ref["id"] in self._tweets:
                        included.setdefault(ref["id"], self._tweets[ref["id"]])
        user_ids: dict[str, None] = {}
        if "author_id" in expansions:
            user_ids.update(dict.fromkeys(t["author_id"] for t in tweets))
        if "referenced_tweets.id.author_id" in expansions:
            user_ids.update(dict.fromkeys(t["author_id"] for t in included.values()))
        includes: dict[str, list] = {}
        if user_ids:
            includes["users"] = [{k: v for k, v in self._users[u].items() if k in user_fields} for u in user_ids]
        if included:
            includes["tweets"] = [self._shape(t, tweet_fields) for t in included.values()]
        if includes:
            body["includes"] = includes
        body.update(extra)
        return Response(200, body, self._limit_headers())

    def _search(self, req: Request) -> Response:
        denied = self._auth(req)
        if denied:
            return denied
        query = req.arg("query") or ""
        tags = [t.lower() for t in _TAG.findall(query)]
        if len(tags) != 1 or query.strip().lower() != f"#{tags[0]}":
            return _invalid("query", query, "This fake X API supports one hashtag per query, e.g. '#innoverheid'")
        raw_max = req.arg("max_results") or "10"
        if not raw_max.isdigit() or not 10 <= int(raw_max) <= 100:
            return _invalid("max_results", raw_max,
                            f"The `max_results` query parameter value [{raw_max}] is not between 10 and 100")
        bounds: dict[str, int] = {}
        for param in ("since_id", "until_id"):
            value = req.arg(param)
            if value is None:
                continue
            if not value.isdigit():
                return _invalid(param, value, f"The `{param}` query parameter value [{value}] is not valid")
            if int(value) < self.floor_id:
                assert self.searchable_since is not None
                return _invalid(param, value, f"'{param}' must be a tweet id created after "
                                f"{self.searchable_since:%Y-%m-%dT%H:%MZ}. Please use a '{param}' that is "
                                f"larger than {self.floor_id}")
            bounds[param] = int(value)
        upper = bounds.get("until_id", 1 << 63)
        token = req.arg("next_token")
        if token is not None:
            if not token.startswith("b26v89c") or not token[7:].isalnum():
                return _invalid("next_token", token, f"The `next_token` query parameter value [{token}] is not valid")
            upper = min(upper, int(token[7:], 36))
        if self.usage_cap is not None and self.posts_served >= self.usage_cap:
            resp = _problem(429, "UsageCapExceeded", "Usage cap exceeded: Monthly product cap",
                            "https://api.twitter.com/2/problems/usage-capped", period="Monthly", scope="Product")
            resp.headers = self._limit_headers()
            return resp
        ids = self._by_tag.get(tags[0], [])
        low = max(bounds.get("since_id", -1), self.floor_id - 1)
        lo, hi = bisect.bisect_right(ids, low), bisect.bisect_left(ids, upper)
        chosen = [str(i) for i in reversed(ids[max(lo, hi - int(raw_max)):hi])]
        tweets = [self._tweets[t] for t in chosen]
        self.posts_served += len(tweets)
        meta: dict[str, Any] = {"result_count": len(tweets)}
        if tweets:
            meta = {"newest_id": chosen[0], "oldest_id": chosen[-1], "result_count": len(tweets)}
        if hi - int(raw_max) > lo:
            meta["next_token"] = "b26v89c" + _base36(int(chosen[-1]))
        return self._respond(req, tweets, {"meta": meta})

    def _lookup(self, req: Request) -> Response:
        denied = self._auth(req)
        if denied:
            return denied
        ids = [i for i in (req.arg("ids") or "").split(",") if i]
        if not 1 <= len(ids) <= 100:
            return _invalid("ids", req.arg("ids") or "", f"The number of values in the `ids` query parameter "
                            f"list [{len(ids)}] is not between 1 and 100")
        found = [self._tweets[i] for i in ids if i in self._tweets]
        errors = [{"value": i, "detail": f"Could not find tweet with ids: [{i}].", "title": "Not Found Error",
                   "resource_type": "tweet", "parameter": "ids", "resource_id": i,
                   "type": "https://api.twitter.com/2/problems/resource-not-found"}
                  for i in ids if i not in self._tweets]
        return self._respond(req, found, {"errors": errors} if errors else {})

    # ---------------------------------------------------------------- wiring
    def configure(self, config: dict, env: dict) -> None:
        """Point a config dict (the YAML structure) at this fake, enable X and set a dummy token."""
        x = config.setdefault("sources", {}).setdefault("x", {})
        x.update(enabled=True, base_url=self.url)
        env[x.get("bearer_token_env", "X_BEARER_TOKEN")] = self.bearer_token


def _base36(n: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while n:
        n, r = divmod(n, 36)
        out = digits[r] + out
    return out or "0"
