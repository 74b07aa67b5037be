"""What the digest shows, gathered from the database: counts, ideas, trends and the quality facts.

Everything that touches every post runs as a few SQL scans into pandas, so a million posts
aggregate in seconds; post texts are read only for the ideas actually shown.

Labels follow `storage.labels.effective_labels` exactly (a person's label wins, else the
model's; rank 0 is the primary theme), computed here in bulk instead of per post. A group of
near-duplicates (posts.group_id) gets the labels of one of its posts: the post a person labelled
most recently, else the group's representative, else its earliest labelled post. All its posts
then count under those labels, so "ideas", "posts" and "people" always describe the same set.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd
from sqlalchemy import Connection, Integer, String, and_, case, exists, func, literal, or_, select, type_coerce
from sqlalchemy.orm import aliased

from innoverheid.config import LABELS_ALL, LABELS_THEMES
from storage.models import HarvestRun, Label, ModelRecord, Post

posts_t, labels_t, runs_t, models_t = Post.__table__, Label.__table__, HarvestRun.__table__, ModelRecord.__table__
BIT = {label: 1 << i for i, label in enumerate(LABELS_ALL)}
THEME_BITS = sum(BIT[t] for t in LABELS_THEMES)


@dataclass
class Idea:
    group_id: int
    post_id: int
    text: str
    url: str | None
    author: str | None
    source: str
    created_at: datetime | None
    labels: list[str]  # charter order
    n_posts: int
    n_authors: int
    n_reposts: int
    n_likes: int | None  # None: no platform reported likes
    n_similar_authors: int
    sources: list[str]
    needs_review: bool
    confidence: float | None
    is_new: bool = False

    @property
    def n_similar(self) -> int:
        return self.n_posts - 1


@dataclass
class Section:
    label: str
    n_ideas: int = 0
    n_posts: int = 0
    n_authors: int = 0
    n_new: int = 0
    n_pending: int = 0
    series: list[tuple[datetime, int]] = field(default_factory=list)
    ideas: list[Idea] = field(default_factory=list)

    @property
    def n_more(self) -> int:
        return max(0, self.n_ideas - len(self.ideas))


@dataclass
class SourceStatus:
    source: str
    instance: str
    started_at: datetime | None
    outcome: str | None  # None: never ran
    last_success: datetime | None
    error: str | None


@dataclass
class Quality:
    model_version: str | None
    trained_at: datetime | None
    per_label: dict[str, dict[str, float | None]] | None
    versions_used: dict[str, int]
    n_labelled: int
    n_person: int


@dataclass
class DigestData:
    since: datetime | None
    until: datetime | None
    first: datetime | None
    last: datetime | None
    unit: str
    n_posts: int
    n_ideas: int
    n_authors: int
    themes: list[Section]
    overig: Section
    review: Section
    n_not_idea_posts: int
    n_not_idea_groups: int
    n_unlabelled: int
    n_new_ideas: int
    n_new_posts: int
    quality: Quality
    sources: list[SourceStatus]

    def shown_group_ids(self) -> list[int]:
        sections = [*self.themes, self.overig, self.review]
        return sorted({i.group_id for s in sections for i in s.ideas})


def _window(stmt, since: datetime | None, until: datetime | None):
    if since is not None:
        stmt = stmt.where(posts_t.c.created_at >= since)
    if until is not None:
        stmt = stmt.where(posts_t.c.created_at < until)
    return stmt


def _frame(conn: Connection, stmt, columns: list[str], chunk: int = 200_000) -> pd.DataFrame:
    """Run a query into a DataFrame, reading plain tuples from the driver's cursor in chunks (SQLAlchemy's
    Row objects cost seconds per million rows in pandas, and every column here is already a plain type)."""
    cursor = conn.execute(stmt).cursor
    parts = []
    while rows := cursor.fetchmany(chunk):
        parts.append(pd.DataFrame.from_records(rows, columns=columns))
    cursor.close()
    if not parts:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in columns})
    return pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]


def _to_utc(values) -> pd.Series:
    return pd.to_datetime(pd.Series(values, dtype=object), utc=True, format="ISO8601", errors="coerce")


def posts_frame(conn: Connection, since, until, previous_at: datetime | None) -> pd.DataFrame:
    """One row per post in the window: id, group g, source, author key, created, repost flag, counts, fresh."""
    p = posts_t
    fresh = case((p.c.harvested_at > previous_at, 1), else_=0) if previous_at else literal(0)
    stmt = _window(select(
        p.c.id, type_coerce(func.coalesce(p.c.group_id, p.c.id), Integer), p.c.source, p.c.author_handle,
        type_coerce(p.c.created_at, String), type_coerce(p.c.is_repost, Integer), p.c.like_count,
        p.c.repost_count, type_coerce(fresh, Integer)), since, until)
    cols = ["id", "g", "source", "handle", "created", "is_repost", "likes", "reposts", "fresh"]
    df = _frame(conn, stmt, cols)
    df["created"] = _to_utc(df["created"])
    df["is_repost"] = df["is_repost"].fillna(0).astype(bool)
    df["fresh"] = df["fresh"].fillna(0).astype(bool)
    # One key per (platform, handle); a post without an author counts as its own person.
    src_code = pd.factorize(df["source"])[0].astype(np.int64)
    handle_code = pd.factorize(df["handle"])[0].astype(np.int64)
    df["akey"] = np.where(handle_code >= 0, handle_code * 64 + src_code, -df["id"].to_numpy(np.int64))
    return df.drop(columns=["handle"])


def _effective_label_rows(select_what, since, until):
    """labels rows that count: a person's where a person labelled the post, else the model's."""
    lab, person = labels_t, aliased(labels_t)
    has_person = exists().where(person.c.post_id == lab.c.post_id, person.c.origin == "person")
    stmt = select_what.where(or_(lab.c.origin == "person", and_(lab.c.origin == "model", ~has_person)))
    if since is not None or until is not None:
        stmt = stmt.where(lab.c.post_id.in_(_window(select(posts_t.c.id), since, until)))
    return stmt


def labels_frame(conn: Connection, since, until) -> pd.DataFrame:
    """The effective labels per post (as storage.labels.effective_labels decides them), one row per post:
    mask (a bit per label), person (labelled by a person), confidence, needs_review, lcreated (person only)."""
    lab = labels_t
    is_person = lab.c.origin == "person"
    stmt = _effective_label_rows(select(
        lab.c.post_id, case({name: i for i, name in enumerate(LABELS_ALL)}, value=lab.c.label, else_=-1),
        lab.c.rank, case((is_person, 1), else_=0), lab.c.confidence, type_coerce(lab.c.needs_review, Integer),
        case((is_person, type_coerce(lab.c.created_at, String)), else_=None)), since, until)
    cols = ["id", "code", "rank", "person", "confidence", "needs_review", "lcreated"]
    df = _frame(conn, stmt, cols)
    df = df[df["code"].astype(np.int64) >= 0]
    df = df.assign(bit=np.left_shift(1, df["code"].to_numpy(np.int64))).sort_values(["id", "rank"], kind="stable")
    mask = df.drop_duplicates(["id", "code"]).groupby("id")["bit"].sum().rename("mask")
    first = df.drop_duplicates("id").set_index("id")
    person = first["person"].astype(bool)
    created = _to_utc(first["lcreated"].where(person).to_numpy())
    created_us = ((created - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(microseconds=1)).fillna(0)
    return pd.DataFrame({
        "mask": mask,
        "person": person,
        "confidence": np.where(person, 1.0, first["confidence"].astype(float)),
        "needs_review": np.where(person, False, first["needs_review"].fillna(0).astype(bool)),
        "lcreated": created_us.to_numpy(np.int64),  # when a person labelled it (µs since 1970), else 0
    })


def decide_groups(posts: pd.DataFrame, labels: pd.DataFrame) -> pd.DataFrame:
    """Per group: its support figures and the labels it counts under (see the module docstring)."""
    posts = posts.join(labels, on="id")
    grp = posts.groupby("g", sort=True)
    original = ~posts["is_repost"]
    authors = posts[["g", "akey"]].drop_duplicates().groupby("g").size()
    groups = pd.DataFrame({
        "n_posts": grp.size(),
        "n_authors": authors,
        "harvested_reposts": grp["is_repost"].sum(),
        "platform_reposts": posts["reposts"].where(original).groupby(posts["g"]).sum(),
        "likes": posts["likes"].where(original).groupby(posts["g"]).sum(min_count=1),
        "fresh": grp["fresh"].min(),
        "first_id": grp["id"].min(),
    })
    groups["reposts"] = np.maximum(groups["harvested_reposts"], groups["platform_reposts"].fillna(0)).astype(int)
    labelled = posts[posts["mask"].notna()]
    prio = np.where(labelled["person"].astype(bool), 0, np.where(labelled["id"] == labelled["g"], 1, 2))
    newest_first = -labelled["lcreated"].fillna(0).astype(np.int64)
    deciding = (labelled.assign(prio=prio, newest=newest_first)
                .sort_values(["g", "prio", "newest", "id"], kind="stable").drop_duplicates("g").set_index("g"))
    for col in ("mask", "person", "confidence", "needs_review"):
        groups[col] = deciding[col]
    groups["decided"] = groups["mask"].notna()
    groups["mask"] = groups["mask"].fillna(0).astype(np.int64)
    groups["needs_review"] = groups["needs_review"].fillna(False).astype(bool)
    groups["likes_rank"] = groups["likes"].fillna(-1)
    return groups.sort_values(["n_authors", "reposts", "likes_rank", "first_id"],
                              ascending=[False, False, False, True], kind="stable")


def time_buckets(created: pd.Series, since, until) -> tuple[str, datetime | None, int, np.ndarray]:
    """(unit, start of the first bucket, number of buckets, bucket index per post or -1)."""
    known = created.dropna()
    first = since or (known.min().to_pydatetime() if len(known) else None)
    last = (until - timedelta(seconds=1)) if until else (known.max().to_pydatetime() if len(known) else None)
    if first is None or last is None or last < first:
        return "day", first, 0, np.full(len(created), -1)
    span = (last - first).days
    unit = "day" if span <= 31 else "week" if span <= 183 else "month"
    day0 = datetime(first.year, first.month, first.day, tzinfo=timezone.utc)
    days = ((created - pd.Timestamp(day0)).dt.days).to_numpy(dtype=float, na_value=np.nan)
    if unit == "day":
        start, idx, n = day0, days, (last - day0).days + 1  # calendar days: from midnight, not from `first`
    elif unit == "week":
        start = day0 - timedelta(days=day0.weekday())
        idx = (days + day0.weekday()) // 7
        n = int(((last - start).days) // 7) + 1
    else:
        start = day0.replace(day=1)
        idx = ((created.dt.year - start.year) * 12 + created.dt.month - start.month).to_numpy(float, na_value=np.nan)
        n = (last.year - start.year) * 12 + last.month - start.month + 1
    idx = np.where(np.isnan(idx) | (idx < 0) | (idx >= n), -1, np.nan_to_num(idx, nan=-1)).astype(np.int64)
    return unit, start, int(n), idx


def bucket_starts(unit: str, start: datetime, n: int) -> list[datetime]:
    if unit == "day":
        return [start + timedelta(days=i) for i in range(n)]
    if unit == "week":
        return [start + timedelta(weeks=i) for i in range(n)]
    return [datetime(start.year + (start.month - 1 + i) // 12, (start.month - 1 + i) % 12 + 1, 1, tzinfo=timezone.utc)
            for i in range(n)]


def per_label_metrics(metrics) -> dict[str, dict[str, float | None]] | None:
    """Per-label precision/recall/F1 from a model's metrics JSON, wherever the classifier put them."""
    if not isinstance(metrics, dict):
        return None
    for path in (("eval", "per_label"), ("per_label",), ("cv", "per_label")):
        node = metrics
        for key in path:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, dict) and node:
            out = {}
            for label, vals in node.items():
                if isinstance(vals, dict):
                    out[str(label)] = {k: _number(vals.get(k)) for k in ("precision", "recall", "f1", "support")}
            if out:
                return out
    return None


