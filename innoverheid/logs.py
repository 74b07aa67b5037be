"""Logging: quiet by default, JSON on request, rotating files, and secrets masked as a last guard.

Code never logs a secret on purpose; the redacting filter is defence in depth: any value of a
known secret environment variable that slips into a record is replaced before it is written.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import os
import sys
from datetime import datetime, timezone

SECRET_ENV_HINTS = ("PASSWORD", "TOKEN", "SECRET", "KEY", "BEARER")
_state = {"handlers": []}


def secret_values(env: dict[str, str] | None = None) -> list[str]:
    env = dict(os.environ) if env is None else env
    return sorted({v for k, v in env.items() if v and len(v) >= 6 and any(h in k.upper() for h in SECRET_ENV_HINTS)},
                  key=len, reverse=True)


def redact(text: str, secrets: list[str] | None = None) -> str:
    for value in secret_values() if secrets is None else secrets:
        if value in text:
            text = text.replace(value, "***")
    return text


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        secrets = secret_values()
        if secrets:
            msg = record.getMessage()
            clean = redact(msg, secrets)
            if clean != msg or record.args:
                record.msg, record.args = clean, None
            if record.exc_info and record.exc_info[1] is not None:
                record.exc_text = redact(logging.Formatter().formatException(record.exc_info), secrets)
                record.exc_info = None
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_text:
            out["exception"] = record.exc_text
        return json.dumps(out, ensure_ascii=False)


def _level(verbose: int) -> int:
    return logging.DEBUG if verbose >= 2 else logging.INFO if verbose == 1 else logging.WARNING


def setup_logging(verbose: int = 0, file: str | None = None, fmt: str = "text",
                  max_bytes: int = 10_000_000, backups: int = 5, file_level: str = "INFO") -> None:
    root = logging.getLogger("innoverheid")
    for h in _state["handlers"]:
        root.removeHandler(h)
    _state["handlers"] = []
    formatter: logging.Formatter = JsonFormatter() if fmt == "json" else logging.Formatter(
        "%(asctime)s %(levelname)s %(name)s: %(message)s")
    console = logging.StreamHandler(sys.stderr)
    console.setLevel(_level(verbose))
    console.setFormatter(formatter if fmt == "json" else logging.Formatter("%(levelname)s: %(message)s"))
    console.addFilter(RedactingFilter())
    handlers: list[logging.Handler] = [console]
    if file:
        fh = logging.handlers.RotatingFileHandler(file, maxBytes=max_bytes, backupCount=backups, encoding="utf-8")
        fh.setLevel(getattr(logging, file_level))
        fh.setFormatter(formatter)
        fh.addFilter(RedactingFilter())
        handlers.append(fh)
    for h in handlers:
        root.addHandler(h)
    root.setLevel(min(h.level for h in handlers))
    # Propagation stays on: pytest's caplog and embedding applications see our records too.
    _state["handlers"] = handlers
    _state["verbose"] = verbose


def apply_config(logging_cfg) -> None:
    """Called once the config is loaded: adds the log file and format it asks for."""
    if logging_cfg.file or logging_cfg.format != "text":
        setup_logging(_state.get("verbose", 0), logging_cfg.file, logging_cfg.format,
                      logging_cfg.max_bytes, logging_cfg.backups, logging_cfg.level)
