"""Runs sources: per source x hashtag x target, one transaction per page.

The page's posts, its sightings and the page's new bookmark are committed together, so a
kill at any moment leaves the database consistent and the next run resumes from the last
safe page. One failing source never stops the others.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from harvester.base import AuthError, BadItem, BudgetExhausted, MissingCredentials, Page, Source, SourceError
from storage import Database
from storage import posts as q

log = logging.getLogger("innoverheid.harvest")
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


@dataclass
class SourceReport:
    source: str
    new: int = 0
    known: int = 0
    skipped: int = 0
    off_topic: int = 0
    pages: int = 0
    errors: list[str] = field(default_factory=list)
    skipped_reasons: dict[str, int] = field(default_factory=dict)
    status: str = "ok"  # ok | failed | skipped

    def line(self) -> str:
        parts = [f"{self.source}: {self.status}", f"new {self.new}", f"already known {self.known}",
                 f"skipped {self.skipped}"]
        if self.skipped_reasons:
            parts[-1] += " (" + ", ".join(f"{k}: {v}" for k, v in self.skipped_reasons.items()) + ")"
        parts.append(f"errors {len(self.errors)}")
        text = ", ".join(parts)
        for err in self.errors:
            text += f"\n    {err}"
        return text


@dataclass
class HarvestReport:
    sources: list[SourceReport] = field(default_factory=list)
    interrupted: bool = False

    @property
    def failed(self) -> bool:
        return any(s.status == "failed" for s in self.sources)

    @property
    def new(self) -> int:
        return sum(s.new for s in self.sources)


def unstorable(row: dict) -> str | None:
    """Why a database cannot hold this row exactly, or None.

    A NUL byte (PostgreSQL refuses it in text) or a lone UTF-16 surrogate (half of a cut-off
    emoji, which no UTF-8 database can encode) would fail the whole page's transaction, and
    every later run at the same page: such a post is skipped as a bad item instead.
    """
    for column, value in row.items():
        bad = _UNSTORABLE.search(value) if isinstance(value, str) else None  # one pass per value
        if bad is None:
            continue
        if bad.group() == "\x00":
            return f"{column} contains a NUL byte, which the database cannot store"
        return f"{column} holds a lone UTF-16 surrogate (a cut-off emoji), which is not valid Unicode"
    return None


def _storable_rows(page: Page) -> list[dict]:
    rows = []
    for post in page.posts:
        row = post.row()
        reason = unstorable(row)
        if reason:
            page.skipped.append(BadItem(post.source_id, reason))
        else:
            rows.append(row)
    return rows


def store_page(db: Database, run_id: int, source: str, hashtag: str, target: str, page: Page) -> tuple[int, int]:
    """One transaction: posts, sightings, bookmark. Returns (new, known)."""
    returned = page.returned  # before refused posts move to page.skipped
    rows = _storable_rows(page)  # before the counts: refused posts count as skipped
    with db.write() as conn:
        ids, n_new, n_known = q.insert_posts(conn, rows, refresh_metrics=True)
        q.record_sightings(conn, run_id, ids.values())
        if page.bookmark is not None:
            q.set_bookmark(conn, source, hashtag, target, page.bookmark)
        q.add_run_counts(conn, run_id, n_pages=1, n_new=n_new, n_known=n_known, n_skipped=len(page.skipped),
                         n_read=returned)
    return n_new, n_known


def harvest_source(
    db: Database, source: Source, hashtags: Iterable[str], *, job_run_id: int | None = None,
    should_stop: Callable[[], bool] = lambda: False, progress: Callable[[str, int], None] | None = None,
) -> SourceReport:
    report = SourceReport(source.name)
    for hashtag in hashtags:
        for target in source.targets():
            label = f"{source.name}{' ' + target if target else ''} #{hashtag}"
            with db.write() as conn:
                run_id = q.start_run(conn, source.name, hashtag, target, job_run_id)
                bookmark = q.get_bookmark(conn, source.name, hashtag, target)
            outcome, error = "ok", None
            try:
                for page in source.pages(hashtag, target, bookmark):
                    new, known = store_page(db, run_id, source.name, hashtag, target, page)
                    report.new += new
                    report.known += known
                    report.pages += 1
                    report.off_topic += page.off_topic
                    for bad in page.skipped:
                        report.skipped += 1
                        report.skipped_reasons[bad.reason] = report.skipped_reasons.get(bad.reason, 0) + 1
                        log.warning("%s: skipped malformed item %s: %s", label, bad.item_id or "?", bad.reason)
                    if progress:
                        progress(label, len(page.posts))
                    if should_stop():
                        outcome, error = "interrupted", "stopped by signal after a complete page"
                        break
            except AuthError as exc:
                outcome, error = "failed", str(exc)
                report.errors.append(str(exc))
                log.error("%s", exc)  # names the variable, never its value
                _finish(db, run_id, outcome, error)
                report.status = "failed"
                return report  # the same credentials fail for every hashtag and target
            except BudgetExhausted as exc:
                outcome, error = "ok", str(exc)
                log.warning("%s", exc)
                report.errors.append(str(exc))
            except SourceError as exc:
                outcome, error = "failed", str(exc)
                report.errors.append(f"{label}: {exc}")
                log.error("%s: %s", label, exc)
            except Exception as exc:  # noqa: BLE001 - one bad source must not stop the others
                outcome, error = "failed", f"{exc.__class__.__name__}: {exc}"
                report.errors.append(f"{label}: unexpected {error}")
                log.exception("%s: unexpected error", label)
            except BaseException:  # a stop asked for during a retry wait: the run row says so, then it ends
                _finish(db, run_id, "interrupted", "stopped by signal during a wait")
                raise
            _finish(db, run_id, outcome, error)
            if outcome == "failed":
                report.status = "failed"
            if should_stop():
                return report
    return report


def _finish(db: Database, run_id: int, outcome: str, error: str | None) -> None:
    with db.write() as conn:
        q.finish_run(conn, run_id, outcome, error)


def harvest(
    db: Database, sources: list[Source | MissingCredentials], hashtags: list[str], *,
    job_run_id: int | None = None, should_stop: Callable[[], bool] = lambda: False,
    progress: Callable[[str, int], None] | None = None,
) -> HarvestReport:
    """Harvest every source in turn; a source that cannot start is reported and skipped."""
    with db.write() as conn:
        q.close_stale_runs(conn)
    out = HarvestReport()
    for src in sources:
        if isinstance(src, MissingCredentials):
            log.warning("%s", src)
            name = str(src).split(":", 1)[0]
            out.sources.append(SourceReport(name, status="skipped", errors=[str(src)]))
            continue
        out.sources.append(harvest_source(db, src, hashtags, job_run_id=job_run_id,
                                          should_stop=should_stop, progress=progress))
        if should_stop():
            out.interrupted = True
            break
    return out