def _number(value) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if np.isfinite(number) else None


def quality(conn: Connection, labels: pd.DataFrame, since, until) -> Quality:
    row = conn.execute(select(models_t.c.version, models_t.c.trained_at, models_t.c.metrics)
                       .order_by(models_t.c.trained_at.desc()).limit(1)).first()
    lab = labels_t
    versions = conn.execute(_effective_label_rows(
        select(lab.c.model_version, func.count()), since, until)
        .where(lab.c.origin == "model", lab.c.rank == 0).group_by(lab.c.model_version)).all()
    return Quality(
        model_version=row.version if row else None, trained_at=row.trained_at if row else None,
        per_label=per_label_metrics(row.metrics) if row else None,
        versions_used={str(v if v is not None else "?"): int(n) for v, n in versions},
        n_labelled=len(labels), n_person=int(labels["person"].sum()),
    )


def sources(conn: Connection, enabled: dict[str, list[str]]) -> list[SourceStatus]:
    """The last run per source (and Mastodon instance), its last success, and enabled sources never run."""
    r = runs_t
    last_ids = select(func.max(r.c.id)).group_by(r.c.source, r.c.instance)
    last_ok = dict(((s, i), t) for s, i, t in conn.execute(
        select(r.c.source, r.c.instance, func.max(r.c.finished_at)).where(r.c.outcome == "ok")
        .group_by(r.c.source, r.c.instance)))
    out = [SourceStatus(x.source, x.instance or "", x.started_at, x.outcome, last_ok.get((x.source, x.instance)),
                        x.error) for x in conn.execute(select(r).where(r.c.id.in_(last_ids)))]
    seen = {(s.source, s.instance) for s in out}
    for source, instances in enabled.items():
        for instance in instances:
            if (source, instance) not in seen and not (instance == "" and any(s.source == source for s in out)):
                out.append(SourceStatus(source, instance, None, None, None, None))
    return sorted(out, key=lambda s: (s.source, s.instance))


