"""A local stand-in for a few federated Mastodon instances, speaking Mastodon's REST API.

Each instance is its own LocalServer on 127.0.0.1 with its own local ids: the same post has
one `uri` (from its home instance) but a different `id` on every instance that shows it, as on
the real fediverse. `SamplePost.instances` names the instances whose tag timelines show a post
(None: all of them); the first is its home. Statuses are rendered from the recorded Mastodon 4
bodies in mastodon_recorded.json (copied from ../shared/fixtures/recorded/mastodon), with the
real paths, `min_id`/`max_id`/`since_id`/`limit` semantics, Link headers, X-RateLimit-* headers
(reset as an ISO timestamp), error bodies and bearer-token checks.
"""

from __future__ import annotations

import bisect
import html
import json
import re
import threading
import zlib
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlencode, urlsplit

from innoverheid.sandbox.sample import SamplePost
from innoverheid.sandbox.server import LocalServer, Request, Response

RECORDED = json.loads((Path(__file__).with_name("mastodon_recorded.json")).read_text(encoding="utf-8"))
_STATUS_TEMPLATE = json.dumps(RECORDED["status"])
_TOKEN_RE = re.compile(r"(https?://\S+|#\w+|@\w+)")
_INVALID_TOKEN = {"error": "The access token is invalid"}
_NEEDS_AUTH = {"error": "This method requires an authenticated user"}
_ERRORS = {500: "We're sorry, but something went wrong on our end.",
           503: "The page could not be served due to a temporary server failure."}


def _iso(dt: datetime) -> str:
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _tags(post: SamplePost) -> list[str]:
    found = [t.lower() for t in re.findall(r"(?<![\w&])#(\w+)", post.text)]
    return list(dict.fromkeys(found + [h.lower().lstrip("#") for h in post.hashtags]))


