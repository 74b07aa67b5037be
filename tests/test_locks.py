"""One run at a time: two real `innoverheid run` processes on one database.

The processes are the helper in test_signals.py (the real CLI with a slow fake platform that
holds a page until the test opens a gate), so the first one demonstrably holds the lock while
the second starts. SQLite uses a lease row; PostgreSQL (INNOVERHEID_TEST_PG_URL) an advisory lock.
"""

from __future__ import annotations

import os
import signal
import socket
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from innoverheid.locks import AdvisoryLock, LeaseLock, Owner, holders
from storage import open_database
from test_signals import Proc, run_helper, table, write_config


def _sql(url: str, statement: str, **params) -> None:
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text(statement), params)
    engine.dispose()


def _kill(proc: Proc) -> None:
    proc.p.send_signal(signal.SIGKILL)
    proc.p.wait(timeout=10)


@pytest.fixture
def sqlite_folder(tmp_path) -> tuple[Path, str]:
    url = f"sqlite:///{tmp_path / 'ops.db'}"
    write_config(tmp_path, url)
    return tmp_path, url


def test_the_second_process_skips_and_records_it(sqlite_folder):
    folder, url = sqlite_folder
    first = Proc(folder, "run", "--steps", "harvest", hold_at=1)
    first.wait_for("fetching page 1")  # the first run holds the lock, in the middle of its harvest

    second, status = Proc(folder, "run", "--steps", "harvest"), Proc(folder, "status")
    code, out, err = second.finish()
    assert code == 0, err
    assert "skipped" in out and "another run of 'nightly' is in progress" in out
    assert f"{socket.gethostname()}:{first.p.pid}" in out  # says who holds it
    assert "resuming from page" not in out  # it did not harvest
    code, out, err = status.finish()
    assert code == 0 and "running now (lock held)" in out and f":{first.p.pid}:" in out

    (folder / "gate").touch()
    code, out, err = first.finish()
    assert code == 0, err
    runs = table(url, "job_runs")
    assert sorted(r["outcome"] for r in runs) == ["ok", "skipped"]
    skipped = next(r for r in runs if r["outcome"] == "skipped")
    assert skipped["job"] == "nightly" and skipped["finished_at"] is not None
    assert len(table(url, "posts")) == 15  # only the first process harvested
    assert not table(url, "leases")


def test_a_lease_left_by_a_killed_process_on_this_machine_is_taken_over_at_once(sqlite_folder):
    folder, url = sqlite_folder
    first = Proc(folder, "run", "--steps", "harvest", hold_at=1)
    first.wait_for("fetching page 1")
    _kill(first)
    assert len(table(url, "leases")) == 1  # left behind, far from expiry (lock_ttl_minutes: 240)

    code, out, err = run_helper(folder, "run", "--steps", "harvest")
    assert code == 0, err
    assert "resuming from page 1" in out  # page 0 of the killed run was safe
    assert "taking over" in err and "no longer exists" in err
    runs = table(url, "job_runs")
    assert [r["outcome"] for r in runs] == ["interrupted", "ok"]
    assert len(table(url, "posts")) == 15


def test_a_lease_from_another_machine_blocks_until_it_expires(sqlite_folder):
    folder, url = sqlite_folder
    first = Proc(folder, "run", "--steps", "harvest", hold_at=1)
    first.wait_for("fetching page 1")
    _kill(first)
    # Pretend the killed process ran on another machine: we cannot see whether it lives.
    _sql(url, "UPDATE leases SET owner = :o", o="elsewhere:4242:0123abcd")

    code, out, err = run_helper(folder, "run", "--steps", "harvest")
    assert code == 0 and "skipped" in out and "elsewhere:4242" in out

    # The controlled clock: the lease's expiry passes (it is not renewed by a dead process).
    _sql(url, "UPDATE leases SET expires_at = :t",
         t=(datetime.now(timezone.utc) - timedelta(minutes=1)).replace(tzinfo=None))
    code, out, err = run_helper(folder, "run", "--steps", "harvest")
    assert code == 0, err
    assert "resuming from page 1" in out and "its lease expired" in err
    assert [r["outcome"] for r in table(url, "job_runs")] == ["interrupted", "skipped", "ok"]


def test_a_running_lease_is_renewed_and_released(tmp_path):
    db = open_database(f"sqlite:///{tmp_path / 'l.db'}")
    lock = LeaseLock(db, "job:nightly", timedelta(seconds=0.9))  # renewed every 0.3 s
    assert lock.acquire()
    first = table(db.url, "leases")[0]["expires_at"]
    other = LeaseLock(db, "job:nightly", timedelta(seconds=0.9))
    other.owner = Owner("elsewhere", 1, "x")
    assert not other.acquire()
    time.sleep(1.2)  # longer than the TTL: only renewal keeps it
    assert table(db.url, "leases")[0]["expires_at"] > first
    assert not other.acquire()
    assert [h.owner for h in holders(db, ["nightly"])] == [str(lock.owner)]
    lock.release()
    assert other.acquire()
    other.release()
    db.dispose()


# ------------------------------------------------------------------ PostgreSQL: the advisory lock


@pytest.fixture
def pg_url(db_url) -> str:
    if not db_url.startswith("postgresql"):
        pytest.skip("set INNOVERHEID_TEST_PG_URL to run the PostgreSQL advisory-lock tests")
    return db_url


@pytest.mark.postgres
def test_pg_advisory_lock_one_holder_per_job(pg_url):
    db = open_database(pg_url)
    a, b = AdvisoryLock(db, "job:nightly", timedelta(minutes=5)), AdvisoryLock(db, "job:nightly", timedelta(minutes=5))
    other_job = AdvisoryLock(db, "job:weekly", timedelta(minutes=5))
    assert a.acquire()
    assert not b.acquire()  # another session, even in the same process
    assert other_job.acquire()
    (held,) = [h for h in holders(db, ["nightly"])]
    assert str(os.getpid()) in held.owner
    a.release()
    assert b.acquire()
    b.release()
    other_job.release()
    db.dispose()


@pytest.mark.postgres
def test_pg_two_processes_then_a_killed_holder_releases_at_once(tmp_path, pg_url):
    write_config(tmp_path, pg_url)
    first = Proc(tmp_path, "run", "--steps", "harvest", hold_at=1)
    first.wait_for("fetching page 1")

    code, out, err = run_helper(tmp_path, "run", "--steps", "harvest")
    assert code == 0 and "skipped" in out, err
    _kill(first)  # the server ends its session, and with it the advisory lock

    code, out, err = run_helper(tmp_path, "run", "--steps", "harvest")
    assert code == 0, err
    assert "resuming from page 1" in out
    assert [r["outcome"] for r in table(pg_url, "job_runs")] == ["interrupted", "skipped", "ok"]