def idea_details(conn: Connection, posts: pd.DataFrame, groups: pd.DataFrame, chosen: list[int],
                 author: Callable[[str | None, str | None, str], str | None]) -> dict[int, Idea]:
    """The shown ideas: one representative post each, verbatim: the earliest written that is not a repost
    (the original, even when a cross-post of it was harvested first)."""
    if not chosen:
        return {}
    sub = posts[posts["g"].isin(chosen)].sort_values(["g", "is_repost", "created", "id"], kind="stable",
                                                     na_position="last")
    shown = sub.drop_duplicates("g").set_index("g")["id"]
    p = posts_t
    rows = {}
    ids = [int(x) for x in shown.tolist()]
    for i in range(0, len(ids), 500):
        for r in conn.execute(select(p.c.id, p.c.text, p.c.url, p.c.author_handle, p.c.author_name, p.c.source,
                                     p.c.created_at).where(p.c.id.in_(ids[i:i + 500]))):
            rows[r.id] = r
    out = {}
    for g, part in sub.groupby("g", sort=False):
        post = rows[int(shown[g])]
        info = groups.loc[g]
        others = part[part["id"] != post.id]
        likes = info["likes"]
        out[int(g)] = Idea(
            group_id=int(g), post_id=post.id, text=post.text or "", url=post.url,
            author=author(post.author_handle, post.author_name, post.source), source=post.source,
            created_at=post.created_at,
            labels=[lab for lab in LABELS_ALL if int(info["mask"]) & BIT[lab]],
            n_posts=int(info["n_posts"]), n_authors=int(info["n_authors"]), n_reposts=int(info["reposts"]),
            n_likes=None if pd.isna(likes) else int(likes), n_similar_authors=int(others["akey"].nunique()),
            sources=sorted(part["source"].unique().tolist()), needs_review=bool(info["needs_review"]),
            confidence=None if pd.isna(info["confidence"]) else float(info["confidence"]),
        )
    return out


