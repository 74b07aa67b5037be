"""Bluesky PostView (app.bsky.feed.defs#postView) -> Post: a pure function that never raises.

The atproto SDK validates a whole searchPosts page against its models and fails the page on
one odd item; we read the raw JSON instead and map item by item, so one malformed post is a
BadItem (skipped, counted, logged with its uri) and the rest of the page is kept.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from harvester.base import BadItem, Page, Post, hashtags_in, to_utc

SOURCE = "bluesky"
_TAG_FEATURE = "app.bsky.richtext.facet#tag"
_REPOST_REASON = "app.bsky.feed.defs#reasonRepost"
_POST_COLLECTION = "/app.bsky.feed.post/"


def _dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _time(value: Any) -> datetime | None:
    try:
        return to_utc(value) if isinstance(value, str) else None
    except ValueError:
        return None


def post_url(uri: str, handle: str | None, did: str | None) -> str | None:
    """https://bsky.app/profile/<handle>/post/<rkey>; the DID stands in for an invalid handle."""
    if _POST_COLLECTION not in uri:
        return None
    rkey = uri.rsplit("/", 1)[-1]
    who = handle if handle and handle != "handle.invalid" else did
    return f"https://bsky.app/profile/{who}/post/{rkey}" if who and rkey else None


def hashtags_of(record: dict) -> list[str]:
    """Tag facets, the record's own `tags` and #words in the text; lower-case, first seen first."""
    tags: list[str] = []
    for facet in record.get("facets") or []:
        for feature in _dict(facet).get("features") or []:
            feature = _dict(feature)
            if feature.get("$type") == _TAG_FEATURE and _str(feature.get("tag")):
                tags.append(feature["tag"].lstrip("#").lower())
    tags += [t.lstrip("#").lower() for t in record.get("tags") or [] if _str(t)]
    tags += hashtags_in(record.get("text") if isinstance(record.get("text"), str) else "")
    return list(dict.fromkeys(tags))


def quoted_uri(record: dict) -> str | None:
    """The post a quote embeds (app.bsky.embed.record or recordWithMedia); lists and feeds are no quotes."""
    embed = _dict(record.get("embed"))
    kind = embed.get("$type")
    if kind == "app.bsky.embed.record":
        uri = _str(_dict(embed.get("record")).get("uri"))
    elif kind == "app.bsky.embed.recordWithMedia":
        uri = _str(_dict(_dict(embed.get("record")).get("record")).get("uri"))
    else:
        return None
    return uri if uri and _POST_COLLECTION in uri else None


def time_bounds(raw: Any) -> tuple[datetime | None, datetime | None]:
    """(earliest, latest) of createdAt and indexedAt.

    The search index orders and filters on a time close to createdAt (clamped by indexedAt).
    The earliest of the two is a safe high-water mark (a clock-skewed future createdAt cannot
    push it ahead); the latest is a safe lower edge for `until` (never skips a later item).
    """
    item = _dict(raw)
    if "post" in item and "uri" not in item:
        item = _dict(item.get("post"))
    created, indexed = _time(_dict(item.get("record")).get("createdAt")), _time(item.get("indexedAt"))
    times = [t for t in (created, indexed) if t]
    return (min(times), max(times)) if times else (None, None)


def to_post(raw: dict) -> Post | BadItem:
    """Map one PostView (or a FeedViewPost, as feeds return reposts) to a Post, or a BadItem."""
    try:
        item = _dict(raw)
        if "post" in item and "uri" not in item:
            return _feed_item(item)
        return _post_view(item, raw)
    except Exception as exc:  # noqa: BLE001 - a pure mapper reports, it never fails the page
        uri = _str(_dict(raw).get("uri")) if isinstance(raw, dict) else None
        return BadItem(uri, f"unreadable item ({exc.__class__.__name__})")


def _post_view(item: dict, raw: Any) -> Post | BadItem:
    uri = _str(item.get("uri"))
    if not uri or not uri.startswith("at://"):
        return BadItem(None, "no at:// uri")
    author = item.get("author")
    if not isinstance(author, dict) or not (_str(author.get("did")) or _str(author.get("handle"))):
        return BadItem(uri, "no author")
    record = item.get("record")
    if not isinstance(record, dict):
        return BadItem(uri, "no post record")
    text = record.get("text", "")
    if not isinstance(text, str):
        return BadItem(uri, "text is not a string")
    did, handle = _str(author.get("did")), _str(author.get("handle"))
    reply = _dict(record.get("reply"))
    reply_to = _str(_dict(reply.get("parent")).get("uri"))
    langs = record.get("langs")
    return Post(
        source=SOURCE,
        source_id=uri,
        text=text,
        raw=raw,
        url=post_url(uri, handle, did),
        author_handle=handle,
        author_name=_str(author.get("displayName")),
        author_id=did,
        created_at=_time(record.get("createdAt")) or _time(item.get("indexedAt")),
        lang=_str(langs[0]) if isinstance(langs, list) and langs else None,
        hashtags=hashtags_of(record),
        reply_to=reply_to,
        quote_of=quoted_uri(record),
        # The thread root; a post that is not a reply starts its own conversation.
        conversation_id=(_str(_dict(reply.get("root")).get("uri")) or reply_to) if reply else uri,
        like_count=_int(item.get("likeCount")),
        repost_count=_int(item.get("repostCount")),
        reply_count=_int(item.get("replyCount")),
        quote_count=_int(item.get("quoteCount")),
    )


def _feed_item(item: dict) -> Post | BadItem:
    """A feed entry: the post itself, or (reasonRepost) a repost of it by someone else."""
    original = _post_view(_dict(item.get("post")), item.get("post"))
    reason = _dict(item.get("reason"))
    if isinstance(original, BadItem) or reason.get("$type") != _REPOST_REASON:
        return original
    by = _dict(reason.get("by"))
    by_did = _str(by.get("did"))
    if not by_did:
        return BadItem(original.source_id, "repost without reposter")
    # Newer AppViews send the repost record's uri; older ones (as recorded) do not.
    repost_id = _str(reason.get("uri")) or f"{original.source_id}#repost:{by_did}"
    return Post(
        source=SOURCE,
        source_id=repost_id,
        text=original.text,
        raw=item,
        url=original.url,
        author_handle=_str(by.get("handle")),
        author_name=_str(by.get("displayName")),
        author_id=by_did,
        created_at=_time(reason.get("indexedAt")) or original.created_at,
        lang=original.lang,
        hashtags=original.hashtags,
        is_repost=True,
        repost_of=original.source_id,
        conversation_id=original.conversation_id,
    )


def map_page(items: list, tag: str) -> tuple[Page, datetime | None, datetime | None]:
    """Map a searchPosts page item by item; also the page's lower edge and newest time (see time_bounds)."""
    page = Page(posts=[])
    low = high = None
    for raw in items:
        early, late = time_bounds(raw)
        if early and (high is None or early > high):
            high = early
        if late and (low is None or late < low):
            low = late
        page.add(to_post(raw), tag)  # search is fuzzy: what lacks the tag is counted, not kept
    return page, low, high
