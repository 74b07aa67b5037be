"""One run of a job at a time, across processes and machines, through the database.

SQLite: a row in `leases` with an expiry, taken in a write transaction (BEGIN IMMEDIATE, so
two processes cannot both see it free) and renewed by a background thread while the job
runs. A lease whose holder died is taken over once it expires, or at once when the holder
ran on this machine and is gone (its process no longer exists, or the machine has rebooted
since), so a catch-up run after a crash is not blocked for `lock_ttl_minutes`.

PostgreSQL: `pg_try_advisory_lock` on a dedicated connection. The server drops the lock when
that connection ends, so a killed process releases it at once; a heartbeat notices a lost
connection.
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Protocol

from sqlalchemy import create_engine, delete, insert, select, text, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

from storage import Database, StorageError
from storage.models import Lease

log = logging.getLogger("innoverheid.lock")
leases_t = Lease.__table__
_APP_PREFIX = "innoverheid lock "


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()[:8]
    except OSError:
        return "-"


@dataclass(frozen=True)
class Owner:
    """Who holds a lock: host, process id and boot, so a dead holder on this machine is recognised."""

    host: str
    pid: int
    boot: str

    def __str__(self) -> str:
        return f"{self.host}:{self.pid}:{self.boot}"

    @classmethod
    def me(cls) -> Owner:
        return cls(socket.gethostname(), os.getpid(), _boot_id())

    @classmethod
    def parse(cls, value: str) -> Owner | None:
        host, _, rest = (value or "").rpartition(":")
        host, _, pid = host.rpartition(":")
        try:
            return cls(host, int(pid), rest)
        except ValueError:
            return None

    def is_dead(self) -> bool:
        """True only when we can tell for sure: same machine, and the process or its boot is gone."""
        me = Owner.me()
        if self.host != me.host or self.boot == "-" or me.boot == "-":
            return False
        if self.boot != me.boot:
            return True  # the machine rebooted since the holder started
        if self.pid == me.pid:
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False  # it exists, under another user
        return False


@dataclass
class Holder:
    """What `status` shows about a lock that is held."""

    name: str
    owner: str
    since: datetime | None
    expires: datetime | None = None


class JobLock(Protocol):
    name: str

    def acquire(self) -> bool: ...

    def release(self) -> None: ...

    def holder(self) -> Holder | None: ...


def _interval(ttl: timedelta) -> float:
    return max(0.2, min(ttl.total_seconds() / 3, 60.0))


class _Heartbeat:
    """A daemon thread calling `beat` every `interval` seconds until stopped."""

    def __init__(self, name: str, interval: float, beat):
        self._stop = threading.Event()
        self._beat, self._interval = beat, interval
        self._thread = threading.Thread(target=self._run, name=f"lock-heartbeat-{name}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                if self._beat() is False:
                    return
            except Exception:  # noqa: BLE001 - a heartbeat must never kill the job
                log.exception("lock heartbeat failed")

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=5)


class LeaseLock:
    """A lease row with an expiry (SQLite, or any database without advisory locks)."""

    def __init__(self, db: Database, name: str, ttl: timedelta):
        self.db, self.name, self.ttl = db, name, ttl
        self.owner = Owner.me()
        self.took_over: str | None = None
        self.lost = False
        self._heartbeat: _Heartbeat | None = None

    def acquire(self) -> bool:
        now = _utcnow()
        me = str(self.owner)
        with self.db.write() as conn:
            row = conn.execute(select(leases_t).where(leases_t.c.name == self.name)).first()
            values = {"owner": me, "acquired_at": now, "expires_at": now + self.ttl}
            if row is None:
                conn.execute(insert(leases_t).values(name=self.name, **values))
            elif row.owner == me or row.expires_at <= now or _dead(row.owner):
                if row.owner != me:
                    why = "its lease expired" if row.expires_at <= now else "that process no longer exists"
                    self.took_over = row.owner
                    log.warning("lock %s: taking over from %s: %s", self.name, row.owner, why)
                conn.execute(update(leases_t).where(leases_t.c.name == self.name).values(**values))
            else:
                return False
        self._heartbeat = _Heartbeat(self.name, _interval(self.ttl), self.renew)
        return True

    def renew(self) -> bool:
        """Push the expiry forward; False (and `lost`) when someone else has the lease now."""
        with self.db.write() as conn:
            n = conn.execute(update(leases_t).where(leases_t.c.name == self.name,
                                                    leases_t.c.owner == str(self.owner))
                             .values(expires_at=_utcnow() + self.ttl)).rowcount
        if not n:
            self.lost = True
            log.error("lock %s: the lease was taken by another process while this run was going on "
                      "(the machine may have been suspended for longer than schedule.lock_ttl_minutes)", self.name)
        return bool(n)

    def release(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.stop()
            self._heartbeat = None
        with self.db.write() as conn:
            conn.execute(delete(leases_t).where(leases_t.c.name == self.name, leases_t.c.owner == str(self.owner)))

    def holder(self) -> Holder | None:
        return lease_holder(self.db, self.name)


def _dead(owner: str) -> bool:
    parsed = Owner.parse(owner)
    return parsed is not None and parsed.is_dead()


def lease_holder(db: Database, name: str) -> Holder | None:
    with db.read() as conn:
        row = conn.execute(select(leases_t).where(leases_t.c.name == name)).first()
    if row is None or row.expires_at <= _utcnow() or _dead(row.owner):
        return None
    return Holder(name, row.owner, row.acquired_at, row.expires_at)


def advisory_key(name: str) -> int:
    """A stable signed 64-bit key for pg_advisory_lock, from the lock's name."""
    digest = hashlib.sha256(f"innoverheid:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


_PG_HOLDER = text(
    "SELECT a.application_name, a.client_addr, a.backend_start FROM pg_locks l "
    "JOIN pg_stat_activity a ON a.pid = l.pid "
    "WHERE l.locktype = 'advisory' AND l.granted AND l.classid = :hi AND l.objid = :lo AND l.objsubid = 1"
)


class AdvisoryLock:
    """pg_try_advisory_lock held on its own connection for as long as the job runs."""

    def __init__(self, db: Database, name: str, ttl: timedelta):
        self.db, self.name, self.ttl = db, name, ttl
        self.owner = Owner.me()
        self.key = advisory_key(name)
        self.took_over: str | None = None
        self.lost = False
        self._conn = None
        self._engine = None
        self._guard = threading.Lock()
        self._heartbeat: _Heartbeat | None = None

    def acquire(self) -> bool:
        app_name = f"{_APP_PREFIX}{self.name} {self.owner.host}:{self.owner.pid}"[:63]
        # NullPool: closing the connection ends the session, and with it the lock.
        self._engine = create_engine(self.db.url, poolclass=NullPool, isolation_level="AUTOCOMMIT",
                                     connect_args={"application_name": app_name, "keepalives": 1,
                                                   "keepalives_idle": 30, "keepalives_interval": 10,
                                                   "keepalives_count": 3})
        try:
            conn = self._engine.connect()
            got = conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": self.key}).scalar_one()
        except SQLAlchemyError as exc:
            self._engine.dispose()
            safe = make_url(self.db.url).render_as_string(hide_password=True)
            raise StorageError(f"cannot take the lock for {self.name} in {safe}: {exc.__class__.__name__}; "
                               "check that the database server is running and reachable") from None
        if not got:
            conn.close()
            self._engine.dispose()
            return False
        self._conn = conn
        self._heartbeat = _Heartbeat(self.name, _interval(self.ttl), self._ping)
        return True

    def _ping(self) -> bool:
        with self._guard:
            if self._conn is None:
                return False
            try:
                self._conn.execute(text("SELECT 1"))
                return True
            except Exception:  # noqa: BLE001 - any failure means the session (and lock) may be gone
                self.lost = True
                log.error("lock %s: lost the database connection that held the advisory lock; another "
                          "process may start this job now", self.name)
                return False

    def release(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.stop()
            self._heartbeat = None
        with self._guard:
            if self._conn is not None:
                try:
                    self._conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": self.key})
                except Exception:  # noqa: BLE001 - closing the session releases it anyway
                    log.warning("lock %s: unlock failed; closing the connection releases it", self.name)
                finally:
                    self._conn.close()
                    self._conn = None
            if self._engine is not None:
                self._engine.dispose()
                self._engine = None

    def holder(self) -> Holder | None:
        return advisory_holder(self.db, self.name)


def advisory_holder(db: Database, name: str) -> Holder | None:
    unsigned = advisory_key(name) & 0xFFFFFFFFFFFFFFFF
    with db.read() as conn:
        row = conn.execute(_PG_HOLDER, {"hi": unsigned >> 32, "lo": unsigned & 0xFFFFFFFF}).first()
    if row is None:
        return None
    who = (row.application_name or "").removeprefix(_APP_PREFIX).removeprefix(name).strip()
    where = who or (f"a session from {row.client_addr}" if row.client_addr else "another session")
    return Holder(name, where, row.backend_start)


def job_lock(db: Database, job: str, ttl: timedelta) -> LeaseLock | AdvisoryLock:
    """The lock for one job: an advisory lock on PostgreSQL, a lease elsewhere."""
    name = f"job:{job}"
    return AdvisoryLock(db, name, ttl) if db.dialect == "postgresql" else LeaseLock(db, name, ttl)


def holders(db: Database, jobs: list[str]) -> list[Holder]:
    """The locks currently held, for `status`."""
    out = []
    for job in jobs:
        name = f"job:{job}"
        h = advisory_holder(db, name) if db.dialect == "postgresql" else lease_holder(db, name)
        if h is not None:
            out.append(h)
    return out
