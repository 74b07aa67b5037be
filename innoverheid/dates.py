"""Parsing the dates people type on the command line."""

from __future__ import annotations

from datetime import datetime, timezone

import typer


def parse_date(value: str | None, option: str) -> datetime | None:
    """YYYY-MM-DD or a full ISO 8601 time; naive values are taken as UTC."""
    if value is None:
        return None
    try:
        dt = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a date; write YYYY-MM-DD, e.g. 2013-03-15",
                                 param_hint=option) from None
    return dt.replace(tzinfo=timezone.utc) if dt.tzinfo is None else dt.astimezone(timezone.utc)
