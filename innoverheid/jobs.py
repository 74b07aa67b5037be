"""The one pipeline function behind `innoverheid run` and the scheduler: nothing is written twice.

`run_job` takes the job's lock (or records that it skipped), records a `job_runs` row, runs
the steps in order, stores the outcome with counts per source, and sends alerts. Each step
is independent (the database is the hand-off), so a failing step does not stop the next;
the outcome is `ok` when all steps succeed, `failed` when none did, `partial` in between,
`skipped` when another process held the lock and `interrupted` after a stop signal.
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import insert, update

from innoverheid import alerts
from innoverheid.config import Config
from innoverheid.errors import InnoverheidError, UsageError
from innoverheid.logs import redact
from innoverheid.signals import STOP_MESSAGE, StopRequested, interruptible_sleep
from storage import Database
from storage.models import JobRun

log = logging.getLogger("innoverheid.jobs")
job_runs_t = JobRun.__table__
# Retention and the deletion check run every night too (AVG): both do nothing unless configured
# (privacy.retention_days; privacy.deletion_check_days > 0 re-fetches that many days of posts).
NIGHTLY_STEPS = ("harvest", "deletion_check", "retention", "classify", "digest")
MAX_ERROR = 4000


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class StepUnavailable(InnoverheidError):
    """A step's stage function cannot be loaded in this installation."""


@dataclass
class StepContext:
    cfg: Config
    db: Database
    job_run_id: int
    should_stop: Callable[[], bool]
    progress: Callable[[str, int], None] | None = None


@dataclass
class StepResult:
    name: str
    status: str = "ok"  # ok | partial | failed | interrupted | not_run
    error: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    sources: dict[str, dict[str, Any]] = field(default_factory=dict)
    lines: list[str] = field(default_factory=list)
    # What failed, for alerts: "harvest/bluesky", "digest" ...
    failed_parts: list[str] = field(default_factory=list)


# ------------------------------------------------------------------ the steps


def _stage(module: str, func: str, step: str) -> Callable[..., Any]:
    """Load a stage function only when its step runs, so one missing stage fails only its step."""
    try:
        return getattr(importlib.import_module(module), func)
    except (ImportError, AttributeError) as exc:
        raise StepUnavailable(
            f"the {step} step cannot run: {module}.{func} cannot be loaded ({exc.__class__.__name__}: {exc}); "
            f"reinstall innoverheid, or leave '{step}' out of the job's steps in config.yaml"
        ) from None


def _summary(value: Any) -> dict[str, Any]:
    """What a stage returned, as JSON-safe scalars for the job_runs row."""
    if value is None:
        return {}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    elif hasattr(value, "__dict__") and not isinstance(value, dict):
        value = {k: v for k, v in vars(value).items() if not k.startswith("_")}
    if isinstance(value, dict):
        return {str(k): v if isinstance(v, (int, float, bool, str)) or v is None else str(v)[:200]
                for k, v in value.items() if not isinstance(v, (list, dict, tuple, set)) or len(str(v)) < 200}
    if isinstance(value, (int, float, bool)):
        return {"count": value}
    return {"result": str(value)[:200]}


def step_harvest(ctx: StepContext) -> StepResult:
    from harvester.retry import RetryPolicy
    from innoverheid.pipeline import run_harvest

    # Retry and rate-limit waits end early on a stop signal (nothing is half-stored then).
    policy = RetryPolicy.from_config(ctx.cfg.harvest, sleep=interruptible_sleep(ctx.should_stop))
    report = run_harvest(ctx.cfg, ctx.db, job_run_id=ctx.job_run_id, should_stop=ctx.should_stop,
                         progress=ctx.progress, policy=policy)
    out = StepResult("harvest", lines=[s.line() for s in report.sources])
    for s in report.sources:
        out.sources[s.source] = {"status": s.status, "new": s.new, "known": s.known, "skipped": s.skipped,
                                 "errors": len(s.errors), "error": s.errors[0][:500] if s.errors else None}
    failed = [s for s in report.sources if s.status == "failed"]
    out.failed_parts = [f"harvest/{s.source}" for s in failed]
    if failed:
        out.error = "; ".join(f"{s.source}: {s.errors[0] if s.errors else 'failed'}" for s in failed)
    running = [s for s in report.sources if s.status != "skipped"]
    if report.interrupted:
        out.status = "interrupted"
    elif failed and len(failed) == len(running):
        out.status = "failed"
    elif failed:
        out.status = "partial"
    if not report.sources:
        out.lines.append("no source is enabled: set sources.<name>.enabled: true in config.yaml")
    return out


def step_classify(ctx: StepContext) -> StepResult:
    assign_groups = _stage("classify.grouping", "assign_groups", "classify")
    classify_posts = _stage("classify.stage", "classify_posts", "classify")
    groups = assign_groups(ctx.db)
    detail = _summary(classify_posts(ctx.cfg, ctx.db, all=False))
    if groups is not None:
        detail["groups"] = _summary(groups)
    return StepResult("classify", detail=detail)


