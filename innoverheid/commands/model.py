"""Commands: train, evaluate, predict, classify, review (the theme classifier)."""

from __future__ import annotations

import getpass
import json
import os
import sys
from pathlib import Path
from typing import Optional

import click
import typer

from innoverheid.app import state
from innoverheid.cli import app
from innoverheid.errors import EXIT_PARTIAL, InputFileError, UsageError
from innoverheid.progress import progress

_SHOW = 20


def _report_problems(name: str, problems: list[tuple[int, str]]) -> None:
    for line, msg in problems[:_SHOW]:
        typer.echo(f"{name}: line {line}: {msg}", err=True)
    if len(problems) > _SHOW:
        typer.echo(f"{name}: ... and {len(problems) - _SHOW} more bad lines", err=True)


def _read_labelled(path: Path):
    from classify.data import DataFileError, LineProblems, read_labelled

    problems = LineProblems()
    try:
        examples = read_labelled(path, problems)
    except DataFileError as exc:
        raise InputFileError(f"{exc}; give a JSONL file with one {{\"id\",\"text\",\"labels\"}} object per line") \
            from None
    _report_problems(str(path), problems.problems)
    return examples, problems.problems


def _load_model(st, model: Optional[Path]):
    from classify import store

    return store.load(model) if model is not None else store.load_configured(st.cfg)


