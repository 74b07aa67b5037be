"""Import ideas from CSV or JSONL files (workshop notes, exports of discussion groups).

A bad row is reported with its line number and never aborts the rows around it. Rows are
stored in batches through the same executemany upsert as harvested posts, with a harvest run
and sightings for provenance, so re-importing the same file doubles nothing.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from harvester.base import hashtags_in, to_utc
from storage import Database
from storage import posts as q

BATCH = 20_000
MAX_TEXT = 100_000  # characters; longer is almost certainly a broken file, not an idea
_SURROGATE = re.compile("[\ud800-\udfff]")
KNOWN_COLUMNS = {"id", "text", "author", "created_at", "url", "lang", "author_name"}


class ImportFileError(ValueError):
    """The file as a whole cannot be read (not a row problem)."""


@dataclass
class ImportSummary:
    imported: int = 0
    known: int = 0
    rejected: list[tuple[int, str]] = field(default_factory=list)  # (line, reason)

    @property
    def n_rejected(self) -> int:
        return len(self.rejected)


def _check_storable(rec: dict, raw: str) -> None:
    """Refuse what no database can hold, naming the column: NUL bytes, lone UTF-16 surrogates.

    JSON may spell a surrogate as \\ud800 without its partner (a cut-off emoji); left in, it
    would fail the whole batch's insert instead of this one row.
    """
    for key, value in rec.items():
        if isinstance(value, str) and "\x00" in value:
            raise ValueError(f"the {key!r} value contains a NUL byte, which databases cannot store; "
                             "remove it and import again")
    if _SURROGATE.search(raw):
        raise ValueError("the line holds a lone UTF-16 surrogate (\\ud800-\\udfff, half of an emoji), which is "
                         "not valid text; fix it and import again")


def _row_to_post(rec: dict, source: str, line: int) -> dict:
    text = rec.get("text")
    if text is None or (isinstance(text, str) and not text.strip()):
        raise ValueError("the 'text' value is empty")
    if not isinstance(text, str):
        raise ValueError(f"'text' must be a string, got {type(text).__name__}")
    if "\x00" in text:
        raise ValueError("the text contains a NUL byte, which databases cannot store; remove it and import again")
    raw = json.dumps({"line": line, **rec}, ensure_ascii=False, default=str)
    _check_storable(rec, raw)
    if len(text) > MAX_TEXT:
        raise ValueError(f"the text is {len(text)} characters long (more than {MAX_TEXT})")
    created = rec.get("created_at") or None
    try:
        created_at = to_utc(created) if created else None
    except (ValueError, TypeError):
        raise ValueError(
            f"created_at {str(created)[:40]!r} is not an ISO 8601 date (e.g. 2013-02-04T10:00:00Z)") from None
    rid = rec.get("id")
    author = rec.get("author") or None
    if rid in (None, ""):
        # A stable id from the content, so importing the same file twice stores each row once.
        basis = "\x1f".join([text, str(author or ""), str(created or "")])
        rid = "sha1:" + hashlib.sha1(basis.encode("utf-8")).hexdigest()
    for key in ("author", "url", "lang", "author_name"):
        if rec.get(key) is not None and not isinstance(rec.get(key), str | int | float):
            raise ValueError(f"'{key}' must be text")
    return {
        "source": source, "source_id": str(rid), "url": rec.get("url") or None,
        "author_handle": str(author) if author is not None else None,
        "author_name": rec.get("author_name") or None, "author_id": None, "created_at": created_at,
        "lang": rec.get("lang") or None, "text": text, "hashtags": ";".join(dict.fromkeys(hashtags_in(text))),
        "is_repost": False, "repost_of": None, "reply_to": None, "quote_of": None, "conversation_id": None,
        "like_count": None, "repost_count": None, "reply_count": None, "quote_count": None, "instance": None,
        "raw": raw,
    }


def _records(path: Path) -> Iterator[tuple[int, dict | Exception]]:
    """(line number, record or the reason it cannot be read)."""
    if str(path) == "-":
        fh: io.TextIOBase = io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8", errors="strict", newline="")
        suffix = ".jsonl"
    else:
        try:
            fh = path.open("r", encoding="utf-8-sig", errors="strict", newline="")
        except OSError as exc:
            raise ImportFileError(f"cannot open {path}: {exc.strerror or exc}") from None
        suffix = path.suffix.lower()
    with fh:
        if suffix in (".jsonl", ".ndjson", ".json"):
            yield from _jsonl(fh)
        elif suffix in (".csv", ".tsv", ".txt"):
            yield from _csv(fh, "\t" if suffix == ".tsv" else None)
        else:
            raise ImportFileError(f"{path}: unknown file type {suffix!r}; use .csv or .jsonl")


def _jsonl(fh) -> Iterator[tuple[int, dict | Exception]]:
    lineno = 0
    while True:
        try:
            line = fh.readline()
        except UnicodeDecodeError as exc:
            raise ImportFileError(
                f"line {lineno + 1} is not UTF-8 text ({exc.reason}); save the file as UTF-8") from None
        if not line:
            return
        lineno += 1
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as exc:
            yield lineno, ValueError(f"not valid JSON ({exc.msg} at column {exc.colno})")
            continue
        yield lineno, rec if isinstance(rec, dict) else ValueError("a line must be a JSON object {...}")


def _csv(fh, delimiter: str | None) -> Iterator[tuple[int, dict | Exception]]:
    csv.field_size_limit(2**31 - 1)
    try:
        head = fh.read(65536)
    except UnicodeDecodeError as exc:
        raise ImportFileError(f"the file is not UTF-8 text ({exc.reason}); save it as UTF-8 CSV") from None
    if not head.strip():
        raise ImportFileError("the file is empty")
    if delimiter is None:
        try:
            delimiter = csv.Sniffer().sniff(head.split("\n", 1)[0], delimiters=",;\t").delimiter
        except csv.Error:
            delimiter = ","
    rest = io.StringIO(head)
    reader = csv.reader(_chain(rest, fh), delimiter=delimiter)
    try:
        header = [h.strip().lower() for h in next(reader)]
    except (csv.Error, StopIteration) as exc:
        raise ImportFileError(f"cannot read the header line: {exc}") from None
    if "text" not in header:
        raise ImportFileError(
            f"the header has no 'text' column (found: {', '.join(header) or 'nothing'}); "
            "name the column that holds the idea 'text'")
    while True:
        try:
            values = next(reader)
        except StopIteration:
            return
        except UnicodeDecodeError as exc:
            raise ImportFileError(f"near line {reader.line_num}: not UTF-8 text ({exc.reason})") from None
        except csv.Error as exc:
            yield reader.line_num, ValueError(f"broken CSV: {exc}")
            continue
        if not any(v.strip() for v in values):
            continue
        if len(values) != len(header):
            yield reader.line_num, ValueError(f"has {len(values)} fields, the header has {len(header)}")
            continue
        yield reader.line_num, dict(zip(header, values, strict=True))


def _chain(first: io.StringIO, rest) -> Iterator[str]:
    buffered = first.getvalue() + (rest.readline() if not first.getvalue().endswith("\n") else "")
    yield from io.StringIO(buffered)
    yield from rest


def import_file(db: Database, path: Path, source: str = "import",
                on_progress: Callable[[int], None] = lambda n: None) -> ImportSummary:
    summary = ImportSummary()
    with db.write() as conn:
        run_id = q.start_run(conn, source, "-", str(path)[:255])
    batch: list[dict] = []

    def flush() -> None:
        if not batch:
            return
        with db.write() as conn:
            ids, n_new, n_known = q.insert_posts(conn, batch)
            q.record_sightings(conn, run_id, ids.values())
            q.add_run_counts(conn, run_id, n_pages=1, n_new=n_new, n_known=n_known)
        summary.imported += n_new
        summary.known += n_known
        on_progress(len(batch))
        batch.clear()

    try:
        for line, rec in _records(path):
            if isinstance(rec, Exception):
                summary.rejected.append((line, str(rec)))
                continue
            try:
                batch.append(_row_to_post(rec, source, line))
            except ValueError as exc:
                summary.rejected.append((line, str(exc)))
                continue
            if len(batch) >= BATCH:
                flush()
        flush()
    except BaseException as exc:
        flush_err = str(exc) if isinstance(exc, ImportFileError) else exc.__class__.__name__
        with db.write() as conn:
            q.finish_run(conn, run_id, "failed", flush_err, n_skipped=summary.n_rejected)
        raise
    with db.write() as conn:
        q.finish_run(conn, run_id, "ok", None, n_skipped=summary.n_rejected)
    return summary


__all__ = ["import_file", "ImportSummary", "ImportFileError"]
