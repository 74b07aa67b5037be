"""The schedule: cron as crontab reads it, time zones across DST, catch-up after downtime, and the
`run` / `schedule` commands.

Catch-up uses a controlled clock: the job store in the database is given a job whose next run
time lies a chosen distance in the past (as after a machine was off), then a scheduler starts
on that database and we watch what it runs.
"""

from __future__ import annotations

import pickle
import signal
import threading
import time
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from apscheduler.events import EVENT_JOB_EXECUTED, EVENT_JOB_MISSED
from sqlalchemy import text

from innoverheid import jobs
from innoverheid.config import Config, load_config, parse_config
from innoverheid.errors import ConfigError
from scheduler import JOBS_TABLE, build_scheduler, cron_trigger, stored_next_runs
from storage import open_database
from test_signals import Proc, table, write_config

AMS = ZoneInfo("Europe/Amsterdam")
UTC = timezone.utc


def fires(expr: str, start: datetime, n: int) -> list[datetime]:
    trigger = cron_trigger(expr, AMS)
    out, prev, now = [], None, start
    for _ in range(n):
        prev = trigger.get_next_fire_time(prev, now)
        out.append(prev)
        now = prev
    return out


# ------------------------------------------------------------------ cron parsing


@pytest.mark.parametrize("expr, days", [
    ("0 8 * * 1", ["Mon"]),
    ("0 8 * * 0", ["Sun"]),
    ("0 8 * * 7", ["Sun"]),
    ("0 8 * * 1-5", ["Mon", "Tue", "Wed", "Thu", "Fri"]),
    ("0 8 * * 5-7", ["Fri", "Sat", "Sun"]),
    ("0 8 * * sat,sun", ["Sat", "Sun"]),
    ("0 8 * * */2", ["Sun", "Tue", "Thu", "Sat"]),
])
def test_weekdays_are_read_as_crontab_reads_them(expr, days):
    # APScheduler 3's own from_crontab counts 0 as Monday; a weekly digest on "1" must be Monday.
    week = fires(expr, datetime(2025, 3, 2, 12, tzinfo=AMS), 14)  # from Sunday noon, two weeks
    assert sorted({f.strftime("%a") for f in week}, key=["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"].index) \
        == sorted(days, key=["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"].index)
    assert all((f.hour, f.minute) == (8, 0) for f in week)


def test_macros_and_minutes():
    assert [f.strftime("%H:%M") for f in fires("*/20 9 * * *", datetime(2025, 3, 3, 8, tzinfo=AMS), 3)] == \
        ["09:00", "09:20", "09:40"]
    assert fires("@weekly", datetime(2025, 3, 3, tzinfo=AMS), 1)[0].strftime("%a %H:%M") == "Sun 00:00"


@pytest.mark.parametrize("cron, says", [
    ("0 3 * *", "five"),
    ("61 3 * * *", "not a valid cron"),
    ("0 3 * * 8", "day of week"),
    ("0 8 1 * 1", "EITHER"),
])
def test_a_bad_cron_is_a_config_error_naming_the_key_and_the_fix(cron, says):
    with pytest.raises(ConfigError) as err:
        parse_config(f'schedule:\n  nightly: "{cron}"\n', "config.yaml")
    msg = str(err.value)
    assert "schedule.nightly" in msg and "line 2" in msg and says in msg and "0 3 * * *" in msg


def test_a_bad_cron_in_a_further_job_stops_the_cli_with_status_2(workdir, run_cli):
    (workdir / "config.yaml").write_text('schedule:\n  jobs:\n    weekly: {cron: "0 8 * * mon-", steps: [digest]}\n')
    result = run_cli("run")
    assert result.exit_code == 2 and "schedule.jobs.weekly.cron" in result.stderr
    assert "Traceback" not in result.stderr


# ------------------------------------------------------------------ time zones and DST


def test_the_nightly_run_stays_at_3_local_across_both_dst_changes():
    spring = fires("0 3 * * *", datetime(2025, 3, 28, 12, tzinfo=AMS), 4)
    assert [f.astimezone(UTC).strftime("%m-%d %H:%M") for f in spring] == \
        ["03-29 02:00", "03-30 01:00", "03-31 01:00", "04-01 01:00"]
    autumn = fires("0 3 * * *", datetime(2025, 10, 24, 12, tzinfo=AMS), 4)
    assert [f.astimezone(UTC).strftime("%m-%d %H:%M") for f in autumn] == \
        ["10-25 01:00", "10-26 02:00", "10-27 02:00", "10-28 02:00"]
    assert all(f.astimezone(AMS).hour == 3 for f in spring + autumn)