def step_digest(ctx: StepContext) -> StepResult:
    return StepResult("digest", detail=_summary(_stage("report.digest", "write_digest", "digest")(ctx.cfg, ctx.db)))


def step_retention(ctx: StepContext) -> StepResult:
    fn = _stage("innoverheid.privacy", "enforce_retention", "retention")
    return StepResult("retention", detail=_summary(fn(ctx.cfg, ctx.db)))


def step_deletion_check(ctx: StepContext) -> StepResult:
    fn = _stage("innoverheid.privacy", "deletion_check", "deletion_check")
    return StepResult("deletion_check", detail=_summary(fn(ctx.cfg, ctx.db)))


# Tests replace entries here (monkeypatch.setitem) to script a step's behaviour.
STEPS: dict[str, Callable[[StepContext], StepResult]] = {
    "harvest": step_harvest,
    "classify": step_classify,
    "digest": step_digest,
    "retention": step_retention,
    "deletion_check": step_deletion_check,
}
STEP_NAMES = tuple(STEPS)


def _run_step(name: str, ctx: StepContext) -> StepResult:
    try:
        result = STEPS[name](ctx)
    except StopRequested:
        return StepResult(name, "interrupted", "stopped by signal during a wait; nothing was half-stored")
    except InnoverheidError as exc:
        log.error("%s: %s", name, exc)
        return StepResult(name, "failed", str(exc), failed_parts=[name])
    except Exception as exc:  # noqa: BLE001 - one failing step must not stop the others
        log.exception("%s: unexpected error", name)
        return StepResult(name, "failed", f"unexpected {exc.__class__.__name__}: {exc}", failed_parts=[name])
    if result.status == "failed" and not result.failed_parts:
        result.failed_parts = [name]
    return result


# ------------------------------------------------------------------ the job


def job_names(cfg: Config) -> list[str]:
    return list(dict.fromkeys(["nightly", *cfg.schedule.jobs]))


def job_steps(cfg: Config, job: str) -> list[str]:
    """The steps a job runs: `schedule.jobs.<job>.steps`, or NIGHTLY_STEPS for nightly."""
    if job in cfg.schedule.jobs:
        return list(cfg.schedule.jobs[job].steps)
    if job == "nightly":
        return list(NIGHTLY_STEPS)
    raise UsageError(f"--job {job!r} is not configured; choose {', '.join(job_names(cfg))} "
                     "(further jobs are named under schedule.jobs in config.yaml)")


def parse_steps(values: list[str] | None) -> list[str] | None:
    """`--steps harvest,classify` or `--steps harvest --steps classify`; None when not given."""
    if not values:
        return None
    steps = [s.strip() for v in values for s in v.split(",") if s.strip()]
    bad = [s for s in steps if s not in STEP_NAMES]
    if bad or not steps:
        raise UsageError(f"--steps {', '.join(bad) or '(empty)'}: unknown step; choose from {', '.join(STEP_NAMES)}")
    return list(dict.fromkeys(steps))


