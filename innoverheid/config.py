"""Load config.yaml once into typed, validated objects.

Every problem in the file is collected and reported together (Singer SDK style), each naming
the key, the line where the YAML parser knows it, and the fix. Secrets never live here: the
file only names the environment variables that hold them.
"""

from __future__ import annotations

import os
import re
import zoneinfo
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from innoverheid.errors import ConfigError, Problem
from storage.labels import LABELS, THEMES

DEFAULT_CONFIG_NAME = "config.yaml"
LABELS_THEMES = THEMES
LABELS_ALL = LABELS

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


_SECRET_PREFIXES = ("ghp_", "gho_", "xox", "sk-", "eyJ", "AAAAAAAA", "Bearer")


def looks_like_secret(value: str) -> bool:
    """Heuristic: variable names are short words; tokens are long, mixed and random-looking."""
    if value.startswith(_SECRET_PREFIXES) or len(value) > 64:
        return True
    mixed = any(c.islower() for c in value) and any(c.isupper() for c in value) and any(c.isdigit() for c in value)
    return mixed and len(value) >= 16


def _env_name(value: str) -> str:
    """A `*_env` key must hold a variable *name*; refuse what looks like a pasted secret."""
    if not _ENV_NAME.match(value or "") or looks_like_secret(value):
        # Never echo the value: it may be the secret itself.
        raise ValueError(
            "must be the NAME of an environment variable (letters, digits, _), not the secret itself; "
            "put the secret in the environment and name the variable here"
        )
    return value


def check_cron(value: str) -> str:
    # Parsed as the scheduler reads it (crontab weekdays: 0 and 7 are Sunday), not by
    # CronTrigger.from_crontab, which in APScheduler 3 counts 0 as Monday.
    from scheduler import cron_trigger

    try:
        cron_trigger(value, "UTC")
    except Exception as exc:
        raise ValueError(
            f"{value!r} is not a valid cron expression ({exc}); use five fields: minute hour day month weekday,"
            ' e.g. "0 3 * * *"'
        ) from None
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


class BlueskyConfig(_Strict):
    enabled: bool = True
    base_url: str = "https://bsky.social"
    handle_env: str = "BSKY_HANDLE"
    app_password_env: str = "BSKY_APP_PASSWORD"
    page_size: int = Field(100, ge=1, le=100)
    overlap_minutes: int = Field(10, ge=0, le=1440)
    # The search index answers at most ~10,000 results per query; past that we narrow `until`.
    search_cap: int = Field(10000, ge=100)

    _check_env = field_validator("handle_env", "app_password_env")(_env_name)


class MastodonConfig(_Strict):
    enabled: bool = True
    instances: list[str] = Field(
        default_factory=lambda: ["https://mastodon.social", "https://mastodon.nl", "https://social.overheid.nl"]
    )
    access_token_env: str | None = "MASTODON_TOKEN"
    page_size: int = Field(40, ge=1, le=40)
    # Remote posts get ids from their publication time, so one that federates in late sorts
    # below the last harvest's newest id: each run re-reads this window to catch it.
    overlap_minutes: int = Field(60, ge=0, le=10080)

    _check_env = field_validator("access_token_env")(lambda v: v if v is None else _env_name(v))

    @field_validator("instances")
    @classmethod
    def _urls(cls, value: list[str]) -> list[str]:
        out = []
        for url in value:
            if not re.match(r"^https?://[^\s/]+", url or ""):
                raise ValueError(f"instance {url!r} is not a URL; write it as https://host")
            out.append(url.rstrip("/"))
        return out


class XConfig(_Strict):
    enabled: bool = False
    base_url: str = "https://api.x.com"
    bearer_token_env: str = "X_BEARER_TOKEN"
    # Posts the plan may read per calendar month; the harvest stops before passing it.
    monthly_cap: int = Field(10000, ge=0)
    page_size: int = Field(100, ge=10, le=100)

    _check_env = field_validator("bearer_token_env")(_env_name)


class SourcesConfig(_Strict):
    bluesky: BlueskyConfig = Field(default_factory=BlueskyConfig)
    mastodon: MastodonConfig = Field(default_factory=MastodonConfig)
    x: XConfig = Field(default_factory=XConfig)