def test_a_job_in_the_repeated_hour_runs_once_when_the_clocks_go_back():
    autumn = fires("30 2 * * *", datetime(2025, 10, 25, 12, tzinfo=AMS), 3)
    assert [f.astimezone(UTC).strftime("%m-%d %H:%M") for f in autumn] == ["10-26 00:30", "10-27 01:30",
                                                                           "10-28 01:30"]
    # In spring 02:30 does not exist: the run happens once, an hour later on the clock.
    spring = fires("30 2 * * *", datetime(2025, 3, 29, 12, tzinfo=AMS), 2)
    assert [f.astimezone(UTC).strftime("%m-%d %H:%M") for f in spring] == ["03-30 01:30", "03-31 00:30"]
    # A job with a wildcard hour keeps running through the repeated hour.
    every = fires("0 * * * *", datetime(2025, 10, 26, 1, 30, tzinfo=AMS), 3)
    assert [f.astimezone(UTC).strftime("%H:%M") for f in every] == ["00:00", "01:00", "02:00"]


# ------------------------------------------------------------------ catch-up with a controlled clock


def _config(db_url: str, cron: str, grace_minutes: int, **jobs_) -> Config:
    return Config.model_validate({"database": db_url, "schedule": {
        "timezone": "Europe/Amsterdam", "nightly": cron, "misfire_grace_minutes": grace_minutes, "jobs": jobs_}})


def _leave_missed_run(cfg: Config, db, due: datetime) -> None:
    """What a scheduler leaves in the store when the machine goes off before `due`: the controlled clock."""
    s = build_scheduler(cfg, db, runner=lambda name: None)
    s.start(paused=True)  # stores the jobs, runs nothing
    s.shutdown()
    with db.write() as conn:
        stored = conn.execute(text(f"SELECT job_state FROM {JOBS_TABLE} WHERE id = 'nightly'")).scalar_one()
        state = pickle.loads(stored)
        state["next_run_time"] = due
        conn.execute(text(f"UPDATE {JOBS_TABLE} SET job_state = :s, next_run_time = :t WHERE id = 'nightly'"),
                     {"s": pickle.dumps(state), "t": due.timestamp()})


def _come_back(cfg: Config, db, settle: float = 0.3) -> tuple[list[str], list[int]]:
    calls: list[str] = []
    events: list[int] = []
    done = threading.Event()
    s = build_scheduler(cfg, db, runner=calls.append)
    s.add_listener(lambda e: (events.append(e.code), done.set()), EVENT_JOB_EXECUTED | EVENT_JOB_MISSED)
    s.start()
    assert done.wait(5), "the scheduler neither ran nor skipped the missed run"
    time.sleep(settle)  # time for a second run, were one to come
    s.shutdown()
    return calls, events


def _minute_ago(minutes: int) -> datetime:
    return datetime.now(AMS).replace(second=0, microsecond=0) - timedelta(minutes=minutes)


@pytest.mark.parametrize("days_missed", [0, 3])
def test_a_run_missed_within_the_grace_time_runs_once(db_url, days_missed):
    due = _minute_ago(30)  # the nightly time was half an hour ago; grace is an hour
    cfg = _config(db_url, f"{due.minute} {due.hour} * * *", 60)
    db = open_database(db_url)
    # With days_missed=3 the machine was off for three more nights: four missed runs, coalesced.
    _leave_missed_run(cfg, db, due - timedelta(days=days_missed))
    calls, events = _come_back(cfg, db)
    assert calls == ["nightly"] and events == [EVENT_JOB_EXECUTED]
    assert stored_next_runs(db)["nightly"] == (due + timedelta(days=1)).astimezone(UTC)
    db.dispose()


def test_a_run_missed_beyond_the_grace_time_is_skipped_and_recorded(db_url):
    due = _minute_ago(180)
    cfg = _config(db_url, f"{due.minute} {due.hour} * * *", 60)
    db = open_database(db_url)
    _leave_missed_run(cfg, db, due)
    calls, events = _come_back(cfg, db)
    assert calls == [] and events == [EVENT_JOB_MISSED]
    (run,) = table(db_url, "job_runs")
    assert run["outcome"] == "skipped" and "missed" in run["error"] and "misfire_grace_minutes" in run["error"]
    assert stored_next_runs(db)["nightly"] > datetime.now(UTC)
    db.dispose()


