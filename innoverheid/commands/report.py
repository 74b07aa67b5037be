"""Command: digest (the themed overview for drafters)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from innoverheid.app import state
from innoverheid.cli import app
from innoverheid.dates import parse_date
from innoverheid.errors import UsageError
from innoverheid.progress import progress


@app.command("digest")
def digest_cmd(
    ctx: typer.Context,
    since: Optional[str] = typer.Option(None, "--since", help="Only posts created on or after this date "
                                        "(YYYY-MM-DD)."),
    until: Optional[str] = typer.Option(None, "--until", help="Only posts created before this date (YYYY-MM-DD)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", metavar="DIR",
                                       help="Folder for digest.html and digest.md (default: report.out_dir)."),
) -> None:
    """Write the themed digest for drafters: digest.html (one self-contained page) and digest.md.

    Per charter theme: what it means, how many ideas, posts and people, a chart over time and
    the ideas with the most support; then the ideas still to check, the other ideas, and how
    reliable the sorting is. Similar posts are grouped into one idea first. Dutch by default;
    report.language: en gives English.

    Example: innoverheid digest --since 2013-02-04 --out reports/week-6
    """
    from classify.grouping import assign_groups
    from report.digest import write_digest

    since_dt, until_dt = parse_date(since, "--since"), parse_date(until, "--until")
    if since_dt and until_dt and since_dt >= until_dt:
        raise UsageError(f"--since {since} is not before --until {until}; give an earlier --since or a later --until")
    if out is not None and out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file; give a folder (it is created when missing)")
    st = state(ctx)
    with progress("grouping similar posts") as bar:
        assign_groups(st.db, on_progress=bar.advance)
    try:
        result = write_digest(st.cfg, st.db, since=since_dt, until=until_dt, out_dir=out)
    except OSError as exc:
        where = out if out is not None else st.cfg.report.out_dir
        raise UsageError(f"cannot write the digest to {where}: {exc.strerror or exc}; choose a folder you can "
                         "write to with --out or report.out_dir") from None
    typer.echo(f"wrote {result.html_path} and {result.md_path}: {result.n_ideas} ideas in {result.n_posts} posts")
