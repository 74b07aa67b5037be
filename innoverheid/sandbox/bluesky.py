"""A local Bluesky (PDS + AppView search) on 127.0.0.1 speaking XRPC as the atproto SDK expects.

Sessions: com.atproto.server.createSession / refreshSession / getSession with JWT-shaped
tokens carrying `exp` (so the SDK's own refresh logic runs), refresh tokens rotated on use,
expired tokens refused with 400 ExpiredToken as the PDS does. Search: app.bsky.feed.searchPosts
with q/#tag/tag, sort, since (inclusive), until (exclusive), an offset cursor and a result cap
(palomar stops issuing cursors at 10,000). Posts are PostViews shaped like the recorded ones in
shared/fixtures/recorded/bluesky. Reposts are not posts, so search never returns them.
"""

from __future__ import annotations

import base64
import bisect
import hashlib
import json
import secrets
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from harvester.base import hashtags_in
from innoverheid.sandbox.sample import SamplePost
from innoverheid.sandbox.server import LocalServer, Request, Response

_B32 = "234567abcdefghijklmnopqrstuvwxyz"  # atproto's base32-sortable alphabet (TIDs)
_XRPC = "/xrpc/"


def _b64(data: dict | bytes) -> str:
    raw = data if isinstance(data, bytes) else json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _iso(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _parse_time(value: str) -> float:
    value = value.strip()
    if len(value) == 10:  # "Can be a datetime, or just an ISO date"
        value += "T00:00:00Z"
    return datetime.fromisoformat(value).timestamp()


def did_for(author: str) -> str:
    digest = hashlib.sha256(author.encode()).digest()
    return "did:plc:" + "".join(_B32[b % 32] for b in digest[:24])


def handle_for(author: str) -> str:
    return author.lower().replace("_", "-") + ".bsky.social"  # handles allow no underscores


def _tid(dt: datetime, seq: int) -> str:
    n = (int(dt.timestamp() * 1_000_000) << 10) | (seq & 0x3FF)
    out = ""
    for _ in range(13):
        out = _B32[n & 31] + out
        n >>= 5
    return out


def _cid(text: str) -> str:
    digest = hashlib.sha256(text.encode()).digest()
    bits = int.from_bytes(digest, "big")
    return "bafyrei" + "".join("abcdefghijklmnopqrstuvwxyz234567"[(bits >> (5 * i)) & 31] for i in range(52))


def _error(status: int, error: str, message: str) -> Response:
    return Response(status, {"error": error, "message": message})


class BlueskyServer(LocalServer):
    """`posts` become the search index; `handle`/`password` are the account that may log in."""

    def __init__(self, posts: list[SamplePost], faults: list[str | None] | None = None, *,
                 handle: str = "innoverheid-test.bsky.social", password: str = "fake-app-pass-word",
                 access_ttl: float = 7200, refresh_ttl: float = 90 * 86400, search_cap: int = 10000,
                 rate_limit_reset: float = 1.0):
        super().__init__(faults, rate_limit_reset)
        self.handle, self.password = handle, password
        self.did = did_for(handle.split(".")[0])
        self.access_ttl, self.refresh_ttl, self.search_cap = access_ttl, refresh_ttl, search_cap
        self.logins = self.refreshes = 0
        self._access: dict[str, float] = {}  # token -> exp
        self._refresh: dict[str, float] = {}
        self._auth_lock = threading.Lock()
        self.deleted: set[str] = set()
        self.uris: dict[str, str] = {}  # SamplePost.id -> at:// uri
        self._views: dict[str, bytes] = {}  # uri -> PostView JSON
        self._index: dict[str, tuple[list[float], list[str]]] = {}  # tag -> (-created_ts, uri), newest first
        self._rows: dict[str, list[tuple[float, str]]] = {}
        self._samples: dict[str, SamplePost] = {}
        self._seq = 0
        self.add_posts(posts)
        for method, nsid, handler in (
            ("POST", "com.atproto.server.createSession", self._create_session),
            ("POST", "com.atproto.server.refreshSession", self._refresh_session),
            ("GET", "com.atproto.server.getSession", self._get_session),
            ("GET", "app.bsky.feed.searchPosts", self._search),
            ("GET", "app.bsky.feed.getPosts", self._get_posts),
        ):
            self.route(method, _XRPC + nsid, handler)

    # ---------------------------------------------------------------- rendering
    def add_posts(self, posts: list[SamplePost]) -> None:
        """Publish more posts (they become searchable at once); ids must be new."""
        self._samples.update({p.id: p for p in posts})
        ordered = sorted(posts, key=lambda p: p.created_at)
        for p in ordered:
            self._seq += 1
            self.uris[p.id] = f"at://{did_for(p.author)}/app.bsky.feed.post/{_tid(p.created_at, self._seq)}"
        touched = set()
        for p in ordered:
            if p.repost_of:
                continue  # a repost is an app.bsky.feed.repost record: search never shows it
            view = self.render(p, self._samples)
            uri = view["uri"]
            self._views[uri] = json.dumps(view, ensure_ascii=False).encode()
            for tag in {t.lower() for t in p.hashtags} | set(hashtags_in(p.text)):
                self._rows.setdefault(tag, []).append((-p.created_at.timestamp(), uri))
                touched.add(tag)
        for tag in touched:
            items = sorted(self._rows[tag])
            self._rows[tag] = items
            self._index[tag] = ([k for k, _ in items], [u for _, u in items])

    def _ref(self, post_id: str | None) -> dict | None:
        if not post_id:
            return None
        # A post outside the sample (an older thread): a stable uri derived from its id.
        uri = self.uris.get(post_id) or f"at://{did_for('elsewhere')}/app.bsky.feed.post/{did_for(post_id)[8:21]}"
        return {"cid": _cid(uri), "uri": uri}

    @staticmethod
    def _author(p: SamplePost) -> dict:
        did = did_for(p.author)
        return {
            "did": did, "handle": handle_for(p.author), "displayName": p.author_name,
            "avatar": f"https://cdn.bsky.app/img/avatar/plain/{did}/bafkreiavatar@jpeg",
            "viewer": {"muted": False, "blockedBy": False}, "labels": [],
            "createdAt": "2023-05-01T18:57:05.658Z",
        }

    def render(self, p: SamplePost, by_id: dict[str, SamplePost] | None = None) -> dict:
        """A SamplePost as an app.bsky.feed.defs#postView, in the recorded field structure."""
        text = p.text
        facets, outline, data = [], [], text.encode()
        for tag in dict.fromkeys(t.lower() for t in [*p.hashtags, *hashtags_in(text)]):
            start = data.lower().find(("#" + tag).encode())
            if start < 0:
                outline.append(tag)  # not in the text: the record's own `tags` field carries it
                continue
            end = start + 1 + len(tag.encode())
            # The facet keeps the tag as typed (#Innoverheid), as real clients write it.
            feature = {"$type": "app.bsky.richtext.facet#tag", "tag": data[start + 1:end].decode()}
            facets.append({"features": [feature], "index": {"byteEnd": end, "byteStart": start}})
        record: dict[str, Any] = {"$type": "app.bsky.feed.post", "createdAt": _iso(p.created_at)}
        view: dict[str, Any] = {}
        if p.quote_of:
            ref = self._ref(p.quote_of)
            record["embed"] = {"$type": "app.bsky.embed.record", "record": ref}
            quoted = (by_id or {}).get(p.quote_of)
            if quoted is not None:
                view["embed"] = {"$type": "app.bsky.embed.record#view", "record": {
                    "$type": "app.bsky.embed.record#viewRecord", **ref, "author": self._author(quoted),
                    "value": {"$type": "app.bsky.feed.post", "createdAt": _iso(quoted.created_at),
                              "langs": [quoted.lang], "text": quoted.text},
                    "labels": [], "likeCount": quoted.likes, "replyCount": quoted.replies,
                    "repostCount": quoted.reposts, "quoteCount": 0, "indexedAt": _iso(quoted.created_at),
                    "embeds": []}}
        if facets:
            record["facets"] = facets
        record["langs"] = [p.lang]
        if p.reply_to:
            parent = self._ref(p.reply_to)
            root_id = p.reply_to
            while by_id and by_id.get(root_id) is not None and by_id[root_id].reply_to:
                root_id = by_id[root_id].reply_to
            record["reply"] = {"parent": parent, "root": self._ref(root_id)}
        if outline:
            record["tags"] = outline
        record["text"] = text
        uri = self.uris.get(p.id) or f"at://{did_for(p.author)}/app.bsky.feed.post/{_tid(p.created_at, 0)}"
        return {
            "uri": uri, "cid": _cid(uri), "author": self._author(p), "record": record, **view,
            "replyCount": p.replies, "repostCount": p.reposts, "likeCount": p.likes, "quoteCount": 0,
            "indexedAt": _iso(p.created_at + timedelta(milliseconds=800)),  # the AppView sees it a bit later
            "viewer": {"threadMuted": False, "embeddingDisabled": False}, "labels": [],
        }

    # ---------------------------------------------------------------- sessions
    def _jwt(self, kind: str, ttl: float) -> tuple[str, float]:
        now = int(time.time())
        exp = now + int(ttl)
        if kind == "access":
            header, payload = {"typ": "at+jwt", "alg": "ES256K"}, {"scope": "com.atproto.appPass"}
        else:
            header, payload = {"typ": "refresh+jwt", "alg": "ES256K"}, {"scope": "com.atproto.refresh",
                                                                         "jti": secrets.token_urlsafe(24)}
        payload.update(sub=self.did, aud="did:web:bsky.social", iat=now, exp=exp)
        return f"{_b64(header)}.{_b64(payload)}.{_b64(secrets.token_bytes(64))}", exp

    def mint_session(self, access_ttl: float | None = None, refresh_ttl: float | None = None) -> dict:
        """Issue tokens as createSession does, without counting a login (tests build stored sessions)."""
        access, a_exp = self._jwt("access", self.access_ttl if access_ttl is None else access_ttl)
        refresh, r_exp = self._jwt("refresh", self.refresh_ttl if refresh_ttl is None else refresh_ttl)
        with self._auth_lock:
            self._access[access], self._refresh[refresh] = a_exp, r_exp
        return {
            "did": self.did, "didDoc": self._did_doc(), "handle": self.handle,
            "email": "team@innoverheid.example", "emailConfirmed": True, "emailAuthFactor": False,
            "accessJwt": access, "refreshJwt": refresh, "active": True,
        }

    def revoke_all(self) -> None:
        """Invalidate every token issued so far (a password change does this on the real PDS)."""
        with self._auth_lock:
            self._access.clear()
            self._refresh.clear()

    def _did_doc(self) -> dict:
        return {
            "@context": ["https://www.w3.org/ns/did/v1", "https://w3id.org/security/multikey/v1",
                         "https://w3id.org/security/suites/secp256k1-2019/v1"],
            "id": self.did, "alsoKnownAs": [f"at://{self.handle}"],
            "verificationMethod": [{
                "id": f"{self.did}#atproto", "type": "Multikey", "controller": self.did,
                "publicKeyMultibase": "zQ3shXjHeiBuRCKmM36cuYnm7YEMzhGnCmCyW92sRJ9pribSF"}],
            "service": [{"id": "#atproto_pds", "type": "AtprotoPersonalDataServer",
                         "serviceEndpoint": self.url}],
        }

    def _check(self, req: Request, store: dict[str, float]) -> Response | None:
        """None when the bearer token is valid; else the PDS's error answer."""
        auth = req.headers.get("authorization", "")
        if not auth.startswith("Bearer "):
            return _error(401, "AuthenticationRequired", "Authentication Required")
        with self._auth_lock:
            exp = store.get(auth[7:])
        if exp is None:
            return _error(400, "InvalidToken", "Token could not be verified")
        if exp <= time.time():
            return _error(400, "ExpiredToken", "Token has expired")
        return None

    def _create_session(self, req: Request) -> Response:
        body = req.json()
        if body.get("identifier") not in (self.handle, self.did) or body.get("password") != self.password:
            return _error(401, "AuthenticationRequired", "Invalid identifier or password")
        self.logins += 1
        return Response(200, self.mint_session())

    def _refresh_session(self, req: Request) -> Response:
        refused = self._check(req, self._refresh)
        if refused is not None:
            return refused
        with self._auth_lock:
            self._refresh.pop(req.headers["authorization"][7:], None)  # rotated: the old one is spent
        self.refreshes += 1
        session = self.mint_session()
        keys = ("accessJwt", "refreshJwt", "handle", "did", "didDoc", "active")
        return Response(200, {k: session[k] for k in keys})

    def _get_session(self, req: Request) -> Response:
        refused = self._check(req, self._access)
        if refused is not None:
            return refused
        return Response(200, {"handle": self.handle, "did": self.did, "email": "team@innoverheid.example",
                              "emailConfirmed": True, "didDoc": self._did_doc(), "active": True})

    # ---------------------------------------------------------------- data
    def is_data_request(self, req: Request) -> bool:
        return req.path.startswith(_XRPC + "app.bsky.")

    def rate_limit_response(self, reset_at: datetime) -> Response:
        return Response(429, {"error": "RateLimitExceeded", "message": "Rate Limit Exceeded"}, {
            "RateLimit-Limit": "3000", "RateLimit-Remaining": "0",
            "RateLimit-Reset": str(int(reset_at.timestamp())), "RateLimit-Policy": "3000;w=300"})

    def error_response(self, status: int) -> Response:
        name, message = {502: ("UpstreamFailure", "Upstream Failure"),
                         503: ("NotEnoughResources", "Service Unavailable")}.get(
            status, ("InternalServerError", "Internal Server Error"))
        return _error(status, name, message)

    def malformed(self, response: Response) -> Response:
        """Break one PostView as the SDK's models reject it: no author, no indexedAt, a record that is text."""
        if response.status != 200 or not isinstance(response.body, (bytes, str)):
            return response
        body = json.loads(response.body)
        if body.get("posts"):
            bad = body["posts"][len(body["posts"]) // 2]
            bad.pop("author", None)
            bad.pop("indexedAt", None)
            bad["record"] = "corrupted"
        return Response(response.status, body, response.headers)

    def _search(self, req: Request) -> Response:
        refused = self._check(req, self._access)
        if refused is not None:
            return refused
        q = (req.arg("q") or "").strip()
        if not q:
            return _error(400, "InvalidRequest", 'Error: Params must have the property "q"')
        try:
            limit = min(100, max(1, int(req.arg("limit") or 25)))
            offset = int(req.arg("cursor") or 0)
            since = _parse_time(req.arg("since")) if req.arg("since") else None
            until = _parse_time(req.arg("until")) if req.arg("until") else None
        except ValueError as exc:
            return _error(400, "InvalidRequest", f"Error: {exc}")
        if offset > self.search_cap:
            return _error(400, "BadQueryString", "invalid value for 'cursor' (can't paginate so deep)")
        tags = [t.lower().lstrip("#") for t in req.args("tag")]
        tags += [w[1:].lower() for w in q.split() if w.startswith("#") and len(w) > 1]
        tags = list(dict.fromkeys(tags))
        words = [w.lower() for w in q.split() if not w.startswith("#")]
        keys, uris = self._index.get(tags[0], ([], [])) if tags else ([], [])
        lo = bisect.bisect_right(keys, -until) if until is not None else 0  # until: exclusive
        hi = bisect.bisect_right(keys, -since) if since is not None else len(keys)  # since: inclusive
        if self.deleted or len(tags) > 1 or words:
            hits = [u for u in uris[lo:hi] if u not in self.deleted and self._matches(u, tags[1:], words)]
            chunk = hits[offset:min(offset + limit, self.search_cap)]
        else:  # the common case, kept cheap for the benchmark: slice the index directly
            chunk = uris[lo + offset:min(lo + offset + limit, lo + self.search_cap, hi)]
        # As palomar: a full page gets a cursor, until the cap (the next page may well be empty).
        more = len(chunk) == limit and offset + limit < self.search_cap
        parts = [b'{"posts":[', b",".join(self._views[u] for u in chunk), b"]"]
        if more:
            parts.append(b',"cursor":"%d"' % (offset + limit))
        parts.append(b"}")
        return Response(200, b"".join(parts))

    def _matches(self, uri: str, tags: list[str], words: list[str]) -> bool:
        if not tags and not words:
            return True
        text = json.loads(self._views[uri])["record"]["text"].lower()
        return all(t in hashtags_in(text) for t in tags) and all(w in text for w in words)

    def _get_posts(self, req: Request) -> Response:
        refused = self._check(req, self._access)
        if refused is not None:
            return refused
        uris = req.args("uris")
        if len(uris) > 25:
            return _error(400, "InvalidRequest", "Error: uris must not have more than 25 elements")
        found = [self._views[u] for u in uris if u in self._views and u not in self.deleted]
        return Response(200, b'{"posts":[' + b",".join(found) + b"]}")

    def delete(self, post_id: str) -> None:
        """The author deleted this post: search and getPosts stop showing it."""
        self.deleted.add(self.uris[post_id])

    # ---------------------------------------------------------------- wiring
    def configure(self, config: dict, env: dict) -> None:
        """Point a config dict (the YAML structure) at this fake and put its account in env."""
        block = config.setdefault("sources", {}).setdefault("bluesky", {})
        block.update(enabled=True, base_url=self.url)
        env[block.get("handle_env", "BSKY_HANDLE")] = self.handle
        env[block.get("app_password_env", "BSKY_APP_PASSWORD")] = self.password
