"""Shared fixtures: a fresh database per test (SQLite file, or a real PostgreSQL database when
INNOVERHEID_TEST_PG_URL is set), a config, and the CLI runner."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

PG_URL = os.environ.get("INNOVERHEID_TEST_PG_URL")  # e.g. postgresql+psycopg://postgres@127.0.0.1:55432/postgres
REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
FIXTURES = SHARED / "fixtures" / "recorded"


@pytest.fixture
def db_url(tmp_path, request) -> str:
    """SQLite by default; PostgreSQL when INNOVERHEID_TEST_PG_URL is set (a throwaway database per test)."""
    if not PG_URL:
        yield f"sqlite:///{tmp_path / 'test.db'}"
        return
    name = "t_" + uuid.uuid4().hex[:12]
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    base = PG_URL.rsplit("/", 1)[0]
    yield f"{base}/{name}"
    from storage import db as storage_db

    storage_db._migrated.discard(f"{base}/{name}")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def db(db_url):
    from storage import open_database

    database = open_database(db_url)
    yield database
    database.dispose()


@pytest.fixture
def workdir(tmp_path, monkeypatch, db_url):
    """Run commands in a clean folder with the test database and no stray config or secrets."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("INNOVERHEID_CONFIG", raising=False)
    monkeypatch.setenv("INNOVERHEID_DATABASE_URL", db_url)
    for var in ("BSKY_HANDLE", "BSKY_APP_PASSWORD", "MASTODON_TOKEN", "X_BEARER_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    return tmp_path


@pytest.fixture
def run_cli():
    """Invoke the real CLI in-process; returns click's Result (exit_code, stdout, stderr)."""
    from typer.testing import CliRunner

    from innoverheid.cli import app

    runner = CliRunner()

    def _run(*args: str, input: str | None = None):
        return runner.invoke(app, list(args), input=input, catch_exceptions=False)

    return _run
