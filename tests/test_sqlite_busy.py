"""A locked SQLite database is waited for, not failed on (issue 7, point 1).

Another process holds the write lock (BEGIN IMMEDIATE) for a moment while an import or a
harvest page is written: the write waits (busy_timeout) and succeeds, and what the other
process wrote is kept too. Readers are never blocked (WAL). Only a lock held longer than the
busy timeout ends in one clear message, with nothing half written.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from harvester.retry import RetryPolicy
from innoverheid.config import Config
from innoverheid.pipeline import run_harvest
from innoverheid.sandbox.sample import SamplePost
from innoverheid.sandbox.x import XServer
from storage import StorageError, open_database
from storage import db as storage_db
from storage.models import AuditEntry, Post as PostRow

HOLD = 1.5  # seconds the other process keeps the write lock

LOCKER = textwrap.dedent("""
    import sqlite3, sys, time
    con = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
    con.execute("BEGIN IMMEDIATE")
    con.execute("INSERT INTO audit_log (at, action, reason, n_posts, n_labels, n_sightings) "
                "VALUES ('2025-01-01 00:00:00', 'other_process', 'held the write lock', 0, 0, 0)")
    print("locked", flush=True)
    time.sleep(float(sys.argv[2]))
    con.execute("COMMIT")
    print("released", time.time(), flush=True)
""")


class Locker:
    """Another process holding SQLite's write lock on `path` for `hold` seconds."""

    def __init__(self, path: Path, hold: float = HOLD):
        self.proc = subprocess.Popen([sys.executable, "-c", LOCKER, str(path), str(hold)],
                                     stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout.readline().strip() == "locked"
        self.locked_at = time.time()

    def released_at(self) -> float:
        out, _ = self.proc.communicate(timeout=30)
        assert self.proc.returncode == 0, out
        return float(out.split()[-1])


@pytest.fixture
def sqlite_file(tmp_path) -> Path:
    path = tmp_path / "busy.db"
    open_database(f"sqlite:///{path}").dispose()  # migrated before anyone locks it
    return path


def other_process_rows(db) -> int:
    with db.read() as conn:
        return conn.execute(select(func.count()).select_from(AuditEntry).where(
            AuditEntry.action == "other_process")).scalar_one()


def post_count(db) -> int:
    with db.read() as conn:
        return conn.execute(select(func.count()).select_from(PostRow)).scalar_one()


def test_the_database_runs_in_wal_mode_with_a_busy_timeout(sqlite_file):
    db = open_database(f"sqlite:///{sqlite_file}")
    try:
        with db.read() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 10_000
    finally:
        db.dispose()


def test_import_waits_for_another_process_holding_the_write_lock(sqlite_file, workdir, tmp_path, monkeypatch,
                                                                run_cli):
    monkeypatch.setenv("INNOVERHEID_DATABASE_URL", f"sqlite:///{sqlite_file}")
    ideas = tmp_path / "ideas.jsonl"
    ideas.write_text("".join(f'{{"id": "i{i}", "text": "Idee {i} #innoverheid"}}\n' for i in range(50)))

    locker = Locker(sqlite_file)
    # Readers are not blocked by a writer (WAL): status answers at once.
    started = time.time()
    status = run_cli("status")
    assert status.exit_code == 0 and time.time() - started < HOLD - 0.3
    result = run_cli("import", str(ideas))
    done = time.time()
    released = locker.released_at()

    assert result.exit_code == 0, result.output
    assert "imported 50" in result.stdout and result.stderr == ""
    assert done >= released  # it waited for the lock instead of failing
    db = open_database(f"sqlite:///{sqlite_file}")
    try:
        assert post_count(db) == 50 and other_process_rows(db) == 1
    finally:
        db.dispose()


def test_a_harvest_page_waits_for_the_lock_and_the_run_completes(sqlite_file, tmp_path):
    """The other process takes the lock between two pages; the next page's commit waits for it."""
    t0 = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
    posts = [SamplePost(id=f"p{i}", text=f"Idee {i} #innoverheid", author=f"u{i % 3}", author_name="U",
                        created_at=t0 + i * timedelta(minutes=2)) for i in range(30)]
    db = open_database(f"sqlite:///{sqlite_file}")
    pages: list[float] = []
    lockers: list[Locker] = []

    def on_page(label: str, n: int) -> None:
        pages.append(time.time())
        if len(pages) == 1:
            lockers.append(Locker(sqlite_file))

    try:
        with XServer(posts) as server:
            config: dict = {"harvest": {"timeout": 5, "state_dir": str(tmp_path / "state")}}
            env: dict[str, str] = {}
            server.configure(config, env)
            config["sources"]["x"]["page_size"] = 10
            report = run_harvest(Config.model_validate(config), db, ["x"], env=env, progress=on_page,
                                 policy=RetryPolicy(max_retries=0, sleep=lambda s: None))
        released = lockers[0].released_at()
        assert report.sources[0].status == "ok" and report.new == 30
        assert len(pages) == 3 and pages[1] >= released  # page two was committed only after the lock went
        assert post_count(db) == 30 and other_process_rows(db) == 1
        with db.read() as conn:
            assert conn.execute(text("select outcome from harvest_runs")).scalar_one() == "ok"
    finally:
        db.dispose()


def test_a_lock_held_past_the_busy_timeout_gives_one_clear_message(sqlite_file, workdir, tmp_path, monkeypatch,
                                                                   run_cli):
    monkeypatch.setattr(storage_db, "BUSY_TIMEOUT_MS", 300)  # instead of a minute
    monkeypatch.setenv("INNOVERHEID_DATABASE_URL", f"sqlite:///{sqlite_file}")
    ideas = tmp_path / "ideas.jsonl"
    ideas.write_text('{"text": "Idee #innoverheid"}\n')
    locker = Locker(sqlite_file)
    result = run_cli("import", str(ideas))
    locker.released_at()
    assert result.exit_code == 2
    assert "stayed locked by another process" in result.stderr and "run again" in result.stderr
    assert "Traceback" not in result.stderr and result.stderr.count("\n") == 1
    db = open_database(f"sqlite:///{sqlite_file}")
    try:
        assert post_count(db) == 0 and other_process_rows(db) == 1
    finally:
        db.dispose()


def test_the_storage_error_names_the_lock_not_a_driver_error(sqlite_file, monkeypatch):
    monkeypatch.setattr(storage_db, "BUSY_TIMEOUT_MS", 200)
    db = open_database(f"sqlite:///{sqlite_file}")
    locker = Locker(sqlite_file, hold=1.0)
    try:
        with pytest.raises(StorageError) as err:
            with db.write() as conn:
                conn.execute(text("delete from posts"))
        assert "locked" in str(err.value) and "OperationalError" not in str(err.value)
    finally:
        locker.released_at()
        db.dispose()
