"""The themed digest for drafters: digest.html (one self-contained page) and digest.md.

`write_digest` is the stage function the command line, the scheduler and the demo share. It
reads posts, groups (posts.group_id, assigned by the classify step) and labels from the
database only, writes both files atomically, and records which idea groups it showed so the
next digest can say what is new.

Safety: the page contains no script at all and a Content-Security-Policy that forbids loading
anything; Jinja2 escapes every value; post texts sit in <bdi dir="auto"> so right-to-left
overrides cannot flip the page around them; long texts show an excerpt with the rest behind
<details>; only http(s) addresses become links (rel="noopener noreferrer nofollow").
"""

from __future__ import annotations

import os
import re
import secrets
import sys
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from urllib.parse import quote, urlsplit

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup
from sqlalchemy import insert, select

from innoverheid.config import LABELS_THEMES, Config
from report import charts
from report.digest_data import DigestData, collect
from report.export import pseudonym
from report.i18n import Words
from storage import Database
from storage.models import DigestRecord, utcnow

TEMPLATES = Path(__file__).parent / "templates"
EXCERPT = 600  # characters shown before "show the whole text"
PLATFORMS = ("x", "bluesky", "mastodon")
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
digests_t = DigestRecord.__table__
_BIDI = re.compile("[\u202a-\u202e\u2066-\u2069\u200e\u200f\u061c]")
_MD_INLINE = re.compile(r"([\\`*_\[\]|~])")
_MD_BLOCK_START = re.compile(r"^([#+=-])")
_MD_NUMBERED = re.compile(r"^(\d+)([.)])")


@dataclass
class DigestResult:
    html_path: Path
    md_path: Path
    digest_id: int
    n_posts: int
    n_ideas: int
    shown_group_ids: list[int]
    previous_at: datetime | None
    warnings: list[str] = field(default_factory=list)


def web_url(url: str | None) -> str | None:
    """The address when it is a plain http(s) link to a host; None for anything else (shown as text)."""
    if not url or any(c.isspace() or ord(c) < 32 for c in url):
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    return url if parts.scheme.lower() in ("http", "https") and parts.netloc else None


def host(url: str | None) -> str:
    """The host of an instance URL for display (https://mastodon.nl -> mastodon.nl); other text unchanged."""
    try:
        return urlsplit(url or "").netloc or (url or "")
    except ValueError:
        return url or ""


def excerpt(text: str, limit: int = EXCERPT) -> str:
    if len(text) <= limit:
        return text
    cut = text.rfind(" ", limit - 80, limit)
    return text[: cut if cut > 0 else limit].rstrip() + " …"


def md_text(text: str | None) -> Markup:
    """Text for Markdown, on one line: inline syntax backslash-escaped (no links, images, emphasis or code
    from the data), & < > as entities (no raw HTML), a block marker at the start escaped, and direction
    overrides removed (plain text cannot isolate them)."""
    flat = " ".join(_BIDI.sub("", str(text or "")).split())
    flat = _MD_INLINE.sub(r"\\\1", flat).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    flat = _MD_BLOCK_START.sub(r"\\\1", flat)
    flat = _MD_NUMBERED.sub(r"\1\\\2", flat)
    return Markup(flat)


def md_quote(text: str | None) -> Markup:
    """A Markdown block quote, one '> ' per line of the text, each line escaped like md_text."""
    lines = [md_text(line) for line in _BIDI.sub("", str(text or "")).splitlines() if line.strip()] or [Markup("")]
    return Markup("\n".join(f"> {line}" for line in lines))


def md_url(url: str) -> str:
    """An http(s) address made safe inside a Markdown link target."""
    return quote(url, safe=":/?#@!$&'*+,;=%~._-")


def _author_display(source: str, handle: str | None, name: str | None) -> str | None:
    if handle and source in PLATFORMS:
        handle = "@" + handle.lstrip("@")
    if name and handle and name.strip() and name.strip() != handle.lstrip("@"):
        return f"{name.strip()} ({handle})"
    return handle or (name.strip() if name and name.strip() else None)


def _pseudonym_key(cfg: Config, warnings: list[str]) -> tuple[bytes, bool]:
    var = cfg.privacy.pseudonym_key_env
    value = os.environ.get(var)
    if value:
        return value.encode("utf-8"), False
    msg = (f"warning: report.pseudonymize is on but the environment variable {var} is not set; using a random "
           "key for this digest only, so its pseudonyms differ from other digests and exports. Set "
           f"{var} to keep them stable.")
    print(msg, file=sys.stderr)
    warnings.append(msg)
    return secrets.token_bytes(32), True


