"""Bluesky: app.bsky.feed.searchPosts by tag, newest first, through the atproto SDK.

Login is rate limited (about 30 per 5 minutes, 300 a day per account), so the session (the
SDK's session string: it holds tokens) lives in a 0600 file under the state folder, never in
the database, and is reused across runs; the SDK refreshes it, and we log in with the app
password only when there is none or the server refused it, at most once per run.

Search pages newest first and answers at most ~10,000 results per query, so a walk keeps its
progress in the bookmark and narrows `until` to the oldest post seen when the cap is reached.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import httpx
from atproto import Client, SessionEvent, models
from atproto_client.exceptions import (BadRequestError, LoginRequiredError, NetworkError, RateLimitExceededError,
                                       RequestErrorBase, UnauthorizedError)
from atproto_client.request import Request
from atproto_server.exceptions import InvalidTokenError

from harvester.base import AuthError, MissingCredentials, Page, RateLimited, SourceError, TransientError
from harvester.bluesky_map import map_page
from harvester.retry import RetryPolicy

if TYPE_CHECKING:
    from harvester.registry import BuildContext

log = logging.getLogger("innoverheid.harvest")
T = TypeVar("T")

SESSION_FILE = "bluesky-session.json"
_TOKEN_ERRORS = {"ExpiredToken", "InvalidToken"}  # the PDS answers these with 400
_GET_POSTS_BATCH = 25  # app.bsky.feed.getPosts takes at most 25 uris
_EPSILON = timedelta(milliseconds=1)  # `until` is exclusive: resume just above the edge


@dataclass(frozen=True)
class BlueskySettings:
    base_url: str = "https://bsky.social"
    handle_env: str = "BSKY_HANDLE"
    app_password_env: str = "BSKY_APP_PASSWORD"
    page_size: int = 100
    overlap_minutes: int = 10
    search_cap: int = 10000


@dataclass(frozen=True)
class Credentials:
    handle: str
    app_password: str = field(repr=False)  # never in a repr, log line or message


class SessionFile:
    """The SDK session string in a 0600 JSON file, tied to the server and account it belongs to."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def load(self, base_url: str, identifier: str) -> str | None:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(data, dict) or (data.get("base_url"), data.get("identifier")) != (base_url, identifier):
            return None  # another server or account: not ours to reuse
        if self.path.stat().st_mode & 0o077:
            os.chmod(self.path, 0o600)
        return data.get("session") if isinstance(data.get("session"), str) else None

    def save(self, base_url: str, identifier: str, session: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump({"base_url": base_url, "identifier": identifier, "session": session}, fh)
        os.chmod(tmp, 0o600)
        os.replace(tmp, self.path)  # atomic: a kill never leaves half a session behind


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _parse(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    return datetime.fromisoformat(value)


def _error_name(exc: Exception) -> str | None:
    content = getattr(getattr(exc, "response", None), "content", None)
    return getattr(content, "error", None)


class _CapReached(Exception):
    """The search refused to page deeper ("can't paginate so deep")."""


class BlueskySource:
    name: ClassVar[str] = "bluesky"

    def __init__(self, client: Client, settings: BlueskySettings, credentials: Credentials,
                 policy: RetryPolicy, session_file: SessionFile | None = None):
        self.client = client
        self.settings = settings
        self.credentials = credentials
        self.policy = policy
        self.session_file = session_file
        self.logins = 0  # password logins this run (at most one)
        self._ready = False
        self._stored_refused = False
        client.on_session_change(self._on_session_change)

    def targets(self) -> list[str]:
        return [""]

    # ---------------------------------------------------------------- session

    def _on_session_change(self, event: SessionEvent, session: Any) -> None:
        if not self.session_file or event not in (SessionEvent.CREATE, SessionEvent.REFRESH):
            return
        try:
            self.session_file.save(self.settings.base_url, self.credentials.handle, session.export())
        except OSError as exc:  # the harvest goes on; the next run just logs in again
            log.warning("bluesky: could not store the session in %s (%s)", self.session_file.path,
                        exc.__class__.__name__)

    def _ensure_session(self) -> None:
        if self._ready:
            return
        stored = None
        if self.session_file and not self._stored_refused:
            stored = self.session_file.load(self.settings.base_url, self.credentials.handle)
        if stored:
            try:
                self.client.login(session_string=stored, fetch_bsky_profile=False)  # local: no request
                self._ready = True
                return
            except Exception:  # noqa: BLE001 - an unreadable session file just means logging in
                log.info("bluesky: stored session unreadable; logging in again")
        self._login()

    def _login(self) -> None:
        log.info("bluesky: logging in with the app password from %s", self.settings.app_password_env)
        self.client.login(self.credentials.handle, self.credentials.app_password, fetch_bsky_profile=False)
        self.logins += 1
        self._ready = True

    @staticmethod
    def _refused(exc: Exception) -> bool:
        """The server (or the SDK) says the session is no good: expired, revoked or unreadable."""
        if isinstance(exc, (LoginRequiredError, InvalidTokenError, UnauthorizedError)):
            return True
        return isinstance(exc, BadRequestError) and _error_name(exc) in _TOKEN_ERRORS

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        def attempt() -> T:
            self._ensure_session()
            try:
                return fn()
            except Exception as exc:
                if not self._refused(exc) or self.logins:
                    raise
                log.info("bluesky: the stored session was refused (%s); logging in again",
                         _error_name(exc) or exc.__class__.__name__)
                self._ready, self._stored_refused = False, True
            self._ensure_session()
            return fn()

        return self.policy.call(what, attempt, self._translate)

    def _translate(self, exc: Exception) -> Exception:
        if isinstance(exc, RateLimitExceededError):
            reset = exc.reset_at
            if reset is None and exc.retry_after is not None:
                reset = self.policy.now() + timedelta(seconds=exc.retry_after)
            return RateLimited(reset, "Bluesky rate limit")
        if self._refused(exc) or (isinstance(exc, RequestErrorBase) and exc.response is not None
                                  and exc.response.status_code == 403):
            detail = f"{_error_name(exc) or exc}; the account is the one in {self.settings.handle_env}"
            return AuthError(self.name, self.settings.app_password_env, detail)
        if isinstance(exc, (NetworkError, httpx.TransportError)):
            return TransientError(f"network: {exc.__class__.__name__} {exc}".strip())
        if isinstance(exc, RequestErrorBase) and exc.response is not None:
            if exc.response.status_code >= 500:
                return TransientError(f"server error {exc}")
            return SourceError(f"Bluesky refused the request: {exc}")
        return exc

    def _query(self, nsid: str, params: Any) -> dict:
        """One XRPC query as raw JSON (not the SDK's models: one bad item must not fail the page)."""
        try:
            response = self.client.invoke_query(nsid, params=params)
        except ValueError as exc:  # the SDK parses JSON bodies; a cut-off body does not parse
            raise TransientError(f"unparsable response from {nsid}: {exc.__class__.__name__}") from None
        body = response.content
        if not isinstance(body, dict) or not isinstance(body.get("posts"), list):
            raise TransientError(f"unexpected response from {nsid} (no posts list)")
        return body

    # ---------------------------------------------------------------- harvest

    def _search(self, tag: str, since: datetime | None, until: datetime | None, cursor: str | None) -> dict:
        params = models.AppBskyFeedSearchPosts.Params(
            q=f"#{tag}", tag=[tag], sort="latest", limit=self.settings.page_size,
            since=_iso(since), until=_iso(until), cursor=cursor,
        )

        def fetch() -> dict:
            try:
                return self._query("app.bsky.feed.searchPosts", params)
            except BadRequestError as exc:
                # The index refuses offsets past its cap with a 400 on a cursor it issued itself.
                if cursor and not self._refused(exc):
                    raise _CapReached() from None
                raise

        return self._call(f"bluesky searchPosts #{tag}", fetch)

    def pages(self, hashtag: str, target: str, bookmark: dict[str, Any] | None) -> Iterator[Page]:
        """Walk the search newest first down to the old mark; the mark moves only when the walk ends."""
        tag = hashtag.lower().lstrip("#")
        state = bookmark or {}
        mark = _parse(state.get("mark"))
        walk = state.get("walk") or {}
        top, edge = _parse(walk.get("top")), _parse(walk.get("edge"))
        since = mark - timedelta(minutes=self.settings.overlap_minutes) if mark else None
        # Resuming a walk killed half way: continue from the lower edge already stored.
        until = edge + _EPSILON if edge else None
        while True:  # one search query per round; another round only when the cap was reached
            cursor: str | None = None
            requests = 0
            capped = False
            while True:
                try:
                    body = self._search(tag, since, until, cursor)
                except _CapReached:
                    capped = True
                    break
                requests += 1
                items = body["posts"]
                page, low, high = map_page(items, tag)
                top = max(filter(None, (top, high)), default=None)
                edge = min(filter(None, (edge, low)), default=None)
                nxt = body.get("cursor")
                cursor = nxt if isinstance(nxt, str) and nxt and items else None
                if cursor is None:
                    # No cursor after as many pages as the cap allows: the index stopped, not the data.
                    capped = items != [] and requests * self.settings.page_size >= self.settings.search_cap
                done = cursor is None and not capped
                page.bookmark = self._bookmark(mark, top, edge, done)
                yield page
                if cursor is None:
                    break
            if not capped:
                return
            narrowed = edge + _EPSILON if edge else None
            if narrowed is None or (until is not None and narrowed >= until):
                log.warning("bluesky #%s: more than %d results share one millisecond; some may be missed",
                            tag, self.settings.search_cap)
                yield Page(posts=[], bookmark=self._bookmark(mark, top, edge, True))
                return
            log.info("bluesky #%s: search cap of %d results reached; narrowing until=%s",
                     tag, self.settings.search_cap, _iso(narrowed))
            until = narrowed

    @staticmethod
    def _bookmark(mark: datetime | None, top: datetime | None, edge: datetime | None, done: bool) -> dict:
        if done:
            newest = max(filter(None, (mark, top)), default=None)
            return {"mark": _iso(newest), "walk": None}
        return {"mark": _iso(mark), "walk": {"top": _iso(top), "edge": _iso(edge)}}

    def still_present(self, source_ids: list[str]) -> set[str]:
        """Which posts still exist (app.bsky.feed.getPosts, 25 per call); a repost goes with its original."""
        by_uri: dict[str, list[str]] = {}
        for sid in source_ids:
            by_uri.setdefault(sid.split("#", 1)[0], []).append(sid)
        uris = [u for u in by_uri if u.startswith("at://")]
        present: set[str] = set()
        for i in range(0, len(uris), _GET_POSTS_BATCH):
            params = models.AppBskyFeedGetPosts.Params(uris=uris[i: i + _GET_POSTS_BATCH])
            body = self._call("bluesky getPosts", lambda p=params: self._query("app.bsky.feed.getPosts", p))
            for item in body["posts"]:
                uri = item.get("uri") if isinstance(item, dict) else None
                present.update(by_uri.get(uri, []) if isinstance(uri, str) else [])
        return present


def build(ctx: BuildContext) -> BlueskySource:
    """Read the credential variables named in config, point the SDK at base_url, reuse the stored session."""
    cfg = ctx.cfg.sources.bluesky
    missing = [name for name in (cfg.handle_env, cfg.app_password_env) if not ctx.env.get(name)]
    if missing:
        raise MissingCredentials("bluesky", missing)
    settings = BlueskySettings(
        base_url=cfg.base_url, handle_env=cfg.handle_env, app_password_env=cfg.app_password_env,
        page_size=cfg.page_size, overlap_minutes=cfg.overlap_minutes, search_cap=cfg.search_cap,
    )
    client = Client(base_url=cfg.base_url, request=Request(timeout=ctx.cfg.harvest.timeout))
    return BlueskySource(
        client, settings, Credentials(ctx.env[cfg.handle_env], ctx.env[cfg.app_password_env]),
        ctx.policy, SessionFile(Path(ctx.state_dir) / SESSION_FILE),
    )