class _Federation:
    """The posts, each instance's local ids and the rendered statuses (cached as JSON bytes)."""

    def __init__(self, posts: list[SamplePost], names: list[str]):
        self.names = names
        self.posts: dict[str, SamplePost] = {}
        self.servers: dict[str, MastodonInstance] = {}
        self.ids: dict[str, dict[str, int]] = {n: {} for n in names}  # instance -> post id -> local id
        self.by_local: dict[str, dict[int, str]] = {n: {} for n in names}
        self.rendered: dict[tuple[str, str], bytes] = {}
        self.index: dict[tuple[str, str], list[int]] = {}
        self.lock = threading.RLock()
        for post in posts:
            self.add(post)

    def add(self, post: SamplePost) -> None:
        with self.lock:
            self.posts[post.id] = post
            ms = int(post.created_at.timestamp() * 1000)
            for name in self.names:  # every instance knows every post; timelines show a subset
                local = (ms << 16) | (zlib.crc32(f"{name}|{post.id}".encode()) & 0xFFFF)
                while local in self.by_local[name]:
                    local += 1
                self.ids[name][post.id] = local
                self.by_local[name][local] = post.id
            self.index.clear()

    def delete(self, post_id: str) -> None:
        with self.lock:
            self.posts.pop(post_id, None)
            for name in self.names:
                local = self.ids[name].pop(post_id, None)
                self.by_local[name].pop(local, None)
            self.rendered = {k: v for k, v in self.rendered.items() if k[1] != post_id}
            self.index.clear()

    def home(self, post: SamplePost) -> str:
        return (post.instances or self.names)[0]

    def timeline(self, name: str, tag: str) -> list[int]:
        with self.lock:
            key = (name, tag)
            if key not in self.index:
                ids = []
                for post in self.posts.values():
                    shown = (post.instances is None or name in post.instances)
                    shown_post = self.posts.get(post.repost_of) if post.repost_of else post
                    if shown and shown_post is not None and tag in _tags(shown_post):
                        ids.append(self.ids[name][post.id])
                self.index[key] = sorted(ids)
            return self.index[key]

    # ---------------------------------------------------------------- rendering
    def status_bytes(self, name: str, post_id: str) -> bytes:
        key = (name, post_id)
        data = self.rendered.get(key)
        if data is None:
            data = self.rendered[key] = json.dumps(self.status(name, self.posts[post_id]),
                                                   ensure_ascii=False).encode()
        return data

    def account(self, name: str, handle: str, display: str, home: str) -> dict[str, Any]:
        acc = json.loads(_STATUS_TEMPLATE)["account"]
        home_url = self.servers[home].url
        acc.update(id=str((1_780_000_000_000 << 16) + zlib.crc32(f"{name}|{handle}".encode())), username=handle,
                   acct=handle if home == name else f"{handle}@{urlsplit(home_url).netloc}",
                   display_name=display, url=f"{home_url}/@{handle}", uri=f"{home_url}/users/{handle}")
        return acc

    def status(self, name: str, post: SamplePost, depth: int = 0) -> dict[str, Any]:
        home = self.home(post)
        home_url, here = self.servers[home].url, self.servers[name].url
        home_id = self.ids[home][post.id]
        st = json.loads(_STATUS_TEMPLATE)
        st.update(id=str(self.ids[name][post.id]), created_at=_iso(post.created_at), language=post.lang,
                  account=self.account(name, post.author, post.author_name, home),
                  uri=f"{home_url}/users/{post.author}/statuses/{home_id}",
                  url=f"{home_url}/@{post.author}/{home_id}", favourites_count=post.likes,
                  reblogs_count=post.reposts, replies_count=post.replies, application=None)
        original = self.posts.get(post.repost_of) if post.repost_of else None
        if original is not None:  # a boost: no content of its own, the boosted status inside
            st.update(uri=st["uri"] + "/activity", url=None, content="", tags=[], language=None,
                      reblog=self.status(name, original, depth + 1), favourites_count=0, reblogs_count=0)
            return st
        tags = _tags(post)
        st["content"] = self.content(post.text, tags, here)
        st["tags"] = [{"name": t, "url": f"{here}/tags/{t}"} for t in tags]
        parent = self.posts.get(post.reply_to) if post.reply_to else None
        if parent is not None:
            st["in_reply_to_id"] = str(self.ids[name][parent.id])
            st["in_reply_to_account_id"] = self.account(name, parent.author, "", self.home(parent))["id"]
        quoted = self.posts.get(post.quote_of) if post.quote_of else None
        if quoted is not None:
            st["quote"] = ({"state": "accepted", "quoted_status": self.status(name, quoted, depth + 1)} if depth < 1
                           else {"state": "accepted", "quoted_status_id": str(self.ids[name][quoted.id])})
        return st

    @staticmethod
    def content(text: str, tags: list[str], here: str) -> str:
        """Mastodon's HTML for a text: <p> per paragraph, <br /> per line, linked tags and mentions."""
        missing = [t for t in tags if t not in {m.lower() for m in re.findall(r"#(\w+)", text)}]
        text = (text + " " + " ".join(f"#{t}" for t in missing)).strip() if missing else text

        def token(part: str) -> str:
            if part.startswith("#"):
                return (f'<a href="{here}/tags/{part[1:].lower()}" class="mention hashtag" rel="tag">'
                        f"#<span>{html.escape(part[1:])}</span></a>")
            if part.startswith("@"):
                return (f'<span class="h-card" translate="no"><a href="{here}/@{part[1:]}" class="u-url mention">'
                        f"@<span>{html.escape(part[1:])}</span></a></span>")
            if part.startswith("http"):
                scheme, rest = part.split("://", 1)
                return (f'<a href="{html.escape(part)}" target="_blank" rel="nofollow noopener" translate="no">'
                        f'<span class="invisible">{scheme}://</span><span class="ellipsis">{html.escape(rest[:30])}'
                        f'</span><span class="invisible">{html.escape(rest[30:])}</span></a>')
            return html.escape(part, quote=False)

        paragraphs = [p for p in re.split(r"\n\s*\n", text) if p.strip()]
        return "".join("<p>" + "<br />".join("".join(token(x) for x in _TOKEN_RE.split(line))
                                             for line in para.split("\n")) + "</p>" for para in paragraphs)