def _environment() -> Environment:
    env = Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=True, undefined=StrictUndefined,
                      trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    env.filters.update(md=md_text, md_quote=md_quote, md_url=md_url, web_url=web_url, excerpt=excerpt,
                       host=host)
    env.globals.update(themes=LABELS_THEMES, sparkline=charts.sparkline)
    return env


def render(data: DigestData, words: Words, *, min_posts_for_chart: int, pseudonymized: bool, random_key: bool,
           previous_at: datetime | None, made_at: datetime) -> tuple[str, str]:
    """(html, markdown) for the gathered data."""
    env = _environment()
    theme_charts = {s.label: charts.posts_over_time(s.series, data.unit, words) for s in data.themes}
    overview = charts.ideas_per_theme([(words.theme(s.label), s.n_ideas, f"thema-{s.label}")
                                       for s in [*data.themes, data.overig]], words)
    context = dict(d=data, w=words, csp=Markup(CSP), min_posts=min_posts_for_chart, pseudonymized=pseudonymized,
                   random_key=random_key, previous_at=previous_at, made_at=made_at, theme_charts=theme_charts,
                   overview=overview, excerpt_limit=EXCERPT)
    return (env.get_template("digest.html.j2").render(**context),
            env.get_template("digest.md.j2").render(**context))


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".partial")
    try:
        tmp.write_text(text, encoding="utf-8", errors="replace", newline="\n")
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)  # only left when the write failed (disk full, permissions)


def _enabled_sources(cfg: Config) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    if cfg.sources.bluesky.enabled:
        out["bluesky"] = [""]
    if cfg.sources.mastodon.enabled:
        from harvester.mastodon import base_url  # runs are stored under the normalised address

        out["mastodon"] = [base_url(u) for u in cfg.sources.mastodon.instances]
    if cfg.sources.x.enabled:
        out["x"] = [""]
    return out


def write_digest(cfg: Config, db: Database, since: datetime | None = None, until: datetime | None = None,
                 out_dir: str | os.PathLike | None = None) -> DigestResult:
    """Write digest.html and digest.md for posts created in [since, until) into out_dir (default
    report.out_dir), and record the digest. Posts are grouped already (the classify step does it)."""
    out = Path(out_dir) if out_dir is not None else cfg.resolve(cfg.report.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    folder = str(out.resolve())
    warnings: list[str] = []
    pseudonymized = cfg.report.pseudonymize
    key, random_key = _pseudonym_key(cfg, warnings) if pseudonymized else (b"", False)

    def author(handle: str | None, name: str | None, source: str) -> str | None:
        if pseudonymized:
            return pseudonym(handle or name, key) if (handle or name) else None
        return _author_display(source, handle, name)

    made_at = utcnow()
    with db.read() as conn:
        previous = conn.execute(select(digests_t.c.created_at, digests_t.c.group_ids)
                                .where(digests_t.c.out_dir == folder)
                                .order_by(digests_t.c.id.desc()).limit(1)).first()
        previous_at = previous.created_at if previous else None
        previous_ids = {int(g) for g in (previous.group_ids or [])} if previous else None
        data = collect(conn, since=since, until=until, previous_at=previous_at, previous_ids=previous_ids,
                       top=cfg.report.top_ideas, author=author, enabled_sources=_enabled_sources(cfg))
    words = Words(cfg.report.language, cfg.schedule.timezone)
    html, md = render(data, words, min_posts_for_chart=cfg.report.min_posts_for_chart, pseudonymized=pseudonymized,
                      random_key=random_key, previous_at=previous_at, made_at=made_at)
    html_path, md_path = out / "digest.html", out / "digest.md"
    _write_atomically(html_path, html)
    _write_atomically(md_path, md)
    shown = data.shown_group_ids()
    with db.write() as conn:
        digest_id = conn.execute(insert(digests_t).values(
            created_at=made_at, since=since, until=until, out_dir=folder, group_ids=shown,
        ).returning(digests_t.c.id)).scalar_one()
    return DigestResult(html_path=html_path, md_path=md_path, digest_id=digest_id, n_posts=data.n_posts,
                        n_ideas=data.n_ideas, shown_group_ids=shown, previous_at=previous_at, warnings=warnings)
