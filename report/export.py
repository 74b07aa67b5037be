"""Exports for analysts: CSV, XLSX, Parquet, JSONL, streamed in batches so memory stays flat.

Spreadsheets evaluate cells that start with = + - @ (and tab or carriage return); per OWASP's
advice on CSV injection such cells get a leading apostrophe in CSV and XLSX, and XLSX cells are
written as explicit strings. JSONL and Parquet keep every text exactly (they are read by code,
not by a spreadsheet), so a JSONL export round-trips byte for byte.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select

from storage import Database
from storage.labels import effective_labels
from storage.models import Post

COLUMNS = [
    "source", "source_id", "url", "author_handle", "author_name", "created_at", "lang", "text", "is_repost",
    "reply_to", "hashtags", "themes", "primary_theme", "confidence", "model_version", "harvested_at",
]
EXTRA_COLUMNS = ["needs_review", "label_origin", "repost_of", "quote_of", "like_count", "repost_count",
                 "reply_count", "group_id", "post_id"]
FORMATS = ("csv", "xlsx", "parquet", "jsonl")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
# Characters XML 1.0 (and so XLSX) cannot hold.
_XML_ILLEGAL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")
BATCH = 5000
XLSX_CELL_MAX = 32_767


@dataclass
class ExportFilter:
    theme: str | None = None
    source: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    min_confidence: float | None = None


def neutralise(value: Any) -> Any:
    """Make a cell inert in a spreadsheet without losing what it said."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def pseudonym(value: str | None, key: bytes) -> str | None:
    """A stable keyed hash: the same author always maps to the same pseudonym, unlinkable without the key."""
    if value is None:
        return None
    return "p_" + hmac.new(key, value.encode("utf-8"), hashlib.sha256).hexdigest()[:16]


def _iso(dt: datetime | None) -> str | None:
    return dt.isoformat().replace("+00:00", "Z") if dt else None


def iter_rows(db: Database, flt: ExportFilter, pseudonym_key: bytes | None = None,
              batch: int = BATCH) -> Iterator[dict[str, Any]]:
    """Rows in export order (by post id), one batch in memory at a time (keyset paging)."""
    t = Post.__table__
    last_id = 0
    while True:
        stmt = select(t).where(t.c.id > last_id).order_by(t.c.id).limit(batch)
        if flt.source:
            stmt = stmt.where(t.c.source == flt.source)
        if flt.since:
            stmt = stmt.where(t.c.created_at >= flt.since)
        if flt.until:
            stmt = stmt.where(t.c.created_at < flt.until)
        with db.read() as conn:
            posts = conn.execute(stmt).mappings().all()
            if not posts:
                return
            labels = effective_labels(conn, [p["id"] for p in posts])
        last_id = posts[-1]["id"]
        for p in posts:
            eff = labels.get(p["id"])
            themes = eff.labels if eff else []
            if flt.theme and flt.theme not in themes:
                continue
            conf = eff.confidence if eff else None
            if flt.min_confidence is not None and (conf is None or conf < flt.min_confidence):
                continue
            handle, name = p["author_handle"], p["author_name"]
            ids = {k: p[k] for k in ("source_id", "url", "reply_to", "repost_of", "quote_of")}
            if pseudonym_key is not None:
                handle, name = pseudonym(handle, pseudonym_key), pseudonym(handle or name, pseudonym_key)
                # Post ids and URLs carry the handle or DID: hash them too (stable, so joins still work).
                ids = {k: pseudonym(v, pseudonym_key) for k, v in ids.items()}
                ids["url"] = None
            yield {
                "source": p["source"], "source_id": ids["source_id"], "url": ids["url"], "author_handle": handle,
                "author_name": name, "created_at": _iso(p["created_at"]), "lang": p["lang"], "text": p["text"],
                "is_repost": bool(p["is_repost"]), "reply_to": ids["reply_to"], "hashtags": p["hashtags"] or "",
                "themes": ";".join(themes), "primary_theme": themes[0] if themes else None,
                "confidence": None if conf is None else round(float(conf), 4),
                "model_version": eff.model_version if eff else None, "harvested_at": _iso(p["harvested_at"]),
                "needs_review": bool(eff.needs_review) if eff else None,
                "label_origin": eff.origin if eff else None, "repost_of": ids["repost_of"], "quote_of": ids["quote_of"],
                "like_count": p["like_count"], "repost_count": p["repost_count"], "reply_count": p["reply_count"],
                "group_id": p["group_id"], "post_id": p["id"],
            }