def collect(conn: Connection, *, since: datetime | None, until: datetime | None, previous_at: datetime | None,
            previous_ids: set[int] | None, top: int, author: Callable[[str | None, str | None, str], str | None],
            enabled_sources: dict[str, list[str]]) -> DigestData:
    """Everything the digest shows, for posts created in [since, until)."""
    posts = posts_frame(conn, since, until, previous_at)
    labels = labels_frame(conn, since, until)
    groups = decide_groups(posts, labels)
    unit, start, n_buckets, bucket = time_buckets(posts["created"], since, until)
    starts = bucket_starts(unit, start, n_buckets) if start is not None else []
    per_post = groups.reindex(posts["g"].to_numpy())
    p_mask = per_post["mask"].to_numpy(np.int64)
    p_decided = per_post["decided"].fillna(False).to_numpy(bool)
    p_sure = p_decided & ~per_post["needs_review"].to_numpy(bool)
    g_decided = groups["decided"].to_numpy(bool)
    g_review = g_decided & groups["needs_review"].to_numpy(bool)
    g_sure = g_decided & ~g_review
    g_mask = groups["mask"].to_numpy(np.int64)
    akey = posts["akey"].to_numpy()

    top_ids: dict[str, list[int]] = {}

    def section(label: str, g_sel: np.ndarray, p_sel: np.ndarray) -> Section:
        sel = groups[g_sel]  # already in support order
        top_ids[label] = [int(g) for g in sel.index[:top]]
        counts = np.bincount(bucket[p_sel & (bucket >= 0)], minlength=n_buckets)[:n_buckets]
        return Section(label, n_ideas=len(sel), n_posts=int(sel["n_posts"].sum()),
                       n_authors=int(pd.unique(akey[p_sel]).size),
                       n_new=int(sel["fresh"].sum()) if previous_at else 0,
                       series=list(zip(starts, counts.tolist(), strict=True)))

    themes = []
    for label in LABELS_THEMES:
        bit = BIT[label]
        s = section(label, g_sure & (g_mask & bit != 0), p_sure & (p_mask & bit != 0))
        s.n_pending = int((g_review & (g_mask & bit != 0)).sum())
        themes.append(s)
    overig = section("overig", g_sure & (g_mask & BIT["overig"] != 0), p_sure & (p_mask & BIT["overig"] != 0))
    review = section("review", g_review, p_decided & ~p_sure)
    idea_bits = THEME_BITS | BIT["overig"]
    g_idea, p_idea = g_sure & (g_mask & idea_bits != 0), p_sure & (p_mask & idea_bits != 0)
    g_not, p_not = g_sure & (g_mask & BIT["geen_idee"] != 0), p_sure & (p_mask & BIT["geen_idee"] != 0)
    chosen = sorted({g for ids in top_ids.values() for g in ids})
    details = idea_details(conn, posts, groups, chosen, author)
    for s in [*themes, overig, review]:
        s.ideas = [details[g] for g in top_ids[s.label]]
        for idea in s.ideas:
            idea.is_new = previous_ids is not None and idea.group_id not in previous_ids
    known = posts["created"].dropna()
    return DigestData(
        since=since, until=until, first=known.min().to_pydatetime() if len(known) else None,
        last=known.max().to_pydatetime() if len(known) else None, unit=unit, n_posts=len(posts),
        n_ideas=int(g_idea.sum()), n_authors=int(pd.unique(akey[p_idea]).size), themes=themes, overig=overig,
        review=review, n_not_idea_posts=int(p_not.sum()), n_not_idea_groups=int(g_not.sum()),
        n_unlabelled=int((~p_decided).sum()),
        n_new_ideas=int(groups["fresh"][g_idea].sum()) if previous_at else 0,
        n_new_posts=int(posts["fresh"].sum()) if previous_at else 0,
        quality=quality(conn, labels, since, until), sources=sources(conn, enabled_sources),
    )
