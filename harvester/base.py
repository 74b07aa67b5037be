"""The seam every platform plugs into: the normalised Post, the Source protocol, typed errors.

A source yields pages; it never touches the database or the clock. The runner stores each
page, its sightings and the page's new bookmark in one transaction, only after the page is
safe. Mapping a raw item to a Post is a pure function that reports a bad item (BadItem)
instead of raising.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, ClassVar, Protocol, runtime_checkable


@dataclass
class Post:
    source: str
    source_id: str
    text: str
    raw: dict[str, Any] | list | str
    url: str | None = None
    author_handle: str | None = None
    author_name: str | None = None
    author_id: str | None = None
    created_at: datetime | None = None  # timezone-aware, UTC
    lang: str | None = None
    hashtags: list[str] = field(default_factory=list)  # lower-case, without '#'
    is_repost: bool = False
    repost_of: str | None = None  # source_id of the original post
    reply_to: str | None = None
    quote_of: str | None = None
    conversation_id: str | None = None
    like_count: int | None = None
    repost_count: int | None = None
    reply_count: int | None = None
    quote_count: int | None = None
    instance: str | None = None

    def row(self) -> dict[str, Any]:
        """The posts-table row for this post."""
        raw = self.raw if isinstance(self.raw, str) else json.dumps(self.raw, ensure_ascii=False, default=str)
        return {
            "source": self.source,
            "source_id": self.source_id,
            "url": self.url,
            "author_handle": self.author_handle,
            "author_name": self.author_name,
            "author_id": self.author_id,
            "created_at": to_utc(self.created_at),
            "lang": self.lang,
            "text": self.text,
            "hashtags": ";".join(dict.fromkeys(h.lower() for h in self.hashtags)),
            "is_repost": bool(self.is_repost),
            "repost_of": self.repost_of,
            "reply_to": self.reply_to,
            "quote_of": self.quote_of,
            "conversation_id": self.conversation_id,
            "like_count": self.like_count,
            "repost_count": self.repost_count,
            "reply_count": self.reply_count,
            "quote_count": self.quote_count,
            "instance": self.instance,
            "raw": raw,
        }


@dataclass
class BadItem:
    """An item the platform sent that could not be mapped; skipped, counted and logged."""

    item_id: str | None
    reason: str


@dataclass
class Page:
    posts: list[Post]
    # The complete bookmark state to store once this page is safe; None leaves it unchanged.
    bookmark: dict[str, Any] | None = None
    skipped: list[BadItem] = field(default_factory=list)
    # Posts fetched in this page that did not carry a wanted hashtag (search is fuzzy).
    off_topic: int = 0

    def add(self, item: "Post | BadItem", hashtag: str) -> None:
        """File one mapped item: a bad item is skipped, a post without the tag is counted, not kept."""
        if isinstance(item, BadItem):
            self.skipped.append(item)
        elif has_wanted_tag(item, hashtag):
            self.posts.append(item)
        else:
            self.off_topic += 1

    @property
    def returned(self) -> int:
        """Items the platform sent in this page, whatever became of them (what X's plan counts)."""
        return len(self.posts) + len(self.skipped) + self.off_topic


@runtime_checkable
class Source(Protocol):
    """A platform. `name` is the string used in config, the `source` column and `--source`."""

    name: ClassVar[str]

    def targets(self) -> list[str]:
        """The instances (Mastodon) or [""] for one-endpoint platforms; each gets its own bookmark."""
        ...

    def pages(self, hashtag: str, target: str, bookmark: dict[str, Any] | None) -> Iterator[Page]:
        """Yield normalised pages, resuming from `bookmark`."""
        ...


# ------------------------------------------------------------------ errors (chosen by type)


class SourceError(Exception):
    """A source failed; the runner records it and goes on with the other sources."""


class AuthError(SourceError):
    """401/403: ends this source for the run. Names the credential, never its value."""

    def __init__(self, source: str, credential: str, detail: str = ""):
        self.credential = credential
        super().__init__(
            f"{source}: the platform refused the credentials ({detail or 'unauthorised'}); "
            f"check the environment variable {credential}"
        )


class MissingCredentials(SourceError):
    def __init__(self, source: str, variables: list[str]):
        self.variables = variables
        super().__init__(f"{source}: skipped, environment variable(s) not set: {', '.join(variables)}")


class RateLimited(SourceError):
    """429: wait until `reset_at` (UTC) if the platform said when, within the configured maximum."""

    def __init__(self, reset_at: datetime | None = None, detail: str = ""):
        self.reset_at = reset_at
        super().__init__(f"rate limited{': ' + detail if detail else ''}")


class TransientError(SourceError):
    """5xx, timeouts, connection resets, truncated bodies: retried with backoff."""


class BudgetExhausted(SourceError):
    """The configured monthly post budget (X) would be passed: stop before it is."""


# ------------------------------------------------------------------ helpers for mappers

_TAG = re.compile(r"(?<![\w&])#(\w+)", re.UNICODE)


def hashtags_in(text: str) -> list[str]:
    return [t.lower() for t in _TAG.findall(text or "")]


def to_utc(value: datetime | str | None) -> datetime | None:
    """Parse ISO 8601 (with Z or offset) or pass a datetime through, always returning aware UTC."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        s = value.strip().replace("Z", "+00:00")
        # Python 3.11 parses up to microseconds; platforms sometimes send nanoseconds.
        s = re.sub(r"(\.\d{6})\d+", r"\1", s)
        value = datetime.fromisoformat(s)
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


def has_wanted_tag(post: Post, wanted: str) -> bool:
    """Hashtags match case-insensitively (#Innoverheid, #INNOVERHEID)."""
    wanted = wanted.lower().lstrip("#")
    return wanted in {h.lower() for h in post.hashtags} or wanted in hashtags_in(post.text)


Mapper = Callable[[dict], "Post | BadItem"]
