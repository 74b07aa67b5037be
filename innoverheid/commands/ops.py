"""Commands: run (one pass, as the nightly job does it) and schedule (the scheduler, in the foreground)."""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Optional

import typer

from innoverheid.app import state
from innoverheid.cli import app
from innoverheid.progress import progress

log = logging.getLogger("innoverheid.scheduler")


@app.command("run")
def run_cmd(
    ctx: typer.Context,
    job: str = typer.Option("nightly", "--job", "-j", help="Which job: nightly, or one named under schedule.jobs."),
    steps: Optional[list[str]] = typer.Option(
        None, "--steps", help="Only these steps, comma-separated or repeated: harvest, classify, digest, "
        "retention, deletion_check (default: the job's steps)."),
) -> None:
    """One full pass, as the nightly job does it: harvest, classify, digest.

    For cron and systemd timers. Takes the job's lock in the database: when another process is
    running the same job this run is skipped (and recorded as skipped, exit status 0). Exit
    status 1 when a step or a source failed; the rest still ran and was saved. SIGTERM or
    Ctrl-C finishes the current page, then stops; the next run resumes from the bookmarks.

    Example: innoverheid run --job nightly --steps harvest,classify
    """
    from innoverheid.jobs import parse_steps, run_job
    from innoverheid.signals import STOP_MESSAGE, graceful_stop

    chosen = parse_steps(steps)
    st = state(ctx)
    cfg, db = st.cfg, st.db
    with graceful_stop() as stop, progress(f"{job}: harvesting", unit="posts") as bar:
        def on_page(label: str, n: int) -> None:
            bar.describe(label)
            bar.advance(n)

        result = run_job(cfg, db, job=job, steps=chosen, should_stop=stop, progress=on_page)
    for line in result.lines():
        typer.echo(line)
    if result.outcome == "interrupted":
        typer.echo(f"innoverheid: {STOP_MESSAGE}", err=True)
        raise typer.Exit(stop.exit_code)
    raise typer.Exit(result.exit_code)


def _when(dt: datetime | None) -> str:
    if dt is None:
        return "never (paused)"
    if dt <= datetime.now(timezone.utc):
        return f"now (catching up the run due at {dt.isoformat()})"
    return dt.isoformat()


@app.command("schedule")
def schedule_cmd(ctx: typer.Context) -> None:
    """Run the scheduler in the foreground with the jobs from config.yaml.

    Runs the nightly pipeline at schedule.nightly in schedule.timezone, and every job under
    schedule.jobs. Jobs are kept in the database, so a run missed while the machine was off
    runs once when it is back (within schedule.misfire_grace_minutes). SIGTERM or Ctrl-C lets
    a running job finish its current page, then stops the scheduler (exit status 0).

    Example: innoverheid --config /etc/innoverheid/config.yaml schedule
    """
    from innoverheid.jobs import run_job
    from innoverheid.signals import graceful_stop
    from scheduler import build_scheduler, next_run_times, stored_next_runs

    st = state(ctx)
    cfg, db = st.cfg, st.db

    def runner(name: str) -> None:
        # The same run_job as `innoverheid run`; its summary goes to stdout (the journal under systemd).
        result = run_job(cfg, db, job=name, should_stop=stop)
        for line in result.lines():
            typer.echo(line)
        if not stop():
            typer.echo(f"  {name}: next run {_when(stored_next_runs(db).get(name))}")

    with graceful_stop() as stop:
        sched = build_scheduler(cfg, db, should_stop=stop, runner=runner)
        sched.start()
        try:
            typer.echo(f"scheduler started ({cfg.schedule.timezone}); stop it with Ctrl-C or SIGTERM")
            for name, when in next_run_times(sched):
                typer.echo(f"  {name}: next run {_when(when)}")
                log.info("job %s: next run %s", name, _when(when))
            while not stop.wait(1.0):
                pass
            log.info("scheduler: %s received; waiting for a running job to finish its current page",
                     stop.signal_name)
        finally:
            sched.shutdown(wait=True)
    typer.echo("innoverheid: scheduler stopped by signal; the next run resumes from the bookmarks", err=True)
