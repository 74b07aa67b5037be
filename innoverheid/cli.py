"""The `innoverheid` command: global options, friendly errors, and the commands' registration.

Library code raises typed errors; only here do they become one clear message on stderr and
the exit status from interface.md (0 ok, 1 partly failed, 2 bad usage/config/input). A
traceback is shown only with --debug.
"""

from __future__ import annotations

import sys
import traceback
from typing import Optional

import click
import typer
from typer.core import TyperGroup

from innoverheid.app import AppState
from innoverheid.errors import InnoverheidError


class _Group(TyperGroup):
    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except InnoverheidError as exc:
            debug = isinstance(ctx.obj, AppState) and ctx.obj.debug
            if debug:
                traceback.print_exc()
            click.echo(f"innoverheid: error: {exc}", err=True)
            ctx.exit(exc.exit_code)
        finally:
            if isinstance(ctx.obj, AppState):
                ctx.obj.close()


app = typer.Typer(
    cls=_Group,
    name="innoverheid",
    help="Harvest #innoverheid ideas from Bluesky, Mastodon and X, sort them under the charter's themes, "
    "and write a digest for the drafting team.\n\nExample: innoverheid --config config.yaml harvest",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
def _global(
    ctx: typer.Context,
    config: Optional[str] = typer.Option(
        None, "--config", "-c", metavar="PATH",
        help="config.yaml to use (default: ./config.yaml, else $INNOVERHEID_CONFIG, else built-in defaults).",
    ),
    verbose: int = typer.Option(0, "--verbose", "-v", count=True, help="More log output (-vv for debug)."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks for errors (for bug reports)."),
) -> None:
    ctx.obj = AppState(config_path=config, debug=debug, verbose=verbose)
    from innoverheid.logs import setup_logging

    setup_logging(verbose=verbose)


def _register() -> None:
    # Each module adds its commands to `app`; one module per area keeps files small.
    from innoverheid.commands import data, harvest, model, ops, privacy, report  # noqa: F401
    from innoverheid.commands import demo  # noqa: F401


_register()


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        click.echo("innoverheid: interrupted", err=True)
        sys.exit(130)


if __name__ == "__main__":  # pragma: no cover
    # Under `python -m innoverheid.cli` this file runs as __main__, a second copy whose `app` the
    # command modules (they import innoverheid.cli) never registered on: run the real module's.
    from innoverheid.cli import main as _main

    _main()
