"""X (API v2) payloads -> Post: pure functions that tolerate missing fields.

A search page is split into one self-contained raw item per tweet, shaped like a v2 single-tweet
response (`{"data": tweet, "includes": {"users": [...], "tweets": [...]}}`), so the stored raw
payload keeps the author and the referenced tweets it was delivered with.
"""

from __future__ import annotations

from typing import Any

from harvester.base import BadItem, Post, hashtags_in, to_utc

SOURCE = "x"
# What analysts need (issue 3 point 4); referenced tweets and their authors come along for reposts.
TWEET_FIELDS = ["created_at", "lang", "entities", "public_metrics", "referenced_tweets",
                "conversation_id", "author_id"]
USER_FIELDS = ["username", "name"]
EXPANSIONS = ["author_id", "referenced_tweets.id", "referenced_tweets.id.author_id"]


def _by_id(items: Any) -> dict[str, dict]:
    if not isinstance(items, list):
        return {}
    return {i["id"]: i for i in items if isinstance(i, dict) and isinstance(i.get("id"), str)}


def _refs(tweet: dict) -> list[dict]:
    refs = tweet.get("referenced_tweets")
    if not isinstance(refs, list):
        return []
    return [r for r in refs if isinstance(r, dict) and isinstance(r.get("id"), str)]


def split_page(body: dict) -> list[dict]:
    """One raw item per tweet in `data`, carrying only the includes that belong to it."""
    includes = body.get("includes") if isinstance(body.get("includes"), dict) else {}
    users, tweets = _by_id(includes.get("users")), _by_id(includes.get("tweets"))
    out: list[dict] = []
    data = body.get("data")
    for tweet in data if isinstance(data, list) else []:
        if not isinstance(tweet, dict):
            out.append({"data": tweet})
            continue
        refs = [tweets[r["id"]] for r in _refs(tweet) if r["id"] in tweets]
        author_ids = [tweet.get("author_id")] + [t.get("author_id") for t in refs]
        inc_users = [users[a] for a in dict.fromkeys(author_ids) if isinstance(a, str) and a in users]
        inc: dict[str, list] = {}
        if inc_users:
            inc["users"] = inc_users
        if refs:
            inc["tweets"] = refs
        out.append({"data": tweet, "includes": inc} if inc else {"data": tweet})
    return out


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _entity_tags(tweet: dict) -> list[str]:
    entities = tweet.get("entities")
    tags = entities.get("hashtags") if isinstance(entities, dict) else None
    if not isinstance(tags, list):
        return []
    return [t["tag"].lower() for t in tags if isinstance(t, dict) and isinstance(t.get("tag"), str)]


def to_post(raw: dict) -> Post | BadItem:
    """Map one raw item (see split_page; a bare v2 tweet object works too) to a Post."""
    tweet = raw.get("data", raw) if isinstance(raw, dict) else raw
    if not isinstance(tweet, dict):
        return BadItem(None, "item is not a JSON object")
    tid = tweet.get("id")
    if not isinstance(tid, str) or not tid.isdigit():
        return BadItem(str(tid) if tid is not None else None, "missing or invalid id")
    text = tweet.get("text")
    if not isinstance(text, str):
        return BadItem(tid, "missing or invalid text")
    try:
        created_at = to_utc(tweet.get("created_at"))
    except (ValueError, TypeError, AttributeError):
        return BadItem(tid, "invalid created_at")

    includes = raw.get("includes") if tweet is not raw and isinstance(raw.get("includes"), dict) else {}
    users, tweets = _by_id(includes.get("users")), _by_id(includes.get("tweets"))
    author_id = _str(tweet.get("author_id"))
    author = users.get(author_id or "", {})
    handle, name = _str(author.get("username")), _str(author.get("name"))

    refs: dict[str, str] = {}
    for ref in _refs(tweet):
        refs.setdefault(str(ref.get("type")), ref["id"])
    repost_of = refs.get("retweeted")
    tags = _entity_tags(tweet)
    original = tweets.get(repost_of or "")
    if repost_of and isinstance(original.get("text") if original else None, str):
        # A retweet's own text is cut at ~140 characters ("RT @user: ..."); the original is whole.
        orig_handle = _str(users.get(original.get("author_id") or "", {}).get("username"))
        if orig_handle is None and text.startswith("RT @") and ": " in text:
            orig_handle = text[4:text.index(": ")]
        text = f"RT @{orig_handle}: {original['text']}" if orig_handle else original["text"]
        tags += _entity_tags(original)

    metrics = tweet.get("public_metrics") if isinstance(tweet.get("public_metrics"), dict) else {}
    return Post(
        source=SOURCE,
        source_id=tid,
        text=text,
        raw=raw,
        url=f"https://x.com/{handle}/status/{tid}" if handle else f"https://x.com/i/web/status/{tid}",
        author_handle=handle,
        author_name=name,
        author_id=author_id,
        created_at=created_at,
        lang=_str(tweet.get("lang")),
        hashtags=list(dict.fromkeys(tags + hashtags_in(text))),
        is_repost=repost_of is not None,
        repost_of=repost_of,
        reply_to=refs.get("replied_to"),
        quote_of=refs.get("quoted"),
        conversation_id=_str(tweet.get("conversation_id")),
        like_count=_int(metrics.get("like_count")),
        repost_count=_int(metrics.get("retweet_count")),
        reply_count=_int(metrics.get("reply_count")),
        quote_count=_int(metrics.get("quote_count")),
    )
