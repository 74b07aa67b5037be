"""Mastodon: the hashtag timeline of every configured instance, through Mastodon.py.

Federation means each instance sees a different part of the conversation, so every instance
is a target with its own bookmark, and the status `uri` is the identity (one row however
many instances showed it).

Paging is oldest-first from the bookmark: `min_id` returns the statuses just above it, and
the Link header's `prev` (Mastodon.py's pagination info) names the next `min_id`. The newest
id stored only ever grows, and every status below it on that instance has been seen, so the
bookmark advances safely page by page and a killed run resumes where it stopped. Remote
posts get ids from their publication time, so one that federates in late can sort below the
bookmark: each run starts `overlap_minutes` below it (Mastodon ids are snowflakes: the
millisecond timestamp shifted left 16 bits). The first run (no bookmark) starts at min_id=0
and reads the instance's whole history of the tag, oldest first, so posts from before the
first harvest are kept too.

Mastodon.py is told not to sleep or retry (ratelimit_method="throw", no version probing at
construction); waits and retries go through RetryPolicy. Statuses are requested through
Mastodon.py's own pagination call with its untyped list type, so they arrive as the
server's JSON (kept as the raw payload) instead of being cast into typed objects, which
costs ~1.6 ms a status and would cap a harvest near 600 posts/s.

The access token is optional (public hashtag timelines need none). A Mastodon token belongs
to one instance and must never be sent to another: the variable holds either one token,
used only on the first configured instance, or `host=TOKEN` pairs (space/comma separated).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from typing import Any, ClassVar, TypeVar
from urllib.parse import quote, urlsplit

from mastodon import Mastodon
from mastodon.errors import (
    MastodonAPIError,
    MastodonNetworkError,
    MastodonNotFoundError,
    MastodonRatelimitError,
    MastodonServerError,
)
from mastodon.types_base import PaginatableList

from harvester.base import AuthError, BadItem, Page, Post, RateLimited, SourceError, TransientError
from harvester.mastodon_map import NAME, to_post
from harvester.retry import RetryPolicy

log = logging.getLogger("innoverheid.harvest")
T = TypeVar("T")

USER_AGENT = "innoverheid (+Mastodon.py)"
_SNOWFLAKE_MIN_MS = 1_000_000_000_000  # ids below this (ms since 1970 << 16) are not snowflakes
_STATUS_URI = re.compile(r"^(https?://[^/]+)/(?:ap/)?users/[^/]+/statuses/(\d+)(?:/activity)?/?$")
_BATCH = 20  # ids per GET /api/v1/statuses?id[]= (Mastodon 4.3+)
_URI_MEMORY = 200_000  # local id -> uri entries kept per instance to resolve replies


def base_url(url: str) -> str:
    parts = urlsplit(url.strip())
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}"


def parse_tokens(value: str | None, instances: list[str]) -> dict[str, str]:
    """Map instance base URL -> token, never giving an instance another instance's token."""
    if not value or not value.strip() or not instances:
        return {}
    by_host = {urlsplit(base_url(u)).netloc: base_url(u) for u in instances}
    out: dict[str, str] = {}
    parts = [p for p in re.split(r"[\s,;]+", value.strip()) if p]
    for part in parts:
        key, sep, token = part.partition("=")
        if not sep or not re.search(r"[.:/]", key):
            if len(parts) == 1:
                return {base_url(instances[0]): part}  # one bare token: the first instance's
            continue
        host = urlsplit(key if "//" in key else f"//{key}").netloc.lower()
        if host in by_host and token:
            out[by_host[host]] = token
        else:
            log.warning("mastodon: the access token variable names %s, which is not a configured instance", host)
    return out