def _write_csv(rows: Iterator[dict], out: Path, encoding: str, on_row: Callable[[], None]) -> int:
    n = 0
    with out.open("w", newline="", encoding=encoding) as fh:
        w = csv.writer(fh)
        cols = COLUMNS + EXTRA_COLUMNS
        w.writerow(cols)
        for row in rows:
            w.writerow([neutralise("" if row[c] is None else row[c]) for c in cols])
            n += 1
            on_row()
    return n


def _write_jsonl(rows: Iterator[dict], out: Path, on_row: Callable[[], None]) -> int:
    n = 0
    with out.open("w", encoding="utf-8", newline="\n") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
            n += 1
            on_row()
    return n


def _utf16_len(value: str) -> int:
    return len(value.encode("utf-16-le")) // 2


def _fit_cell(value: str) -> str:
    """Excel holds at most 32,767 characters in a cell and calls a file with more corrupt; cut with a note."""
    if _utf16_len(value) <= XLSX_CELL_MAX:
        return value
    note = " [... cut at Excel's 32,767-character cell limit; the full text is in a CSV or JSONL export]"
    keep = XLSX_CELL_MAX - len(note)
    cut = value[:keep]
    while _utf16_len(cut) > keep:  # emoji outside the BMP count twice in Excel
        cut = cut[: len(cut) - (_utf16_len(cut) - keep + 1) // 2 - 1]
    return cut + note


def _write_xlsx(rows: Iterator[dict], out: Path, on_row: Callable[[], None]) -> int:
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell

    wb = Workbook(write_only=True)
    ws = wb.create_sheet("posts")
    cols = COLUMNS + EXTRA_COLUMNS
    ws.append(cols)
    n = 0
    for row in rows:
        cells = []
        for c in cols:
            v = row[c]
            if isinstance(v, str):
                cell = WriteOnlyCell(ws, value=_fit_cell(neutralise(_XML_ILLEGAL.sub("\ufffd", v))))
                cell.data_type = "s"  # a string, never a formula
            else:
                cell = WriteOnlyCell(ws, value=v)
            cells.append(cell)
        ws.append(cells)
        n += 1
        on_row()
    wb.save(out)
    return n


def _write_parquet(rows: Iterator[dict], out: Path, on_row: Callable[[], None]) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    cols = COLUMNS + EXTRA_COLUMNS
    types = {"is_repost": pa.bool_(), "needs_review": pa.bool_(), "confidence": pa.float64(),
             "like_count": pa.int64(), "repost_count": pa.int64(), "reply_count": pa.int64(),
             "group_id": pa.int64(), "post_id": pa.int64(),
             "created_at": pa.timestamp("us", tz="UTC"), "harvested_at": pa.timestamp("us", tz="UTC")}
    schema = pa.schema([(c, types.get(c, pa.string())) for c in cols])
    n = 0
    buf: list[dict] = []
    with pq.ParquetWriter(out, schema) as writer:
        def flush():
            if buf:
                table = pa.Table.from_pylist(
                    [{**r, "created_at": _parse(r["created_at"]), "harvested_at": _parse(r["harvested_at"])}
                     for r in buf], schema=schema)
                writer.write_table(table)
                buf.clear()
        for row in rows:
            buf.append(row)
            n += 1
            on_row()
            if len(buf) >= BATCH:
                flush()
        flush()
    return n


def _parse(value: str | None):
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


def export(db: Database, out: Path, fmt: str, flt: ExportFilter, *, pseudonym_key: bytes | None = None,
           encoding: str = "utf-8", on_row: Callable[[], None] = lambda: None) -> int:
    """Write the export; returns the number of rows. Writes to a temporary file, then renames it."""
    rows = iter_rows(db, flt, pseudonym_key)
    tmp = out.with_name(out.name + ".partial")
    try:
        if fmt == "csv":
            n = _write_csv(rows, tmp, encoding, on_row)
        elif fmt == "jsonl":
            n = _write_jsonl(rows, tmp, on_row)
        elif fmt == "xlsx":
            n = _write_xlsx(rows, tmp, on_row)
        elif fmt == "parquet":
            n = _write_parquet(rows, tmp, on_row)
        else:  # pragma: no cover - the CLI checks the choice
            raise ValueError(fmt)
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)
    return n
