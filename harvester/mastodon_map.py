"""Mapping one Mastodon status (the API's JSON, as sent) to a Post: a pure function.

The status `uri` (its ActivityPub id) is the identity: the same post seen through two
instances has two local `id`s but one `uri`, so it is stored once. Local ids only mean
something on the instance that gave them, so references that the API gives as local ids
(in_reply_to_id) are resolved to a uri when the caller knows it, and otherwise kept with
their instance as "<instance>/api/v1/statuses/<id>", which can be fetched as it stands.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from harvester.base import BadItem, Post, hashtags_in, to_utc
from harvester.html_text import html_to_text

NAME = "mastodon"


def status_ref(instance: str | None, local_id: str, uri_of: Mapping[str, str] | None = None) -> str:
    """A global reference for a status known only by its local id on `instance`."""
    if uri_of and local_id in uri_of:
        return uri_of[local_id]
    return f"{instance.rstrip('/')}/api/v1/statuses/{local_id}" if instance else local_id


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _handle(account: Mapping[str, Any]) -> str | None:
    """user@domain, whichever instance reported it (acct omits the domain for local users)."""
    acct = _str(account.get("acct")) or _str(account.get("username"))
    if not acct or "@" in acct:
        return acct
    host = urlsplit(_str(account.get("url")) or _str(account.get("uri")) or "").netloc
    return f"{acct}@{host}" if host else acct


def _tags(status: Mapping[str, Any]) -> list[str]:
    tags = status.get("tags") or []
    names = [t.get("name") for t in tags if isinstance(t, dict)] if isinstance(tags, list) else []
    return [n.lower().lstrip("#") for n in names if isinstance(n, str) and n]


def _text(status: Mapping[str, Any]) -> str:
    text = html_to_text(status.get("content"))
    warning = _str(status.get("spoiler_text"))
    # A content warning is part of what the author wrote; keep it as the first line.
    return f"{warning.strip()}\n\n{text}" if warning and text else (warning or text)


def _quote_of(status: Mapping[str, Any], instance: str | None) -> str | None:
    quote = status.get("quote")
    if not isinstance(quote, dict):
        return None
    quoted = quote.get("quoted_status")
    if isinstance(quoted, dict) and _str(quoted.get("uri")):
        return quoted["uri"]
    qid = quote.get("quoted_status_id")
    return status_ref(instance, str(qid)) if qid not in (None, "") else None


def _check(raw: Any) -> tuple[str | None, str | None]:
    """(item id, reason) when the item cannot be a post; (id, None) when it can."""
    if not isinstance(raw, dict):
        return None, f"not an object ({type(raw).__name__})"
    item_id = raw.get("id")
    item_id = str(item_id) if isinstance(item_id, (str, int)) and not isinstance(item_id, bool) else None
    if not _str(raw.get("uri")):
        return item_id, "missing uri"
    if raw.get("account") is not None and not isinstance(raw.get("account"), dict):
        return item_id, "account is not an object"
    for key in ("content", "spoiler_text"):
        if raw.get(key) is not None and not isinstance(raw.get(key), str):
            return item_id, f"{key} is not text"
    if raw.get("reblog") is not None and not (isinstance(raw["reblog"], dict) and _str(raw["reblog"].get("uri"))):
        return item_id, "reblog without uri"
    return item_id, None


def to_post(raw: Any, instance: str | None = None, uri_of: Mapping[str, str] | None = None) -> Post | BadItem:
    """Map one status to a Post (or a BadItem saying why not). Never raises.

    `instance` is the base URL the status was fetched from; `uri_of` maps local ids on that
    instance to uris already seen, to resolve replies.
    """
    item_id, reason = _check(raw)
    if reason:
        return BadItem(item_id, reason)
    try:
        return _map(raw, instance, uri_of)
    except (ValueError, TypeError, AttributeError, OverflowError) as exc:
        return BadItem(item_id or _str(raw.get("uri")), f"unreadable field ({exc.__class__.__name__}: {exc})"[:200])


def _map(raw: dict[str, Any], instance: str | None, uri_of: Mapping[str, str] | None) -> Post:
    reblog = raw.get("reblog") if isinstance(raw.get("reblog"), dict) else None
    # A boost has no content of its own: text, tags and language come from the boosted post.
    body = reblog or raw
    account = raw.get("account") or {}
    created = raw.get("created_at")
    reply_id = raw.get("in_reply_to_id")
    text = _text(body)
    return Post(
        source=NAME,
        source_id=raw["uri"],
        text=text,
        raw=raw,
        url=_str(raw.get("url")) or (reblog and _str(reblog.get("url"))) or raw["uri"],
        author_handle=_handle(account),
        author_name=_str(account.get("display_name")) or _str(account.get("username")),
        author_id=_str(account.get("uri")) or _str(account.get("url")) or _str(account.get("id")),
        created_at=to_utc(created) if isinstance(created, str) and created else None,
        lang=_str(body.get("language")),
        hashtags=list(dict.fromkeys(_tags(body) + hashtags_in(text))),
        is_repost=reblog is not None,
        repost_of=reblog["uri"] if reblog else None,
        reply_to=status_ref(instance, str(reply_id), uri_of) if reply_id not in (None, "") else None,
        quote_of=_quote_of(body, instance),
        like_count=_int(raw.get("favourites_count")),
        repost_count=_int(raw.get("reblogs_count")),
        reply_count=_int(raw.get("replies_count")),
        quote_count=_int(raw.get("quotes_count")),
        instance=instance,
    )