class HarvestConfig(_Strict):
    max_retries: int = Field(5, ge=0, le=20)
    backoff_base: float = Field(1.0, ge=0)
    backoff_max: float = Field(60.0, ge=0)
    # Longest we wait on a 429 before giving up on that source for this run.
    max_rate_limit_wait: float = Field(900.0, ge=0)
    timeout: float = Field(30.0, gt=0)
    state_dir: str = ".innoverheid"


class JobConfig(_Strict):
    cron: str
    steps: list[Literal["harvest", "classify", "digest", "retention", "deletion_check"]] = Field(
        default_factory=lambda: ["digest"]
    )

    _check_cron = field_validator("cron")(lambda v: check_cron(v))


class ScheduleConfig(_Strict):
    timezone: str = "Europe/Amsterdam"
    nightly: str = "0 3 * * *"
    misfire_grace_minutes: int = Field(360, ge=0)
    lock_ttl_minutes: int = Field(240, ge=1)
    jobs: dict[str, JobConfig] = Field(default_factory=dict)

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except Exception:
            raise ValueError(f"unknown timezone {value!r}; use an IANA name such as Europe/Amsterdam") from None
        return value

    @field_validator("nightly")
    @classmethod
    def _cron(cls, value: str) -> str:
        return check_cron(value)


class ClassifierConfig(_Strict):
    model: str | None = None  # None: the bundled starter model
    min_confidence: float = Field(0.5, ge=0, le=1)
    batch_size: int = Field(5000, ge=1)


class ReportConfig(_Strict):
    out_dir: str = "reports"
    language: Literal["nl", "en"] = "nl"
    pseudonymize: bool = False
    top_ideas: int = Field(10, ge=1, le=100)
    min_posts_for_chart: int = Field(5, ge=0)


class PrivacyConfig(_Strict):
    retention_days: int | None = Field(None, ge=1)
    pseudonym_key_env: str = "INNOVERHEID_PSEUDONYM_KEY"
    deletion_check_days: int = Field(7, ge=0)

    _check_env = field_validator("pseudonym_key_env")(_env_name)


class AlertsConfig(_Strict):
    smtp_host: str | None = None
    smtp_port: int = 25
    smtp_starttls: bool = False
    smtp_user_env: str | None = None
    smtp_password_env: str | None = None
    mail_from: str | None = None
    mail_to: list[str] = Field(default_factory=list)
    webhook_url_env: str | None = None
    webhook_url: str | None = None
    quiet_runs: int = Field(3, ge=1)
    repeat_after_hours: float = Field(24.0, ge=0)

    _check_env = field_validator("smtp_user_env", "smtp_password_env", "webhook_url_env")(
        lambda v: v if v is None else _env_name(v)
    )


class LoggingConfig(_Strict):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    file: str | None = None
    format: Literal["text", "json"] = "text"
    max_bytes: int = 10_000_000
    backups: int = 5


