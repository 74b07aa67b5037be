"""The application shell's shared state: the config and database, loaded once per invocation."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import typer

from innoverheid.config import Config, load_config


@dataclass
class AppState:
    config_path: str | None = None
    debug: bool = False
    verbose: int = 0
    _cfg: Config | None = field(default=None, repr=False)
    _db: object | None = field(default=None, repr=False)

    @property
    def cfg(self) -> Config:
        if self._cfg is None:
            self._cfg = load_config(self.config_path)
            from innoverheid.logs import apply_config

            apply_config(self._cfg.logging)
        return self._cfg

    @property
    def db(self):
        if self._db is None:
            from storage import open_database

            self._db = open_database(database_url(self.cfg))
        return self._db

    def close(self) -> None:
        if self._db is not None:
            self._db.dispose()
            self._db = None


def database_url(cfg: Config) -> str:
    """Relative SQLite paths resolve next to the config file, so cron jobs find the same database."""
    url = cfg.database
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith("sqlite:////") and url != "sqlite:///:memory:":
        rel = url[len(prefix):]
        if rel and not Path(rel).is_absolute():
            return prefix + str((Path(cfg.base_dir) / rel).resolve())
    return url


def state(ctx: typer.Context) -> AppState:
    root = ctx.find_root()
    if not isinstance(root.obj, AppState):
        root.obj = AppState()
    return root.obj
