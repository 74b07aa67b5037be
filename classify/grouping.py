"""Near-duplicate grouping: reposts, quote-posts, cross-posts and light rewordings become one idea.

`assign_groups` gives every post without a group a `posts.group_id`: the id of its group's
representative post (the first of its posts to be stored). It is incremental: new posts are compared
with the representatives of the existing groups and with each other; existing groups are
never split or renumbered.

How two posts end up in one group:
1. Structure: a repost or quote-post joins the group of the post it passes on. Reposts of an
   original we never harvested group together under the first of them.
2. Text: after normalisation (lower case, no URLs, @mentions, hashtags or "RT" prefix, no
   punctuation) each text becomes a set of character 5-grams. Their resemblance (Jaccard) is
   estimated with one-permutation MinHash (64 bins, 16-bit values, densified by rotation).
   Locality-sensitive hashing (21 bands of 3 bins) proposes candidate pairs, so nothing is
   compared all-pairs; each candidate is checked on its 64-bin signature. A text joins the
   most similar earlier *representative* when the estimate is at least `SIMILAR`, or any earlier
   member when it is a near-copy (`CLOSE`); comparing with representatives keeps groups from
   drifting through chains of small rewordings.

Everything heavy is numpy over blocks of posts, so a million posts group in well under a
minute (bench/digest.py measures it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from sqlalchemy import Connection, exists, func, select, update
from sqlalchemy.orm import aliased

from storage import Database
from storage.models import Post

posts_t = Post.__table__

BINS = 64  # one-permutation MinHash bins
BANDS, ROWS = 21, 3  # LSH: a pair agreeing on all 3 bins of any of 21 bands becomes a candidate
SIMILAR = 0.5  # estimated Jaccard of char 5-grams to join a group's representative
CLOSE = 0.8  # ... to join through any member (near-copies)
MIN_SHINGLES = 8  # shorter texts only group when identical after normalisation
SHINGLE = 5
BLOCK = 50_000  # posts per signature block
_EMPTY = np.uint16(0xFFFF)
_DENSIFY_STEP = 0x9E37

_LUT = np.arange(256, dtype=np.uint8)
for _c in b"!\"$%&'()*+,-./:;<=>?[\\]^`{|}~\t\n\r\x0b\x0c":
    _LUT[_c] = 32
_M1, _M2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: a fixed, well-spread 64-bit hash (deterministic across runs)."""
    x ^= x >> np.uint64(30)
    x *= _M1
    x ^= x >> np.uint64(27)
    x *= _M2
    x ^= x >> np.uint64(31)
    return x


def _normalised_bytes(texts: list[str]) -> np.ndarray:
    """All texts as one uint8 array, NUL-separated, normalised as described in the module docstring."""
    joined = "\x00".join(t.replace("\x00", " ") if "\x00" in t else t for t in texts).lower()
    joined = joined.replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">")
    a = np.frombuffer(joined.encode("utf-8", "replace"), dtype=np.uint8)
    n = a.size
    brk = (a == 32) | (a == 9) | (a == 10) | (a == 13) | (a == 0)
    prev_brk = np.empty(n, bool)
    prev_brk[:1] = True
    prev_brk[1:] = brk[:-1]
    start = np.flatnonzero(~brk & prev_brk)
    pad = np.concatenate([a, np.zeros(4, np.uint8)])
    c0, c1, c2, c3 = pad[start], pad[start + 1], pad[start + 2], pad[start + 3]
    drop = (
        (c0 == ord("@")) | (c0 == ord("#"))
        | ((c0 == ord("h")) & (c1 == ord("t")) & (c2 == ord("t")) & (c3 == ord("p")))
        | ((c0 == ord("w")) & (c1 == ord("w")) & (c2 == ord("w")) & (c3 == ord(".")))
        | ((c0 == ord("r")) & (c1 == ord("t")) & ((c2 == 32) | (c2 == 0) | (c2 == ord(":"))))
    )
    b = _LUT[a]
    if drop.any():
        mark = np.zeros(n + 1, np.int32)
        mark[start] = 1
        token = np.cumsum(mark[:n], dtype=np.int32)  # 1-based token number per byte
        dropped = np.concatenate([[False], drop])[token] & ~brk
        b[dropped] = 32
    space = b == 32
    prev = np.empty(n, np.uint8)
    prev[:1] = 0
    prev[1:] = b[:-1]
    b = b[~space | ((prev != 32) & (prev != 0))]  # one space between words, none after a separator
    after = np.empty(b.size, np.uint8)
    after[-1:] = 0
    after[:-1] = b[1:]
    return b[(b != 32) | (after != 0)]  # no space before a separator or at the end