class MastodonInstance(LocalServer):
    """One instance's REST API; MastodonFake holds several and is the first itself."""

    def __init__(self, federation: _Federation, name: str, faults: list[str | None] | None = None, *,
                 token: str | None = None, require_auth: bool = False, version: str = "4.6.4",
                 rate_limit_reset: float = 1.0):
        super().__init__(faults, rate_limit_reset)
        self.federation, self.name = federation, name
        self.token, self.require_auth, self.version = token, require_auth, version
        self.remaining, self.window = 300, None
        federation.servers[name] = self
        self.route_prefix("GET", "/api/v1/timelines/tag/", self._timeline)
        self.route("GET", "/api/v1/statuses", self._statuses)
        self.route_prefix("GET", "/api/v1/statuses/", self._status)
        for path in ("/api/v1/instance", "/api/v1/instance/"):
            self.route("GET", path, lambda req: Response(200, self._instance_v1()))
        for path in ("/api/v2/instance", "/api/v2/instance/"):
            self.route("GET", path, lambda req: Response(200, self._instance_v2()))

    # ---------------------------------------------------------------- LocalServer hooks
    def is_data_request(self, req: Request) -> bool:
        return req.path.startswith(("/api/v1/timelines/", "/api/v1/statuses"))

    def rate_limit_response(self, reset_at: datetime) -> Response:
        return Response(429, {"error": "Too many requests"},
                        {"X-RateLimit-Limit": "300", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": _iso(reset_at)})

    def error_response(self, status: int) -> Response:
        if status == 502:  # what the reverse proxy in front of Mastodon sends
            return Response(502, b"<html><head><title>502 Bad Gateway</title></head><body>"
                                 b"<center><h1>502 Bad Gateway</h1></center><hr><center>nginx</center></body></html>",
                            {"Content-Type": "text/html"})
        return Response(status, {"error": _ERRORS.get(status, _ERRORS[500])})

    def malformed(self, response: Response) -> Response:
        items = json.loads(response.encoded() or b"null")
        if isinstance(items, list) and items:
            bad = items[len(items) // 2]
            bad.pop("uri", None)  # a status without its identity cannot be stored
            bad["account"] = "corrupt"
            return Response(response.status, items, response.headers)
        return response

    def dispatch(self, req: Request) -> Response:
        if self.is_data_request(req):
            auth = req.headers.get("authorization", "")
            if auth and (self.token is None or auth != f"Bearer {self.token}"):
                return Response(401, _INVALID_TOKEN, {"WWW-Authenticate": 'Bearer realm="Doorkeeper", '
                                                      'error="invalid_token"'})
            if self.require_auth and not auth:
                return Response(401, _NEEDS_AUTH)
        resp = super().dispatch(req)
        resp.headers.update(self._rate_headers())
        return resp

    def _rate_headers(self) -> dict[str, str]:
        now = datetime.now(timezone.utc)
        reset = now.replace(second=0, microsecond=0) + timedelta(minutes=5 - now.minute % 5)
        if reset != self.window:
            self.window, self.remaining = reset, 300
        self.remaining = max(0, self.remaining - 1)
        return {"X-RateLimit-Limit": "300", "X-RateLimit-Remaining": str(self.remaining),
                "X-RateLimit-Reset": _iso(reset)}

    # ---------------------------------------------------------------- routes
    def _timeline(self, req: Request) -> Response:
        fed = self.federation
        tag = unquote(req.path.rsplit("/", 1)[-1]).lower()
        ids = fed.timeline(self.name, tag)

        def num(key: str) -> int | None:
            value = req.arg(key)
            return int(value) if value and value.isdigit() else None

        limit = min(max(num("limit") or 20, 1), 40)
        max_id, since_id, min_id = num("max_id"), num("since_id"), num("min_id")
        hi = bisect.bisect_left(ids, max_id) if max_id is not None else len(ids)
        if min_id is not None:  # the statuses just above min_id, still sent newest first
            lo = bisect.bisect_right(ids, min_id)
            chosen = ids[lo:min(hi, lo + limit)]
        else:
            lo = bisect.bisect_right(ids, since_id) if since_id is not None else 0
            chosen = ids[max(lo, hi - limit):hi]
        chosen = chosen[::-1]
        with fed.lock:
            body = b"[" + b",".join(fed.status_bytes(self.name, fed.by_local[self.name][i]) for i in chosen) + b"]"
        headers = {}
        if chosen:
            keep = {k: v[-1] for k, v in req.query.items() if k in ("limit", "local", "remote", "only_media")}
            base = f"{self.url}{req.path}?"
            headers["Link"] = (f'<{base}{urlencode({**keep, "max_id": chosen[-1]})}>; rel="next", '
                               f'<{base}{urlencode({**keep, "min_id": chosen[0]})}>; rel="prev"')
        return Response(200, body, headers)

    def _status(self, req: Request) -> Response:
        local = req.path.rsplit("/", 1)[-1]
        post_id = self.federation.by_local[self.name].get(int(local)) if local.isdigit() else None
        if post_id is None:
            return Response(404, dict(RECORDED["not_found"]))
        return Response(200, self.federation.status_bytes(self.name, post_id))

    def _statuses(self, req: Request) -> Response:
        found = [self.federation.by_local[self.name].get(int(i)) for i in req.args("id[]") if i.isdigit()]
        return Response(200, b"[" + b",".join(self.federation.status_bytes(self.name, p) for p in found if p) + b"]")

    def _instance_v1(self) -> dict[str, Any]:
        doc = json.loads(json.dumps(RECORDED["instance_v1"]))
        host = urlsplit(self.url).netloc
        doc.update(uri=host, title=self.name, version=self.version)
        doc["urls"]["streaming_api"] = f"ws://{host}"
        return doc

    def _instance_v2(self) -> dict[str, Any]:
        doc = json.loads(json.dumps(RECORDED["instance_v2"]))
        doc.update(domain=urlsplit(self.url).netloc, title=self.name, version=self.version)
        access = "authenticated" if self.require_auth else "public"
        doc["configuration"]["timelines_access"]["hashtag_feeds"] = {"local": access, "remote": access}
        return doc


class MastodonFake(MastodonInstance):
    """Several instances; this object is the first (its faults are `faults`), the rest in `servers`.

    Options: instances (names, default: those named by the posts, else one), instance_faults
    ({name: faults}), token (accepted bearer token), require_auth (True or a set of names),
    version, rate_limit_reset.
    """

    def __init__(self, posts: list[SamplePost], faults: list[str | None] | None = None, **options: Any):
        names = list(options.get("instances") or [])
        for post in posts:
            names += [n for n in post.instances or [] if n not in names]
        names = names or ["mastodon.example"]
        self.token_value = options.get("token", "fake-mastodon-token")
        need = options.get("require_auth", False)
        fed = _Federation([], names)

        def kw(name: str) -> dict[str, Any]:
            return dict(token=self.token_value, require_auth=need is True or (need and name in need),
                        version=options.get("version", "4.6.4"), rate_limit_reset=options.get("rate_limit_reset", 1.0))

        super().__init__(fed, names[0], faults, **kw(names[0]))
        faults_by = options.get("instance_faults") or {}
        self.servers: dict[str, MastodonInstance] = {names[0]: self}
        for name in names[1:]:
            self.servers[name] = MastodonInstance(fed, name, faults_by.get(name), **kw(name))
        for post in posts:
            fed.add(post)

    def instance(self, name: str) -> MastodonInstance:
        return self.servers[name]

    def add(self, post: SamplePost) -> None:
        self.federation.add(post)

    def delete(self, post_id: str) -> None:
        self.federation.delete(post_id)

    def prerender(self) -> None:
        """Render every status up front (the benchmark keeps this out of its timing)."""
        for name in self.servers:
            for post_id in list(self.federation.posts):
                self.federation.status_bytes(name, post_id)

    def start(self) -> "MastodonFake":
        super().start()
        for server in list(self.servers.values())[1:]:
            server.start()
        return self

    def stop(self) -> None:
        # Each shutdown waits out a poll interval; stop the instances side by side.
        others = [threading.Thread(target=s.stop) for s in list(self.servers.values())[1:]]
        for thread in others:
            thread.start()
        super().stop()
        for thread in others:
            thread.join()

    def configure(self, config: dict, env: dict) -> None:
        """Point config["sources"]["mastodon"] at every instance of this fake, with its token."""
        block = config.setdefault("sources", {}).setdefault("mastodon", {})
        block["enabled"] = True
        block["instances"] = [server.url for server in self.servers.values()]
        var = block.get("access_token_env") or "MASTODON_TOKEN"
        block["access_token_env"] = var
        env[var] = " ".join(f"{urlsplit(s.url).netloc}={self.token_value}" for s in self.servers.values())
