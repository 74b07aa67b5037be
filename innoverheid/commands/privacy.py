"""Command: forget (erasure under the AVG)."""

from __future__ import annotations

from typing import Optional

import typer

from innoverheid.app import state
from innoverheid.cli import app
from innoverheid.errors import UsageError


@app.command("forget")
def forget_cmd(
    ctx: typer.Context,
    author: Optional[str] = typer.Option(None, "--author", help="Erase every post by this handle (with or without @)."),
    post: Optional[str] = typer.Option(None, "--post", help="Erase one post: its id, its URL, or source:id."),
    source: Optional[str] = typer.Option(None, "--source", help="With --post: only in this source."),
    reason: str = typer.Option("request of the person (AVG art. 17)", "--reason",
                               help="Why, for the audit log (write no personal data here)."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
) -> None:
    """Erase a person's or a post's data: posts, raw payloads, labels, sightings, and reposts that copy them.

    The audit log records what was erased, when and why, but no personal data. Exports and
    digests written before stay as they are: delete those files yourself.

    Example: innoverheid forget --author anne.bsky.social --yes
    """
    from innoverheid.privacy import forget_author, forget_post

    if bool(author) == bool(post):
        raise UsageError("give exactly one of --author HANDLE or --post ID")
    st = state(ctx)
    what = f"all posts by {author}" if author else f"post {post}"
    if not yes and not typer.confirm(f"Erase {what} from {st.cfg.database.split('@')[-1]}?", err=True):
        typer.echo("nothing erased")
        raise typer.Exit(0)
    key_env = st.cfg.privacy.pseudonym_key_env
    er = (forget_author(st.db, author, reason, key_env=key_env) if author
          else forget_post(st.db, post, source, reason, key_env=key_env))
    typer.echo(er.summary())
    if er.posts == 0:
        typer.echo(f"no stored post matched {what}; the request is recorded in the audit log", err=True)
