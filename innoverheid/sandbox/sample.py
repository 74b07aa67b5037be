"""Platform-neutral sample posts that each fake renders in its own wire format."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass
class SamplePost:
    id: str  # unique per platform; the fake derives uri/ids from it
    text: str
    author: str  # handle without @ or domain, e.g. "anne_devries"
    author_name: str
    created_at: datetime  # aware UTC
    lang: str = "nl"
    hashtags: list[str] = field(default_factory=lambda: ["innoverheid"])
    reply_to: str | None = None  # id of another SamplePost on the same platform
    repost_of: str | None = None  # id of another SamplePost: this is a repost/boost/retweet
    quote_of: str | None = None
    likes: int = 0
    reposts: int = 0
    replies: int = 0
    # Mastodon only: which instances' tag timelines show this post (federation is partial).
    instances: list[str] | None = None
