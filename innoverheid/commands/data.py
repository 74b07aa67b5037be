"""Commands: import, export, status."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Optional

import typer

from innoverheid.app import state
from innoverheid.cli import app
from innoverheid.config import LABELS_ALL
from innoverheid.dates import parse_date
from innoverheid.errors import EXIT_PARTIAL, InputFileError, UsageError
from innoverheid.progress import progress


@app.command("import")
def import_cmd(
    ctx: typer.Context,
    file: Path = typer.Argument(..., help="CSV or JSONL file (or - for JSONL on stdin). Column 'text' is required; "
                                "'id', 'author', 'created_at', 'url' are optional."),
    source: str = typer.Option("import", "--source", "-s", help="Name stored in the 'source' column."),
    show: int = typer.Option(20, "--show", help="How many rejected rows to list (all are counted)."),
) -> None:
    """Load ideas from a CSV or JSONL file into the database.

    Bad rows are reported with their line number and skipped; the rest is stored. Importing the
    same file again stores nothing twice. Exit status 1 when some rows were rejected.

    Example: innoverheid import workshop-2013-03-15.csv --source stampijfabriek
    """
    from harvester.importer import ImportFileError, import_file

    if str(file) != "-" and not file.is_file():
        raise InputFileError(f"{file}: no such file; give the path of a .csv or .jsonl file")
    st = state(ctx)
    try:
        with progress(f"importing {file.name}", unit="rows") as bar:
            summary = import_file(st.db, file, source=source, on_progress=bar.advance)
    except ImportFileError as exc:
        raise InputFileError(f"{file}: {exc}") from None
    for line, reason in summary.rejected[:show]:
        typer.echo(f"{file}: line {line}: rejected: {reason}", err=True)
    if summary.n_rejected > show:
        typer.echo(f"... and {summary.n_rejected - show} more rejected rows (use --show N to list them)", err=True)
    typer.echo(f"imported {summary.imported}, already known {summary.known}, rejected {summary.n_rejected}")
    if summary.n_rejected:
        raise typer.Exit(EXIT_PARTIAL)


@app.command("export")
def export_cmd(
    ctx: typer.Context,
    out: Path = typer.Option(..., "--out", "-o", help="File to write."),
    fmt: Optional[str] = typer.Option(None, "--format", "-f", help="csv, xlsx, parquet or jsonl "
                                      "(default: from the file's extension, else csv)."),
    theme: Optional[str] = typer.Option(None, "--theme", help="Only posts with this label."),
    source: Optional[str] = typer.Option(None, "--source", help="Only posts from this source (bluesky, ...)."),
    since: Optional[str] = typer.Option(None, "--since", help="Only posts created on or after this date."),
    until: Optional[str] = typer.Option(None, "--until", help="Only posts created before this date."),
    min_confidence: Optional[float] = typer.Option(None, "--min-confidence", min=0.0, max=1.0,
                                                   help="Only posts whose label confidence is at least this."),
    pseudonymize: bool = typer.Option(False, "--pseudonymize", help="Replace authors by a stable keyed hash "
                                      "(key from the variable named by privacy.pseudonym_key_env)."),
    encoding: str = typer.Option("utf-8", "--encoding", help="CSV encoding; utf-8-sig helps Excel detect UTF-8."),
) -> None:
    """Export posts with their labels for analysts (columns as in the README's data dictionary).

    Cells a spreadsheet would read as a formula are neutralised in CSV and XLSX; JSONL keeps
    every text exactly. A person's label always wins over the model's.

    Example: innoverheid export --out ideas.xlsx --theme leiderschap --since 2013-02-04
    """
    from report.export import FORMATS, ExportFilter, export

    fmt = (fmt or out.suffix.lstrip(".").lower() or "csv").lower()
    if fmt not in FORMATS:
        raise UsageError(f"--format {fmt!r} is not supported; choose one of {', '.join(FORMATS)}")
    if theme is not None and theme not in LABELS_ALL:
        raise UsageError(f"--theme {theme!r} is not a label; choose one of {', '.join(LABELS_ALL)}")
    if not out.parent.exists():
        raise UsageError(f"--out {out}: the folder {out.parent} does not exist")
    st = state(ctx)
    key = None
    if pseudonymize:
        var = st.cfg.privacy.pseudonym_key_env
        if not os.environ.get(var):
            raise UsageError(f"--pseudonymize needs a secret key in the environment variable {var}; set it "
                             "(keep it the same between exports so pseudonyms stay stable)")
        key = os.environ[var].encode()
    flt = ExportFilter(theme=theme, source=source, since=parse_date(since, "--since"),
                       until=parse_date(until, "--until"), min_confidence=min_confidence)
    with progress(f"exporting {out.name}", unit="rows") as bar:
        n = export(st.db, out, fmt, flt, pseudonym_key=key, encoding=encoding, on_row=bar.advance)
    typer.echo(f"exported {n} posts to {out} ({fmt})")


@app.command("status")
def status_cmd(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Show the last run of each job and source, counts, the model version and the next runs.

    Example: innoverheid status
    """
    from innoverheid.status import collect, render

    st = state(ctx)
    info = collect(st.cfg, st.db)
    if as_json:
        typer.echo(json.dumps(info, ensure_ascii=False, indent=2, default=str))
    else:
        typer.echo(render(info))
