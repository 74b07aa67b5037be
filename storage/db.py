"""Opening the database: engine, SQLite pragmas, migrations applied on first use.

SQLite is the embedded default (WAL so readers never block the nightly writer, foreign keys,
a busy timeout so a locked file is waited for rather than failed on). PostgreSQL goes through
the same code with a postgresql+psycopg:// URL.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, create_engine, event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from storage.errors import StorageError

MIGRATIONS = Path(__file__).parent / "migrations"
BUSY_TIMEOUT_MS = 60_000
_migrated: set[str] = set()
_migrate_lock = threading.Lock()


def normalise_url(url: str) -> str:
    # Plain postgresql:// would pick psycopg2, which we do not ship; psycopg 3 is the driver.
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def _sqlite_path(url: str) -> Path | None:
    u = make_url(url)
    if u.get_backend_name() != "sqlite" or not u.database or u.database == ":memory:":
        return None
    return Path(u.database)


def _install_sqlite_hooks(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):
        # Take transaction control from pysqlite so BEGIN IMMEDIATE works (SQLAlchemy's recipe).
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA journal_mode = WAL")
        cur.execute("PRAGMA foreign_keys = ON")
        cur.execute("PRAGMA synchronous = NORMAL")
        # Erased posts (forget, retention) are overwritten, not left readable in free pages; many
        # builds (Debian's) default to this, SQLite itself does not.
        cur.execute("PRAGMA secure_delete = ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):
        # Writers take the lock up front: a deferred transaction that later upgrades to a write
        # can fail at once with SQLITE_BUSY instead of waiting for the busy timeout.
        if conn.get_execution_options().get("immediate"):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql("BEGIN")


class Database:
    """One database: an engine plus the helpers every stage uses."""

    def __init__(self, url: str, *, migrate: bool = True, echo: bool = False):
        self.url = normalise_url(url)
        path = _sqlite_path(self.url)
        if path is not None and not path.parent.exists():
            raise StorageError(
                f"cannot open the database {path}: the folder {path.parent} does not exist; "
                "create it or change 'database' in config.yaml"
            )
        try:
            kwargs: dict = {"echo": echo, "future": True}
            if self.url.startswith("sqlite"):
                kwargs["connect_args"] = {"timeout": BUSY_TIMEOUT_MS / 1000, "check_same_thread": False}
            else:
                kwargs["pool_pre_ping"] = True
            self.engine = create_engine(self.url, **kwargs)
        except (SQLAlchemyError, ImportError, ValueError) as exc:
            raise StorageError(f"cannot use the database URL: {exc.__class__.__name__}: {exc}") from None
        self.dialect = self.engine.dialect.name
        if self.dialect == "sqlite":
            _install_sqlite_hooks(self.engine)
        if migrate:
            self.migrate()

    # --------------------------------------------------------------- connections
    @contextlib.contextmanager
    def write(self) -> Iterator[Connection]:
        """A write transaction: committed on success, rolled back on any error."""
        try:
            with self.engine.connect().execution_options(immediate=True) as conn:
                with conn.begin():
                    yield conn
        except OperationalError as exc:
            raise _friendly(exc, self.url) from exc

    @contextlib.contextmanager
    def read(self) -> Iterator[Connection]:
        try:
            with self.engine.connect() as conn:
                with conn.begin():
                    yield conn
        except OperationalError as exc:
            raise _friendly(exc, self.url) from exc

    # --------------------------------------------------------------- migrations
    def _alembic_config(self, conn: Connection) -> AlembicConfig:
        cfg = AlembicConfig()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        cfg.attributes["connection"] = conn
        return cfg

    def current_revision(self) -> str | None:
        with self.engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()

    def head_revision(self) -> str | None:
        cfg = AlembicConfig()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        return ScriptDirectory.from_config(cfg).get_current_head()

    def migrate(self) -> None:
        """Bring the schema up to date; cheap when it already is (checked once per process)."""
        with _migrate_lock:
            if self.url in _migrated:
                return
            try:
                if self.current_revision() != self.head_revision():
                    with self.engine.connect().execution_options(immediate=True) as conn:
                        with conn.begin():
                            command.upgrade(self._alembic_config(conn), "head")
            except OperationalError as exc:
                raise _friendly(exc, self.url) from exc
            _migrated.add(self.url)

    def dispose(self) -> None:
        self.engine.dispose()


def _friendly(exc: OperationalError, url: str) -> StorageError:
    msg = str(exc.orig) if exc.orig is not None else str(exc)
    safe_url = make_url(url).render_as_string(hide_password=True)
    if "locked" in msg or "busy" in msg:
        return StorageError(
            f"the database {safe_url} stayed locked by another process for {BUSY_TIMEOUT_MS // 1000} s; "
            "nothing was lost: wait for the other innoverheid process to finish and run again"
        )
    if "unable to open" in msg:
        return StorageError(f"cannot open the database {safe_url}: check the path and its permissions")
    return StorageError(f"database error on {safe_url}: {msg.splitlines()[0] if msg else exc}")


def open_database(url: str, **kwargs) -> Database:
    return Database(url, **kwargs)