def signatures(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(signatures uint16 [n, BINS], number of shingles, i.e. character 5-gram positions, per text)."""
    n_docs = len(texts)
    sig = np.full(n_docs * BINS, _EMPTY, np.uint16)
    counts = np.zeros(n_docs, np.int64)
    c = _normalised_bytes(texts)
    w = c.size - SHINGLE + 1
    if n_docs == 0 or w <= 0:
        return sig.reshape(n_docs, BINS), counts
    doc = np.cumsum(c == 0, dtype=np.int32)
    valid = (doc[SHINGLE - 1:] == doc[:w]) & (c[:w] != 0)
    pad = np.concatenate([c, np.zeros(8, np.uint8)])
    # Every 8-byte window in one strided little-endian view; its low 5 bytes are the shingle's characters.
    windows = np.ndarray(shape=(w,), dtype="<u8", buffer=pad, offset=0, strides=(1,))
    x = windows[valid] & np.uint64((1 << (8 * SHINGLE)) - 1)
    d = doc[:w][valid]
    h = _mix(x)
    key = d.astype(np.int64) * BINS + (h >> np.uint64(58)).astype(np.int64)
    np.minimum.at(sig, key, (h & np.uint64(0xFFFF)).astype(np.uint16))
    counts = np.bincount(d, minlength=n_docs)[:n_docs].astype(np.int64)
    sig = sig.reshape(n_docs, BINS)
    _densify(sig, counts)
    return sig, counts


def _densify(sig: np.ndarray, counts: np.ndarray) -> None:
    """Fill empty bins from the next non-empty bin to the right (Shrivastava & Li's rotation)."""
    empty = sig == _EMPTY
    rows = np.flatnonzero(empty.any(axis=1) & (counts > 0))
    if rows.size == 0:
        return
    sub, e = sig[rows].astype(np.uint32), empty[rows]
    out, need = sub.copy(), e.copy()
    for dist in range(1, BINS):
        if not need.any():
            break
        src, src_empty = np.roll(sub, -dist, axis=1), np.roll(e, -dist, axis=1)
        take = need & ~src_empty
        out[take] = (src[take] + dist * _DENSIFY_STEP) & 0xFFFF
        need &= ~take
    sig[rows] = out.astype(np.uint16)


def similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Estimated Jaccard resemblance of row pairs: the share of equal bins."""
    return (a == b).mean(axis=1)


def _candidates(sig: np.ndarray, fixed: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Verified similar pairs (earlier row, later row, estimated similarity) found by LSH banding.

    Per band, each row of a bucket meets the bucket's first (earliest) row only, and the pair is
    checked on the full signature at once, so a huge bucket of look-alikes costs one comparison
    per row rather than all pairs. Rows marked `fixed` (existing groups) never join anything, so
    pairs whose later row is fixed are not checked.
    """
    n = sig.shape[0]
    found_a, found_b, found_s = [], [], []
    idx = np.arange(n)
    for band in range(BANDS if n > 1 else 0):
        cols = sig[:, band * ROWS:(band + 1) * ROWS].astype(np.uint64)
        key = (cols[:, 0] << np.uint64(32)) | (cols[:, 1] << np.uint64(16)) | cols[:, 2]
        order = np.argsort(key, kind="stable")
        k = key[order]
        same = np.empty(n, bool)
        same[0] = False
        same[1:] = k[1:] == k[:-1]
        if not same.any():
            continue
        first = order[np.maximum.accumulate(np.where(same, 0, idx))[same]]
        later = order[same]
        open_ = ~fixed[later]
        first, later = first[open_], later[open_]
        sims = np.empty(later.size)
        for i in range(0, later.size, 250_000):
            sims[i:i + 250_000] = similarity(sig[first[i:i + 250_000]], sig[later[i:i + 250_000]])
        ok = sims >= SIMILAR
        found_a.append(first[ok])
        found_b.append(later[ok])
        found_s.append(sims[ok])
    if not found_a:
        return np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0)
    a, b, s = np.concatenate(found_a), np.concatenate(found_b), np.concatenate(found_s)
    pair = a.astype(np.int64) * n + b
    order = np.argsort(pair, kind="stable")
    pair, s = pair[order], s[order]
    keep = np.ones(pair.size, bool)
    keep[1:] = pair[1:] != pair[:-1]
    pair, s = pair[keep], s[keep]
    return pair // n, pair % n, s


@dataclass
class _Docs:
    """Texts to compare: existing representatives (with their group) and new posts."""

    post_ids: list[int] = field(default_factory=list)
    groups: list[int] = field(default_factory=list)  # existing group id, or -1 for a new post
    sigs: list[np.ndarray] = field(default_factory=list)
    counts: list[np.ndarray] = field(default_factory=list)

    def add(self, ids: list[int], groups: list[int], texts: list[str]) -> None:
        s, c = signatures(texts)
        self.post_ids += ids
        self.groups += groups
        self.sigs.append(s)
        self.counts.append(c)


def _match(docs: _Docs) -> dict[int, int]:
    """Group id for each new post among the docs (post id -> group id)."""
    if not docs.post_ids:
        return {}
    ids = np.asarray(docs.post_ids, np.int64)
    groups = np.asarray(docs.groups, np.int64)
    sig = np.concatenate(docs.sigs)
    counts = np.concatenate(docs.counts)
    order = np.argsort(ids, kind="stable")
    ids, groups, sig, counts = ids[order], groups[order], sig[order], counts[order]
    # Identical signatures: identical normalised texts (or as good as); collapse to one row each.
    weights = _mix(np.arange(1, BINS + 1, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15))
    row_hash = np.empty(sig.shape[0], np.uint64)
    for i in range(0, sig.shape[0], BLOCK):
        row_hash[i:i + BLOCK] = (sig[i:i + BLOCK].astype(np.uint64) * weights).sum(axis=1, dtype=np.uint64)
    row_hash[counts == 0] = np.arange(int((counts == 0).sum()), dtype=np.uint64) ^ np.uint64(0xFFFFFFFFFFFFFFFF)
    _, first, inverse = np.unique(row_hash, return_index=True, return_inverse=True)
    # Unique rows in order of their earliest post (ids are sorted, so the first index is the earliest).
    rank = np.argsort(first, kind="stable")
    pos = np.empty_like(rank)
    pos[rank] = np.arange(rank.size)
    urow = first[rank]
    u_of_doc = pos[inverse.ravel()]
    n_u = urow.size
    # A unique text that already belongs to an existing group keeps it (the earliest such group).
    u_group = np.full(n_u, -1, np.int64)
    existing = np.flatnonzero(groups >= 0)
    if existing.size:
        u_ex = u_of_doc[existing]
        for u, g in zip(u_ex[::-1].tolist(), groups[existing][::-1].tolist(), strict=True):
            u_group[u] = g
    is_anchor = (u_group >= 0).tolist()
    fresh = u_group < 0
    u_group[fresh] = ids[urow[fresh]]
    usable = np.flatnonzero(counts[urow] >= MIN_SHINGLES)
    if usable.size > 1:
        a, b, sims = _candidates(sig[urow[usable]], np.asarray(is_anchor)[usable])
        a, b = usable[a], usable[b]
        order = np.lexsort((a, -sims, b))
        ug = u_group.tolist()
        leader = [True] * n_u
        decided_b = -1
        for ai, bi, s in zip(a[order].tolist(), b[order].tolist(), sims[order].tolist(), strict=True):
            if bi == decided_b or is_anchor[bi]:
                continue
            if leader[ai] or s >= CLOSE:
                ug[bi] = ug[ai]
                leader[bi] = False
                decided_b = bi
        u_group = np.asarray(ug, np.int64)
    new = np.flatnonzero(groups < 0)
    return dict(zip(ids[new].tolist(), u_group[u_of_doc[new]].tolist(), strict=True))


def _repair_orphans(db: Database) -> int:
    """Groups whose representative was erased (forget, retention) get their earliest member as one."""
    rep = aliased(posts_t)
    with db.write() as conn:
        orphan_groups = conn.execute(
            select(posts_t.c.group_id, func.min(posts_t.c.id))
            .where(posts_t.c.group_id.is_not(None), ~exists().where(rep.c.id == posts_t.c.group_id))
            .group_by(posts_t.c.group_id)
        ).all()
        for old, new in orphan_groups:
            conn.execute(update(posts_t).where(posts_t.c.group_id == old).values(group_id=new))
    return len(orphan_groups)


def _load_new(conn: Connection):
    """New posts with the post they pass on (if stored): (id, source, target_sid, target_id, target_group, text)."""
    tgt = aliased(posts_t)
    target_sid = func.coalesce(posts_t.c.repost_of, posts_t.c.quote_of)
    stmt = (
        select(posts_t.c.id, posts_t.c.source, target_sid, tgt.c.id, tgt.c.group_id, posts_t.c.text)
        .select_from(posts_t.outerjoin(tgt, (tgt.c.source == posts_t.c.source) & (tgt.c.source_id == target_sid)))
        .where(posts_t.c.group_id.is_(None))
        .order_by(posts_t.c.id)
    )
    return conn.execute(stmt)


def assign_groups(db: Database, on_progress: Callable[[int], None] | None = None) -> int:
    """Give every post without a group one (see the module docstring); returns how many were assigned."""
    advance = on_progress or (lambda n: None)
    with db.read() as conn:
        if conn.execute(select(posts_t.c.id).where(posts_t.c.group_id.is_(None)).limit(1)).first() is None:
            return 0
    _repair_orphans(db)
    docs = _Docs()
    follow: dict[int, int] = {}  # new post -> the new post it passes on (or the first repost of a lost original)
    known: dict[int, int] = {}  # new post -> existing group
    first_of_lost: dict[tuple[str, str], int] = {}
    with db.read() as conn:
        # Plain tuples from the driver: none of these columns needs SQLAlchemy's result processing.
        rows = conn.execute(select(posts_t.c.id, posts_t.c.group_id, posts_t.c.text)
                            .where(posts_t.c.id == posts_t.c.group_id).order_by(posts_t.c.id)).cursor
        while batch := rows.fetchmany(BLOCK):
            docs.add([r[0] for r in batch], [r[1] for r in batch], [r[2] or "" for r in batch])
        result = _load_new(conn).cursor
        while batch := result.fetchmany(BLOCK):
            ids, texts = [], []
            for pid, source, target_sid, target_id, target_group, text in batch:
                if target_group is not None:
                    known[pid] = target_group
                elif target_id is not None and target_id != pid:
                    follow[pid] = target_id
                elif target_sid is not None and target_id is None:
                    lost = first_of_lost.setdefault((source, target_sid), pid)
                    if lost != pid:
                        follow[pid] = lost
                    else:
                        ids.append(pid)
                        texts.append(text or "")
                else:
                    ids.append(pid)
                    texts.append(text or "")
            docs.add(ids, [-1] * len(ids), texts)
            advance(len(batch))
    group = _match(docs)
    group.update(known)
    for pid in follow:
        chain, cur = [], pid
        while cur not in group and cur in follow and len(chain) < 1000:
            chain.append(cur)
            cur = follow[cur]
        target = group.get(cur, cur)
        for p in chain:
            group[p] = target
    return _write(db, group)


def _write(db: Database, group: dict[int, int]) -> int:
    """Store the groups: executemany for posts joining another post's group, then one UPDATE per run of
    consecutive loaded ids for the representatives (every other loaded post in the run is set by then)."""
    followers = sorted((p, g) for p, g in group.items() if p != g)
    loaded = np.asarray(sorted(group), np.int64)
    with db.write() as conn:
        mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
        cur = conn.connection.driver_connection.cursor()
        try:
            sql = f"UPDATE posts SET group_id = {mark} WHERE id = {mark} AND group_id IS NULL"
            for i in range(0, len(followers), 50_000):
                part = followers[i:i + 50_000]
                cur.executemany(sql, [(g, p) for p, g in part])
            runs = np.split(loaded, np.flatnonzero(np.diff(loaded) != 1) + 1) if loaded.size else []
            sql = f"UPDATE posts SET group_id = id WHERE id >= {mark} AND id <= {mark} AND group_id IS NULL"
            for run in runs:
                cur.execute(sql, (int(run[0]), int(run[-1])))
        finally:
            cur.close()
    return len(group)