class MastodonSource:
    name: ClassVar[str] = NAME

    def __init__(self, clients: dict[str, Mastodon], policy: RetryPolicy, *, page_size: int = 40,
                 overlap_minutes: int = 60, token_env: str | None = "MASTODON_TOKEN"):
        self.clients = {base_url(url): api for url, api in clients.items()}
        self.policy = policy
        self.page_size = page_size
        self.overlap_minutes = overlap_minutes
        self.token_env = token_env
        self._uris: dict[str, dict[str, str]] = {}

    def targets(self) -> list[str]:
        return list(self.clients)

    # ------------------------------------------------------------------ harvesting
    def pages(self, hashtag: str, target: str, bookmark: dict[str, Any] | None) -> Iterator[Page]:
        api = self.clients[base_url(target)]
        tag = hashtag.lower().lstrip("#")
        newest: str | None = (bookmark or {}).get("newest_id")
        newest = str(newest) if newest is not None else None
        min_id = self._floor(newest) if newest else "0"
        self._check_tag_feed(api, target)
        endpoint = f"/api/v1/timelines/tag/{quote(tag, safe='')}"
        while True:
            info = {"_pagination_method": "GET", "_pagination_endpoint": endpoint,
                    "_mastopy_type": PaginatableList, "min_id": min_id, "limit": self.page_size}
            batch = self._call(target, f"#{tag} min_id={min_id}", lambda i=info: api.fetch_previous(i))
            if not batch:
                return
            page, page_newest = self._page(batch, tag, target)
            newest = _max_id(newest, page_newest)
            page.bookmark = {"newest_id": newest}
            yield page
            link = api.get_pagination_info(batch, "previous")
            next_min = str(link["min_id"]) if link and link.get("min_id") is not None else page_newest
            if next_min is None or _id_key(next_min) <= _id_key(min_id):
                return  # the server did not move forward: stop rather than loop
            min_id = next_min

    def _page(self, batch: list, tag: str, target: str) -> tuple[Page, str | None]:
        uri_of = self._uris.setdefault(target, {})
        if len(uri_of) > _URI_MEMORY:
            uri_of.clear()
        page, newest = Page(posts=[]), None
        for raw in reversed(batch):  # oldest first, so a reply's parent is known before it
            rid = raw.get("id") if isinstance(raw, dict) else None
            if isinstance(rid, (str, int)) and not isinstance(rid, bool):
                newest = _max_id(newest, str(rid))
            item = to_post(raw, target, uri_of)
            if not isinstance(item, BadItem):
                self._remember(uri_of, raw, item)  # off-topic posts can still be replied to
            page.add(item, tag)
        return page, newest

    @staticmethod
    def _remember(uri_of: dict[str, str], raw: dict, post: Post) -> None:
        if raw.get("id") is not None:
            uri_of[str(raw["id"])] = post.source_id
        reblog = raw.get("reblog")
        if isinstance(reblog, dict) and reblog.get("id") is not None:
            uri_of[str(reblog["id"])] = reblog["uri"]

    def _floor(self, newest: str) -> str:
        """The bookmark minus the overlap window, when the id is a snowflake."""
        if self.overlap_minutes <= 0 or not newest.isdigit() or int(newest) >> 16 < _SNOWFLAKE_MIN_MS:
            return newest
        ms = (int(newest) >> 16) - self.overlap_minutes * 60_000
        return str(ms << 16)

    def _check_tag_feed(self, api: Mastodon, target: str) -> None:
        # Mastodon 4.4+ can restrict hashtag feeds to logged-in users; say so plainly up front.
        # (Reads the cached instance document; any failure there counts as "available".)
        if not api.timeline_is_available("hashtag", with_auth=api.access_token is not None, fail_hard=False):
            raise SourceError(self._needs_token(target))

    # ------------------------------------------------------------------ deletion check
    def still_present(self, source_ids: list[str]) -> set[str]:
        """The uris that still exist, asked of the instance each post comes from.

        A post whose home server is not a configured instance cannot be checked from here and
        counts as present (we never delete on a guess).
        """
        present: set[str] = set()
        wanted: dict[str, dict[str, str]] = {}
        for uri in source_ids:
            match = _STATUS_URI.match(uri or "")
            home = base_url(match.group(1)) if match else None
            if home in self.clients:
                wanted.setdefault(home, {})[match.group(2)] = uri
            else:
                present.add(uri)
        for target, ids in wanted.items():
            api = self.clients[target]
            if api.verify_minimum_version("4.3.0", cached=True):
                local, uris = list(ids), set(ids.values())
                for i in range(0, len(local), _BATCH):
                    chunk = local[i:i + _BATCH]
                    found = self._call(target, "status lookup", lambda a=api, c=chunk: a.statuses(c), lookup=True)
                    # By the local id asked for, not only the uri: a status whose uri is missing or
                    # mangled in the answer still exists, and must not be erased as deleted.
                    present |= {ids[str(s.get("id"))] for s in found or [] if str(s.get("id")) in ids}
                    present |= {s.get("uri") for s in found or [] if s.get("uri") in uris}
                continue
            for local_id, uri in ids.items():
                try:
                    self._call(target, f"status {local_id}", lambda a=api, i=local_id: a.status(i),
                               lookup=True)
                    present.add(uri)
                except MastodonNotFoundError:
                    pass  # deleted (or no longer public): gone
        return present

    # ------------------------------------------------------------------ errors
    def _call(self, target: str, what: str, fn: Callable[[], T], lookup: bool = False) -> T:
        api = self.clients[target]
        return self.policy.call(f"mastodon {urlsplit(target).netloc} {what}", fn,
                                lambda exc: self._translate(exc, target, api, lookup))

    def _needs_token(self, target: str, detail: str = "") -> str:
        host = urlsplit(target).netloc
        var = self.token_env or "(set sources.mastodon.access_token_env)"
        return (f"{host}{' answered ' + detail if detail else ''}: this instance shows hashtag timelines only "
                f"to logged-in users; put an access token for it in the environment variable {var} "
                f"as {host}=TOKEN")

    def _translate(self, exc: Exception, target: str, api: Mastodon, lookup: bool = False) -> Exception:
        host = urlsplit(target).netloc
        if isinstance(exc, MastodonRatelimitError):
            reset = api.ratelimit_reset
            at = datetime.fromtimestamp(reset, timezone.utc) if reset else None
            return RateLimited(at, f"reset announced for {at:%H:%M:%S} UTC" if at else "")
        if isinstance(exc, MastodonNetworkError):
            return TransientError(f"network error ({str(exc)[:200]})")
        if not isinstance(exc, MastodonAPIError):
            return exc
        status = exc.args[1] if len(exc.args) > 1 and isinstance(exc.args[1], int) else None
        detail = f"{status} {exc.args[3]}" if len(exc.args) > 3 and exc.args[3] else str(status)
        if isinstance(exc, MastodonServerError) or (status or 0) >= 500 or status in (408, 425):
            return TransientError(f"server error {detail}")
        if status is None:  # Mastodon.py could not parse the body: cut off or not JSON
            return TransientError("unreadable response (cut off or not JSON)")
        if status == 429:
            return RateLimited(None)
        if status in (401, 403):
            if api.access_token is not None:
                return AuthError(NAME, self.token_env or "sources.mastodon.access_token_env",
                                 f"{host} answered {detail}")
            return SourceError(self._needs_token(target, detail))
        if isinstance(exc, MastodonNotFoundError):
            # A looked-up status that is gone is an answer; a missing timeline is a wrong URL.
            return exc if lookup else SourceError(f"{host} has no such API path ({detail}); is it a Mastodon server?")
        return SourceError(f"the API refused the request ({detail})")


def _id_key(value: str) -> tuple[int, str]:
    # Mastodon ids are decimal strings of growing length; other servers use fixed-width ids.
    return (len(value), value)


def _max_id(a: str | None, b: str | None) -> str | None:
    if a is None or b is None:
        return a or b
    return a if _id_key(a) >= _id_key(b) else b


def build(ctx) -> MastodonSource:
    """One Mastodon.py client per configured instance; no token needed for public timelines."""
    cfg = ctx.cfg.sources.mastodon
    env_name = cfg.access_token_env
    tokens = parse_tokens(ctx.env.get(env_name) if env_name else None, cfg.instances)
    clients = {
        base_url(url): Mastodon(
            api_base_url=base_url(url),
            access_token=tokens.get(base_url(url)),
            ratelimit_method="throw",  # 429 -> exception -> RetryPolicy waits for the reset
            request_timeout=ctx.cfg.harvest.timeout,
            version_check_mode="none",  # no requests at construction; checked lazily from the fake/instance
            user_agent=USER_AGENT,
        )
        for url in cfg.instances
    }
    return MastodonSource(clients, ctx.policy, page_size=cfg.page_size,
                          overlap_minutes=getattr(cfg, "overlap_minutes", 60), token_env=env_name)