def test_config_changes_replace_the_stored_jobs(db_url):
    db = open_database(db_url)
    first = _config(db_url, "0 3 * * *", 60, weekly={"cron": "0 8 * * 1", "steps": ["digest"]})
    s = build_scheduler(first, db, runner=lambda name: None)
    s.start(paused=True)
    s.shutdown()
    assert set(stored_next_runs(db)) == {"nightly", "weekly"}
    second = _config(db_url, "15 4 * * *", 60)
    s = build_scheduler(second, db, runner=lambda name: None)
    s.start(paused=True)
    s.shutdown()
    stored = stored_next_runs(db)
    assert set(stored) == {"nightly"}
    assert stored["nightly"].astimezone(AMS).strftime("%H:%M") == "04:15"
    db.dispose()


# ------------------------------------------------------------------ the commands


def test_run_rejects_unknown_steps_and_jobs(workdir, run_cli):
    assert run_cli("run", "--steps", "harvest,dance").exit_code == 2
    result = run_cli("run", "--job", "weekly")
    assert result.exit_code == 2 and "nightly" in result.stderr


def test_run_reports_a_failed_step_and_exits_1(workdir, run_cli, monkeypatch):
    # A step function replaced by the test: the digest step fails, harvest (no sources) is fine.
    def broken_digest(ctx):
        raise RuntimeError("the template folder is missing")

    monkeypatch.setitem(jobs.STEPS, "digest", broken_digest)
    (workdir / "config.yaml").write_text("sources: {bluesky: {enabled: false}, mastodon: {enabled: false}}\n")
    result = run_cli("run", "--steps", "harvest,digest")
    assert result.exit_code == 1
    assert "nightly: partial" in result.stdout and "template folder is missing" in result.stdout
    status = run_cli("status")
    assert "nightly: partial" in status.stdout and "steps: harvest ok, digest failed" in status.stdout


def test_a_stage_that_cannot_be_loaded_fails_only_its_step_with_a_clear_error(workdir, db_url, run_cli,
                                                                               monkeypatch):
    # The classify step pointed at a module that is not installed; the other steps still run.
    monkeypatch.setitem(jobs.STEPS, "classify",
                        lambda ctx: jobs._stage("classify.not_installed", "classify_posts", "classify")(ctx))
    monkeypatch.setitem(jobs.STEPS, "digest", lambda ctx: jobs.StepResult("digest", detail={"n_posts": 0}))
    (workdir / "config.yaml").write_text("sources: {bluesky: {enabled: false}, mastodon: {enabled: false}}\n")
    result = run_cli("run")
    assert result.exit_code == 1
    assert "classify: failed: the classify step cannot run: classify.not_installed.classify_posts cannot be " \
           "loaded" in result.stdout
    assert "digest: ok (n_posts 0)" in result.stdout
    (run,) = table(db_url, "job_runs")
    assert run["outcome"] == "partial" and "classify.not_installed" in run["error"]
    assert run["counts"]["steps"] == {"harvest": "ok", "deletion_check": "ok", "retention": "ok",
                                      "classify": "failed", "digest": "ok"}


def test_status_shows_a_pending_catch_up(workdir, db_url, run_cli):
    cfg = _config(db_url, "0 3 * * *", 60)
    db = open_database(db_url)
    recent = _minute_ago(10)
    _leave_missed_run(cfg, db, recent)
    out = run_cli("status").stdout
    assert "nightly (0 3 * * *)" in out and f"a run missed at {recent.isoformat()} is caught up" in out
    _leave_missed_run(cfg, db, datetime(2025, 3, 3, 3, 0, tzinfo=AMS))
    db.dispose()
    out = run_cli("status").stdout
    assert "the run due at 2025-03-03T03:00:00+01:00 was missed by more than schedule.misfire_grace_minutes" in out


def test_the_schedule_command_catches_up_then_stops_cleanly_on_sigterm(tmp_path):
    due = _minute_ago(20)
    url = f"sqlite:///{tmp_path / 'ops.db'}"
    write_config(tmp_path, url, misfire_grace_minutes=60,
                 jobs=f'{{nightly: {{cron: "{due.minute} {due.hour} * * *", steps: [harvest]}}}}')
    cfg = load_config(tmp_path / "config.yaml")
    db = open_database(url)
    _leave_missed_run(cfg, db, due)
    db.dispose()

    proc = Proc(tmp_path, "schedule", hold_at=1)
    proc.wait_for("scheduler started")
    proc.wait_for("fetching page 1")  # the caught-up run is harvesting
    proc.p.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    (tmp_path / "gate").touch()
    code, out, err = proc.finish()
    assert code == 0, err
    assert "scheduler stopped by signal" in err and "Traceback" not in err
    (run,) = table(url, "job_runs")
    assert run["outcome"] == "interrupted"
    assert len(table(url, "posts")) == 6  # the page in progress (1) was committed
