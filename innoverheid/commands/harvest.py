"""Command: harvest."""

from __future__ import annotations

from typing import Optional

import typer

from innoverheid.app import state
from innoverheid.cli import app
from innoverheid.errors import EXIT_PARTIAL
from innoverheid.progress import progress


@app.command("harvest")
def harvest_cmd(
    ctx: typer.Context,
    source: Optional[list[str]] = typer.Option(None, "--source", "-s",
                                               help="Only this source (bluesky, mastodon, x); repeatable."),
    hashtag: Optional[list[str]] = typer.Option(None, "--hashtag", "-t",
                                                help="Only this hashtag (default: config 'hashtags'); repeatable."),
) -> None:
    """Collect new posts with the campaign's hashtags from the enabled sources.

    Each source resumes where its last run stopped; one failing source never stops the others
    (exit status 1 then). Prints per source: new, already known, skipped (with reason), errors.

    Example: innoverheid harvest --source bluesky --hashtag innoverheid
    """
    from innoverheid.pipeline import run_harvest

    st = state(ctx)
    with progress("harvesting", unit="posts") as bar:
        def on_page(label: str, n: int) -> None:
            bar.describe(label)
            bar.advance(n)

        report = run_harvest(st.cfg, st.db, source or None, hashtag or None, progress=on_page)
    for src in report.sources:
        typer.echo(src.line())
    if not report.sources:
        typer.echo("no source is enabled: set sources.<name>.enabled: true in config.yaml")
    if report.failed:
        raise typer.Exit(EXIT_PARTIAL)
