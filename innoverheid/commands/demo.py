"""Command: demo."""

from __future__ import annotations

from pathlib import Path

import typer

from innoverheid.cli import app


@app.command("demo")
def demo_cmd(
    out: Path = typer.Option(Path("innoverheid-demo"), "--out", "-o", help="Folder for the digest, the export "
                             "and the demo database (created if needed)."),
) -> None:
    """Run the whole pipeline offline on the bundled sample: harvest, classify, digest, export.

    Local stand-ins of Bluesky, Mastodon (two instances) and X serve a few hundred sample posts
    on 127.0.0.1 in the platforms' real formats; the real collectors harvest them. No account,
    no network, under a minute. Your own config and database are not touched.

    Example: innoverheid demo --out demo-output
    """
    from innoverheid.demo import run_demo

    result = run_demo(out, say=lambda s: typer.echo(s, err=True))
    typer.echo(f"\ndone in {result.seconds:.1f} s: {result.counts['posts']} posts harvested, classified and reported.")
    typer.echo(f"  open the digest:   {result.digest_html}")
    typer.echo(f"  for e-mail/chat:   {result.digest_md}")
    typer.echo(f"  export for Excel:  {result.export_csv}")
    typer.echo(f"  demo database:     {result.database}  (try: INNOVERHEID_DATABASE_URL=sqlite:///"
               f"{result.database} innoverheid status)")