@dataclass
class JobResult:
    job: str
    outcome: str  # ok | partial | failed | skipped | interrupted
    run_id: int | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    steps: list[StepResult] = field(default_factory=list)
    error: str | None = None
    holder: str | None = None  # who held the lock, when skipped
    held_since: datetime | None = None
    host: str = field(default_factory=socket.gethostname)
    took_over: str | None = None
    alerts_sent: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """interface.md: 0 success (a skip is not a failure), 1 the job ran but part of it failed."""
        return 0 if self.outcome in ("ok", "skipped") else 1

    @property
    def sources(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for s in self.steps:
            out.update(s.sources)
        return out

    def counts(self) -> dict[str, Any]:
        out: dict[str, Any] = {"steps": {s.name: s.status for s in self.steps}, "sources": self.sources}
        for s in self.steps:
            if s.detail:
                out[s.name] = s.detail
        return out

    def lines(self) -> list[str]:
        when = self.started_at.strftime("%Y-%m-%d %H:%M UTC") if self.started_at else "-"
        if self.outcome == "skipped":
            return [f"{self.job}: skipped at {when}: {self.error}"]
        took = (self.finished_at - self.started_at).total_seconds() if self.finished_at and self.started_at else 0
        out = [f"{self.job}: {self.outcome} (run {self.run_id}, started {when}, {took:.0f} s)"]
        for s in self.steps:
            detail = ", ".join(f"{k} {v}" for k, v in s.detail.items() if isinstance(v, (int, float)))
            head = f"  {s.name}: {s.status}" + (f" ({detail})" if detail else "")
            if s.error and s.name != "harvest":
                head += f": {s.error}"
            out.append(head)
            out += [f"    {line}" for line in "\n".join(s.lines).splitlines()]
        return out


def _insert_run(db: Database, job: str, now: datetime, **values: Any) -> int:
    with db.write() as conn:
        return conn.execute(insert(job_runs_t).values(job=job, started_at=now, host=socket.gethostname(),
                                                      pid=os.getpid(), **values)
                            .returning(job_runs_t.c.id)).scalar_one()


def record_skip(db: Database, job: str, now: datetime, reason: str) -> int:
    """A job run that did not start (lock held elsewhere, or missed while the machine was off)."""
    return _insert_run(db, job, now, finished_at=now, outcome="skipped", error=reason)


def _close_stale(db: Database, job: str, run_id: int, now: datetime) -> None:
    """Rows still 'running' for this job belong to a process that died: we hold the lock now."""
    with db.write() as conn:
        n = conn.execute(update(job_runs_t).where(job_runs_t.c.job == job, job_runs_t.c.outcome == "running",
                                                  job_runs_t.c.id != run_id)
                         .values(outcome="interrupted", finished_at=now,
                                 error="the process running it ended without finishing (killed, or the machine "
                                       "went down); its saved pages are kept and this run resumes from the "
                                       "bookmarks")).rowcount
    if n:
        log.warning("%s: %d earlier run(s) had been left unfinished by a process that ended; marked interrupted",
                    job, n)


def outcome_of(steps: list[StepResult]) -> str:
    ran = [s for s in steps if s.status != "not_run"]
    if not ran:  # stopped before the first step
        return "interrupted"
    if any(s.status == "interrupted" for s in ran):
        return "interrupted"
    if all(s.status == "ok" for s in ran):
        return "ok"
    if all(s.status == "failed" for s in ran):
        return "failed"
    return "partial"


def run_job(cfg: Config, db: Database, job: str = "nightly", steps: list[str] | None = None, *,
            should_stop: Callable[[], bool] = lambda: False, progress: Callable[[str, int], None] | None = None,
            clock: Callable[[], datetime] = utcnow, send_alerts: bool = True) -> JobResult:
    """Run one job once: lock, record, run the steps, record the outcome, alert. Never runs twice at once."""
    from innoverheid.locks import job_lock

    configured = job_steps(cfg, job)  # an unknown job is an error even with explicit steps
    chosen = list(steps) if steps else configured
    secrets = alerts.config_secret_values(cfg)
    started = clock()
    lock = job_lock(db, job, timedelta(minutes=cfg.schedule.lock_ttl_minutes))
    if not lock.acquire():
        holder = lock.holder()
        who = holder.owner if holder else "another process"
        since = f" since {holder.since:%Y-%m-%d %H:%M UTC}" if holder and holder.since else ""
        reason = f"another run of '{job}' is in progress ({who}{since}); this run was skipped"
        run_id = record_skip(db, job, started, reason)
        log.warning("%s: %s", job, reason)
        result = JobResult(job, "skipped", run_id, started, started, error=reason, holder=who,
                           held_since=holder.since if holder else None)
        if send_alerts:
            _alert(cfg, db, result)
        return result
    result = JobResult(job, "running", started_at=started, took_over=lock.took_over)
    try:
        result.run_id = _insert_run(db, job, started, outcome="running")
        _close_stale(db, job, result.run_id, started)
        ctx = StepContext(cfg, db, result.run_id, should_stop, progress)
        for name in chosen:
            if should_stop():
                result.steps.append(StepResult(name, "not_run", "stopped by signal before this step"))
                continue
            log.info("%s: step %s", job, name)
            result.steps.append(_run_step(name, ctx))
        result.outcome = outcome_of(result.steps)
        errors = [f"{s.name}: {s.error}" for s in result.steps if s.error and s.status in ("failed", "partial")]
        result.error = redact("; ".join(errors), secrets)[:MAX_ERROR] or None
        if result.outcome == "interrupted" and not result.error:
            result.error = STOP_MESSAGE
        result.finished_at = clock()
        with db.write() as conn:
            conn.execute(update(job_runs_t).where(job_runs_t.c.id == result.run_id).values(
                finished_at=result.finished_at, outcome=result.outcome, error=result.error,
                counts=_redact_counts(result.counts(), secrets)))
        log.info("%s: %s", job, result.outcome)
        if send_alerts:
            _alert(cfg, db, result)
    finally:
        lock.release()
    return result


def _redact_counts(counts: dict[str, Any], secrets: list[str]) -> dict[str, Any]:
    def clean(v: Any) -> Any:
        if isinstance(v, str):
            return redact(v, secrets)
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        return v

    return clean(counts)


def _alert(cfg: Config, db: Database, result: JobResult) -> None:
    try:
        result.alerts_sent = alerts.after_run(cfg, db, result)
    except Exception:  # noqa: BLE001 - an alert problem must never change the run's outcome
        log.exception("alerts: could not process the alerts for %s run %s", result.job, result.run_id)