class Config(_Strict):
    database: str = "sqlite:///innoverheid.db"
    hashtags: list[str] = Field(default_factory=lambda: ["innoverheid"])
    sources: SourcesConfig = Field(default_factory=SourcesConfig)
    harvest: HarvestConfig = Field(default_factory=HarvestConfig)
    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig)
    classifier: ClassifierConfig = Field(default_factory=ClassifierConfig)
    report: ReportConfig = Field(default_factory=ReportConfig)
    privacy: PrivacyConfig = Field(default_factory=PrivacyConfig)
    alerts: AlertsConfig = Field(default_factory=AlertsConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)
    # Where the config came from, so relative paths resolve next to it.
    base_dir: str = Field(default=".", exclude=True)

    @field_validator("hashtags")
    @classmethod
    def _tags(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("name at least one hashtag, e.g. [innoverheid]")
        out = []
        for tag in value:
            tag = str(tag).strip().lstrip("#").lower()
            if not re.match(r"^\w+$", tag):
                raise ValueError(f"hashtag {tag!r} may hold only letters, digits and _")
            out.append(tag)
        return out

    @field_validator("database")
    @classmethod
    def _db(cls, value: str) -> str:
        if not re.match(r"^(sqlite|postgresql)(\+\w+)?://", value or ""):
            raise ValueError(
                "must be a SQLAlchemy URL: sqlite:///path/to/file.db or postgresql+psycopg://user@host/dbname"
            )
        return value

    def resolve(self, path: str) -> Path:
        """A path from the config, relative to the config file's folder."""
        p = Path(path).expanduser()
        return p if p.is_absolute() else Path(self.base_dir) / p


# ---------------------------------------------------------------- loading


def _key_lines(text: str) -> dict[tuple, int]:
    """Map each key path in the YAML document to its 1-based line, for error messages."""
    lines: dict[tuple, int] = {}
    try:
        root = yaml.compose(text)
    except yaml.YAMLError:
        return lines

    def walk(node: Any, path: tuple) -> None:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                sub = path + (key.value,)
                lines[sub] = key.start_mark.line + 1
                walk(value, sub)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                lines[path + (i,)] = item.start_mark.line + 1
                walk(item, path + (i,))

    walk(root, ())
    return lines


def _nearest_line(lines: dict[tuple, int], loc: tuple) -> int | None:
    for n in range(len(loc), 0, -1):
        if tuple(loc[:n]) in lines:
            return lines[tuple(loc[:n])]
    return None


def _fix_for(err: dict) -> str:
    kind = err.get("type", "")
    if kind == "extra_forbidden":
        return "this key is unknown: remove it or check its spelling against the keys in the README's config guide"
    if kind.endswith("_type") or kind.endswith("_parsing"):
        return f"give a value of the right type ({err.get('msg', '').lower()})"
    return err.get("msg", "").removeprefix("Value error, ")


def parse_config(text: str, source: str = DEFAULT_CONFIG_NAME, base_dir: str = ".") -> Config:
    try:
        data = yaml.safe_load(text) if text.strip() else {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else None
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(
            source,
            [Problem(key=None, line=line, message=f"is not valid YAML: {problem}",
                     fix="check indentation (spaces, not tabs) and quote values that contain ':' or '#'")],
        ) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(source, [Problem(None, 1, "must be a mapping of keys (database:, hashtags:, sources: ...)",
                                           "start from the config.yaml in the repository")])
    data = dict(data)
    data["base_dir"] = base_dir
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        lines = _key_lines(text)
        problems = []
        for err in exc.errors():
            loc = tuple(err["loc"])
            key = ".".join(str(p) for p in loc) or None
            problems.append(Problem(key=key, line=_nearest_line(lines, loc), message="is invalid",
                                    fix=_fix_for(err)))
        raise ConfigError(source, problems) from None


def load_config(path: str | os.PathLike | None = None) -> Config:
    """Load the config: an explicit path, else ./config.yaml, else $INNOVERHEID_CONFIG, else defaults.

    `INNOVERHEID_DATABASE_URL` overrides `database` afterwards.
    """
    chosen: Path | None = None
    if path is not None:
        chosen = Path(path)
        if not chosen.is_file():
            raise ConfigError(str(chosen), [Problem(None, None, "does not exist or is not a file",
                                                    "give the path of an existing config.yaml")])
    elif Path(DEFAULT_CONFIG_NAME).is_file():
        chosen = Path(DEFAULT_CONFIG_NAME)
    elif os.environ.get("INNOVERHEID_CONFIG"):
        chosen = Path(os.environ["INNOVERHEID_CONFIG"])
        if not chosen.is_file():
            raise ConfigError(str(chosen), [Problem("INNOVERHEID_CONFIG", None, "names a file that does not exist",
                                                    "point INNOVERHEID_CONFIG at an existing config.yaml or unset it")])
    if chosen is None:
        cfg = Config(base_dir=".")
    else:
        try:
            text = chosen.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(str(chosen), [Problem(None, None, f"cannot be read ({exc.__class__.__name__})",
                                                    "check the file's permissions and that it is UTF-8 text")]
                              ) from None
        cfg = parse_config(text, str(chosen), str(chosen.parent.resolve()))
    override = os.environ.get("INNOVERHEID_DATABASE_URL")
    if override:
        try:
            cfg = cfg.model_copy(update={"database": Config._db(override)})
        except ValueError as exc:
            raise ConfigError("INNOVERHEID_DATABASE_URL", [Problem("INNOVERHEID_DATABASE_URL", None, "is invalid",
                                                                   str(exc))]) from None
    return cfg
