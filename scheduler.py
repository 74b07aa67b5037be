"""The APScheduler 3.x scheduler built from config.yaml: the nightly pipeline plus schedule.jobs.

- Times are cron expressions in `schedule.timezone`, read as crontab reads them (day of week
  0 and 7 = Sunday; APScheduler 3 on its own would count 0 as Monday), and a fixed-time job
  runs once on the night the clocks go back, as cron does.
- Jobs live in a SQLAlchemyJobStore in the project's own database (table `apscheduler_jobs`),
  so a run missed while the machine was off runs once when it is back (coalesce), if it is
  not more than `schedule.misfire_grace_minutes` late; a later one is recorded as skipped.
- On start the jobs are replaced from the config, so changes apply; a missed run pending in
  the store is kept so the catch-up still happens.
- One job at a time in this process (one worker thread, max_instances=1); across processes
  and machines the job's database lock (innoverheid.locks) decides.

`innoverheid schedule` runs this in the foreground; `innoverheid run` calls the same
`innoverheid.jobs.run_job` once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone, tzinfo
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED, EVENT_JOB_MISSED, JobExecutionEvent
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.util import utc_timestamp_to_datetime

if TYPE_CHECKING:
    from innoverheid.config import Config
    from storage import Database

log = logging.getLogger("innoverheid.scheduler")
JOBS_TABLE = "apscheduler_jobs"
JOB_FUNC = "scheduler:run_scheduled_job"

# ------------------------------------------------------------------ cron, as crontab reads it

_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")  # crontab numbering: 0 (and 7) = Sunday
_MACROS = {"@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *", "@weekly": "0 0 * * 0",
           "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *"}


class CronError(ValueError):
    pass


def _weekday(token: str) -> int:
    t = token.strip().lower()
    if t[:3] in _DAYS and t.isalpha():
        return _DAYS.index(t[:3])
    if not t.isdigit() or int(t) > 7:
        raise CronError(f"day of week {token!r} is not 0-7 or a name (sun, mon ... sat)")
    return int(t)


def crontab_weekdays(field: str) -> str:
    """A crontab day-of-week field (0/7 = Sunday) as an APScheduler field of day names."""
    if field in ("*", "?"):
        return "*"
    days: set[int] = set()
    for part in field.split(","):
        span, _, step = part.partition("/")
        if step and (not step.isdigit() or int(step) < 1):
            raise CronError(f"day of week step {step!r} must be a whole number of at least 1")
        if span == "*":
            lo, hi = 0, 6
        elif "-" in span:
            a, b = span.split("-", 1)
            lo, hi = _weekday(a), _weekday(b)
            if lo > hi:
                raise CronError(f"day of week range {span!r} runs backwards; write it as two ranges, e.g. fri-sat,sun")
        else:
            lo = _weekday(span)
            hi = 7 if step else lo
        days.update(d % 7 for d in range(lo, hi + 1, int(step or 1)))
    if len(days) == 7:
        return "*"
    return ",".join(_DAYS[d] for d in sorted(days, key=lambda d: (d + 6) % 7))


class CrontabTrigger(CronTrigger):
    """CronTrigger that skips the repeated hour when the clocks go back, for fixed-time jobs.

    At the end of summer time 02:30 happens twice; cron runs a 02:30 job once, and so do we.
    Jobs with a wildcard or step in the hour field run through the repeated hour as usual.
    """

    __slots__ = ()

    def _fixed_hour(self) -> bool:
        hour = str(next(f for f in self.fields if f.name == "hour"))
        return all(part.isdigit() for part in hour.split(","))

    def _repeated(self, fire: datetime) -> bool:
        local = fire.astimezone(timezone.utc).astimezone(self.timezone)
        wall = local.replace(tzinfo=None)
        first, second = wall.replace(tzinfo=self.timezone, fold=0), wall.replace(tzinfo=self.timezone, fold=1)
        return first.utcoffset() != second.utcoffset() and local.utcoffset() == second.utcoffset() \
            and first.utcoffset() > second.utcoffset()

    def get_next_fire_time(self, previous_fire_time, now):
        fire = super().get_next_fire_time(previous_fire_time, now)
        while fire is not None and self._fixed_hour() and self._repeated(fire):
            fire = super().get_next_fire_time(fire, fire)
        return fire


def cron_trigger(expr: str, tz: tzinfo | str) -> CrontabTrigger:
    """Parse a five-field crontab expression (or @daily, @weekly ...) in the given time zone."""
    text = _MACROS.get(expr.strip().lower(), expr)
    fields = text.split()
    if len(fields) != 5:
        raise CronError(f"has {len(fields)} fields; cron needs five: minute hour day-of-month month day-of-week")
    minute, hour, dom, month, dow = fields
    if dom not in ("*", "?") and dow not in ("*", "?"):
        raise CronError("restricts both day of month and day of week; cron would run when EITHER matches, "
                        "this scheduler only when BOTH do: restrict one of the two")
    tz = ZoneInfo(tz) if isinstance(tz, str) else tz
    return CrontabTrigger(minute=minute, hour=hour, day="*" if dom == "?" else dom, month=month,
                          day_of_week=crontab_weekdays(dow), timezone=tz)


def job_crons(cfg: Config) -> dict[str, str]:
    """Job name -> cron: the nightly pipeline, then schedule.jobs (a job named nightly there wins)."""
    return {"nightly": cfg.schedule.nightly, **{name: j.cron for name, j in cfg.schedule.jobs.items()}}


# ------------------------------------------------------------------ what the stored jobs call


@dataclass
class _Runtime:
    cfg: Any
    db: Any
    should_stop: Callable[[], bool]
    runner: Callable[[str], Any]


_runtime: _Runtime | None = None


def run_scheduled_job(name: str) -> None:
    """The function every stored job calls (by reference, so the store holds only the job's name)."""
    rt = _runtime
    if rt is None:
        log.error("job %s: the scheduler was not set up in this process; nothing run", name)
        return
    if rt.should_stop():
        log.info("job %s: not started, the scheduler is stopping", name)
        return
    try:
        rt.runner(name)
    except Exception:  # noqa: BLE001 - log it; the scheduler must keep going
        log.exception("job %s: crashed", name)


# ------------------------------------------------------------------ building the scheduler


def stored_next_runs(db: Database) -> dict[str, datetime | None]:
    """Next run times as the job store holds them (empty before the scheduler first ran)."""
    from sqlalchemy import inspect, text

    with db.read() as conn:
        if not inspect(conn).has_table(JOBS_TABLE):
            return {}
        rows = conn.execute(text(f"SELECT id, next_run_time FROM {JOBS_TABLE}")).all()
    return {r.id: utc_timestamp_to_datetime(r.next_run_time) for r in rows}


def _sync_jobs(scheduler: BaseScheduler, store: SQLAlchemyJobStore, cfg: Config, tz: tzinfo,
               db: Database, now: datetime) -> None:
    store.jobs_t.create(store.engine, checkfirst=True)
    stored = stored_next_runs(db)
    for name, cron in job_crons(cfg).items():
        kwargs: dict[str, Any] = {}
        due = stored.pop(name, None)
        if due is not None and due <= now:
            # Missed while we were down: keep it, so the scheduler runs it once now (or records it
            # missed when it is past the grace time). Replacing it would silently drop the run.
            kwargs["next_run_time"] = due
            log.info("job %s: a run due at %s was missed; it is caught up now if within the grace time",
                     name, due.isoformat())
        scheduler.add_job(JOB_FUNC, trigger=cron_trigger(cron, tz), args=[name], id=name, name=name,
                          replace_existing=True, **kwargs)
    for name in stored:
        store.remove_job(name)
        log.info("job %s: removed from the schedule, it is no longer in config.yaml", name)


def build_scheduler(cfg: Config, db: Database, *, blocking: bool = False,
                    should_stop: Callable[[], bool] = lambda: False,
                    runner: Callable[[str], Any], now: datetime | None = None) -> BaseScheduler:
    """A scheduler with the configured jobs, not yet started.

    `runner(name)` runs one job: `innoverheid schedule` passes innoverheid.jobs.run_job, tests their own.
    """
    global _runtime
    tz = ZoneInfo(cfg.schedule.timezone)
    store = SQLAlchemyJobStore(engine=db.engine, tablename=JOBS_TABLE)
    grace = cfg.schedule.misfire_grace_minutes * 60 or 1  # 0 minutes: no catch-up at all
    cls = BlockingScheduler if blocking else BackgroundScheduler
    scheduler = cls(jobstores={"default": store}, executors={"default": ThreadPoolExecutor(max_workers=1)},
                    job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": grace}, timezone=tz)
    _runtime = _Runtime(cfg, db, should_stop, runner)
    _sync_jobs(scheduler, store, cfg, tz, db, now or datetime.now(timezone.utc))
    scheduler.add_listener(_listener(scheduler, cfg, db), EVENT_JOB_MISSED | EVENT_JOB_EXECUTED | EVENT_JOB_ERROR)
    return scheduler


def _listener(scheduler: BaseScheduler, cfg: Config, db: Database) -> Callable[[JobExecutionEvent], None]:
    def on_event(event: JobExecutionEvent) -> None:
        if event.code == EVENT_JOB_MISSED:
            reason = (f"missed: the run due at {event.scheduled_run_time:%Y-%m-%d %H:%M %Z} could not start within "
                      f"schedule.misfire_grace_minutes ({cfg.schedule.misfire_grace_minutes}) (the machine was off "
                      "or busy); the next run resumes from the bookmarks")
            log.warning("job %s: %s", event.job_id, reason)
            try:
                from innoverheid.jobs import record_skip

                record_skip(db, event.job_id, datetime.now(timezone.utc), reason)
            except Exception:  # noqa: BLE001
                log.exception("job %s: could not record the missed run", event.job_id)
        # From the store, not scheduler.get_job(): shutdown(wait=True) holds the scheduler's job
        # store lock while it waits for this very thread, so taking that lock here would deadlock.
        try:
            due = stored_next_runs(db).get(event.job_id)
        except Exception:  # noqa: BLE001 - only a log line depends on it
            due = None
        if due is not None:
            log.info("job %s: next run %s", event.job_id, due.astimezone(scheduler.timezone).isoformat())

    return on_event


def next_run_times(scheduler: BaseScheduler) -> list[tuple[str, datetime | None]]:
    return [(job.id, job.next_run_time) for job in scheduler.get_jobs()]