@app.command("train")
def train_cmd(
    ctx: typer.Context,
    data: list[Path] = typer.Option([], "--data", "-d", help="Extra labelled JSONL file ({\"id\",\"text\","
                                    "\"labels\"} per line); may be repeated."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Model folder to write (default: "
                                       "classifier.model from config.yaml, else models/current next to it)."),
    folds: int = typer.Option(5, "--folds", min=0, max=20, help="Cross-validation folds for the figures "
                              "(0: skip them)."),
    jobs: int = typer.Option(1, "--jobs", "-j", min=1, max=64, help="Cross-validation folds fitted at once, "
                             "one process each (about 1 GB of memory per process)."),
    seed_only: bool = typer.Option(False, "--seed-only", help="Train on the bundled seed corpus (and --data) only, "
                                   "without the labels people gave in the database."),
) -> None:
    """Train a model from the seed corpus plus the labels people gave (review) and print its
    cross-validated figures: precision, recall and F1 per label, theme macro/micro-F1, idea-gate
    F1, geen_idee F1 and primary-theme accuracy.

    Example: innoverheid train --out models/current
    """
    from classify import store
    from classify.data import load_seed
    from classify.metrics import render
    from classify.stage import register_model
    from classify.train import merge, person_examples, train

    st = state(ctx)
    extra = []
    bad = 0
    for path in data:
        examples, problems = _read_labelled(path)
        extra.append(examples)
        bad += len(problems)
    people = [] if seed_only else person_examples(st.db)
    examples = merge(load_seed(), *extra, people)
    typer.echo(f"training on {len(examples)} posts (seed corpus, {sum(len(e) for e in extra)} from --data, "
               f"{len(people)} labelled by people)")
    target = out or Path(st.cfg.resolve(st.cfg.classifier.model or "models/current"))
    with progress("cross-validating", total=folds or None, unit="folds") as bar:
        result = train(examples, cv_folds=folds, on_fold=lambda i, n: bar.advance(1), n_jobs=jobs)
    if result.cv is not None:
        typer.echo(render(result.cv, f"cross-validated figures ({folds} folds, stratified by primary label):"))
    store.save(result.pipeline, result.meta, target)
    register_model(st.db, store.LoadedModel(result.pipeline, result.meta, target))  # no need to read it back
    typer.echo(f"model {result.meta['version']} written to {target}")
    if st.cfg.classifier.model is None or st.cfg.resolve(st.cfg.classifier.model).resolve() != target.resolve():
        typer.echo(f"to use it, set classifier.model: {target} in config.yaml", err=True)
    if bad:
        raise typer.Exit(EXIT_PARTIAL)


@app.command("evaluate")
def evaluate_cmd(
    ctx: typer.Context,
    data: Path = typer.Option(..., "--data", "-d", help="Labelled JSONL file ({\"id\",\"text\",\"labels\"} "
                              "per line)."),
    model: Optional[Path] = typer.Option(None, "--model", "-m", help="Model folder (default: the configured one)."),
) -> None:
    """Score the current model on a labelled file: precision, recall, F1 per label, theme macro- and
    micro-F1, idea-gate F1, geen_idee F1 and primary-theme accuracy. Bad lines are reported and
    skipped (exit status 1); an unreadable file is exit status 2.

    Example: innoverheid evaluate --data classify/data/eval.jsonl
    """
    from classify.metrics import render, score

    st = state(ctx)
    examples, problems = _read_labelled(data)
    if not examples:
        raise InputFileError(f"{data}: no usable labelled lines; each line must be a JSON object with "
                             "\"text\" and \"labels\"")
    loaded = _load_model(st, model)
    texts = [ex.text for ex in examples]
    decisions = []
    size = st.cfg.classifier.batch_size
    with progress("evaluating", total=len(texts)) as bar:
        for i in range(0, len(texts), size):
            decisions += loaded.decide(texts[i:i + size])
            bar.advance(min(size, len(texts) - i))
    rep = score([list(ex.labels) for ex in examples], [d.labels for d in decisions])
    typer.echo(render(rep, f"model {loaded.version} on {data}:"))
    if problems:
        raise typer.Exit(EXIT_PARTIAL)


@app.command("predict")
def predict_cmd(
    ctx: typer.Context,
    file: str = typer.Argument(..., metavar="FILE", help="JSONL with {\"id\",\"text\"} per line, or - for stdin."),
    model: Optional[Path] = typer.Option(None, "--model", "-m", help="Model folder (default: the configured one)."),
) -> None:
    """Label posts from a JSONL file; writes {"id","labels","scores","needs_review"} per line to
    stdout, in input order. Bad lines are reported on stderr with their line number and skipped
    (exit status 1); an unreadable file is exit status 2.

    Example: innoverheid predict posts.jsonl > labelled.jsonl
    """
    from classify.data import DataFileError, LineProblems, read_texts

    st = state(ctx)
    if file != "-" and not Path(file).is_file():
        raise InputFileError(f"{file}: no such file; give a JSONL file with one {{\"id\",\"text\"}} per line, "
                             "or - for stdin")
    loaded = _load_model(st, model)
    min_conf = st.cfg.classifier.min_confidence
    size = st.cfg.classifier.batch_size
    problems = LineProblems()
    out = sys.stdout
    batch: list[tuple[object, str]] = []

    def flush() -> None:
        if not batch:
            return
        for (rid, _), d in zip(batch, loaded.decide([t for _, t in batch]), strict=True):
            out.write(json.dumps({"id": rid, "labels": d.labels,
                                  "scores": {k: round(v, 4) for k, v in d.scores.items()},
                                  "needs_review": d.confidence < min_conf}, ensure_ascii=False) + "\n")
        batch.clear()

    try:
        for _, rid, text in read_texts(file, problems):
            batch.append((rid, text))
            if len(batch) >= size:
                flush()
        flush()
    except DataFileError as exc:
        raise InputFileError(str(exc)) from None
    out.flush()
    _report_problems("stdin" if file == "-" else file, problems.problems)
    if problems.problems:
        raise typer.Exit(EXIT_PARTIAL)


@app.command("classify")
def classify_cmd(
    ctx: typer.Context,
    all_posts: bool = typer.Option(False, "--all", help="Re-label every post, not only those without a label "
                                   "from the current model."),
) -> None:
    """Label every stored post that has no label from the current model yet, with the model's
    version and confidence; posts below classifier.min_confidence are marked for review.

    Example: innoverheid classify
    """
    from classify import stage, store

    st = state(ctx)
    loaded = store.load_configured(st.cfg)
    todo = stage.count_todo(st.db, loaded.version, all_posts)
    with progress(f"classifying with {loaded.version}", total=todo) as bar:
        rep = stage.classify_posts(st.cfg, st.db, all=all_posts, on_progress=bar.advance, model=loaded)
    typer.echo(f"classified {rep.classified} posts with model {rep.model_version}; "
               f"{rep.needs_review} below min_confidence {st.cfg.classifier.min_confidence} await review")


def _default_who() -> str:
    try:
        return os.environ.get("USER") or getpass.getuser()
    except Exception:  # no user name on some containers
        return "unknown"


@app.command("review")
def review_cmd(
    ctx: typer.Context,
    export: Optional[Path] = typer.Option(None, "--export", help="Write the review list to this CSV instead."),
    import_: Optional[Path] = typer.Option(None, "--import", help="Store the labels filled in on this CSV."),
    limit: int = typer.Option(50, "--limit", "-n", min=1, help="How many posts to show or export."),
    who: Optional[str] = typer.Option(None, "--who", help="Name stored with your labels (default: $USER)."),
) -> None:
    """Label the posts the model is least sure about (one per near-duplicate group), in the terminal
    or through a spreadsheet (--export, fill in the 'labels' column, --import). Your labels are
    stored with your name and the time, always win over the model's, and feed the next train.

    Example: innoverheid review --export review.csv   (then: innoverheid review --import review.csv)
    """
    from classify import review

    st = state(ctx)
    who = who or _default_who()
    if export and import_:
        raise UsageError("give --export or --import, not both")
    if export is not None:
        if not export.parent.exists():
            raise UsageError(f"--export {export}: the folder {export.parent} does not exist")
        n = review.export_csv(st.db, export, limit)
        typer.echo(f"wrote {n} posts to {export}; fill in the 'labels' column (names separated by ';', primary "
                   f"first) and run: innoverheid review --import {export}")
        return
    if import_ is not None:
        if not import_.is_file():
            raise InputFileError(f"{import_}: no such file; give the CSV written by review --export")
        try:
            with progress(f"importing {import_.name}", unit="rows") as bar:
                summary = review.import_csv(st.db, import_, who, on_row=bar.advance)
        except (ValueError, UnicodeDecodeError, OSError) as exc:
            raise InputFileError(f"{import_}: {exc}") from None
        _report_problems(str(import_), summary.problems)
        typer.echo(f"stored labels for {summary.stored} posts ({summary.unchanged_blank} rows left blank, "
                   f"{len(summary.problems)} rejected)")
        if summary.problems:
            raise typer.Exit(EXIT_PARTIAL)
        return
    items = review.least_sure(st.db, limit)
    if not items:
        typer.echo("nothing to review: run 'innoverheid classify' first, or every group has a person's label")
        return

    def ask(prompt: str) -> str:
        try:
            return typer.prompt(prompt, default="", show_default=False)
        except click.exceptions.Abort:  # end of input or Ctrl-D: stop, keeping what was stored
            return "q"

    done = review.terminal_loop(st.db, items, who, ask=ask, say=typer.echo)
    typer.echo(f"stored labels for {done} posts as {who}")
