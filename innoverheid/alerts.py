"""Alerts: tell the organisers when something is wrong, once, through e-mail and/or a webhook.

After each job run, at most one message goes out, listing what is wrong:
- a step or a source failed (kind `failed`, one key per job and failing part, e.g. harvest/bluesky);
- a source that usually brings posts brought none for `alerts.quiet_runs` runs (kind `quiet`);
- a run was skipped because another process has held the job's lock for longer than
  `schedule.lock_ttl_minutes` (kind `stuck`).
The `alert_state` table remembers each key: a problem that goes on is held back for
`alerts.repeat_after_hours` (measured between the runs' start times, with 15 minutes' slack
so a nightly run that starts a little late is not re-alerted), then summarised once as
"failed N times since ...". When the part works again its state is cleared.

Secrets: messages are built from errors that name variables, never values, and are then
scrubbed of every value of a variable named in config.yaml (and of the usual secret-looking
variables) before they leave the process.
"""

from __future__ import annotations

import logging
import os
import smtplib
import socket
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

from sqlalchemy import delete, insert, select, update

from innoverheid.config import AlertsConfig, Config
from innoverheid.logs import redact, secret_values
from storage import Database
from storage.models import AlertState, JobRun

if TYPE_CHECKING:
    from innoverheid.jobs import JobResult

log = logging.getLogger("innoverheid.alerts")
state_t = AlertState.__table__
SLACK = timedelta(minutes=15)
QUIET_HISTORY = 10  # runs before a quiet streak that tell whether a source "usually" brings posts


@dataclass
class Alert:
    key: str
    kind: str  # failed | quiet | stuck
    text: str
    count: int = 1
    since: datetime | None = None

    def render(self) -> str:
        if self.count <= 1 or self.since is None:
            return self.text
        since = f"{self.since:%Y-%m-%d %H:%M} UTC"
        what = {"failed": f"failed {self.count} times since {since}",
                "quiet": f"no new posts at {self.count} checks since {since}",
                "stuck": f"skipped {self.count} times since {since}"}[self.kind]
        return f"{what} (a summary: repeats are held back); latest: {self.text}"


# ------------------------------------------------------------------ secrets


def config_secret_values(cfg: Config, env: Mapping[str, str] | None = None) -> list[str]:
    """Every value of a variable the config names (*_env keys), plus secret-looking variables."""
    env = os.environ if env is None else env
    names: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                if str(k).endswith("_env") and isinstance(v, str):
                    names.add(v)
                walk(v)

    walk(cfg.model_dump())
    values = [env[n] for n in names if env.get(n)]
    if cfg.alerts.webhook_url:
        values.append(cfg.alerts.webhook_url)
    values += secret_values(dict(env))
    values += [part for v in values for part in _url_secrets(v)]
    return sorted({v for v in values if len(v) >= 4}, key=len, reverse=True)


def _url_secrets(value: str) -> list[str]:
    """A webhook URL's secret is its token, wherever it shows up: long path segments, query values, password."""
    if not value.startswith(("http://", "https://")):
        return []
    parts = urlsplit(value)
    out = [seg for seg in parts.path.split("/") if len(seg) >= 8]
    out += [v for _, v in parse_qsl(parts.query) if len(v) >= 8]
    if parts.password:
        out.append(parts.password)
    return out


# ------------------------------------------------------------------ what is wrong


def _quiet_streak(db: Database, source: str) -> tuple[int, list[int]]:
    """(runs in a row without new posts, new counts of the runs before that streak), newest first."""
    t = JobRun.__table__
    with db.read() as conn:
        rows = conn.execute(select(t.c.counts).where(t.c.outcome.in_(("ok", "partial", "failed")),
                                                     t.c.counts.is_not(None)).order_by(t.c.id.desc()).limit(300))
        history = []
        for (counts,) in rows:
            entry = (counts or {}).get("sources", {}).get(source)
            # A failed source is alerted as a failure; it neither counts as quiet nor breaks a streak.
            if entry and entry.get("status") in ("ok", "skipped"):
                history.append(int(entry.get("new") or 0))
    streak = 0
    while streak < len(history) and history[streak] == 0:
        streak += 1
    return streak, history[streak:streak + QUIET_HISTORY]


def evaluate(cfg: Config, db: Database, result: JobResult) -> tuple[list[Alert], list[str]]:
    """The alerts this run raises, and the keys it shows to be fine again."""
    alerts: list[Alert] = []
    resolved: list[str] = []
    job = result.job
    if result.outcome == "skipped":
        ttl = timedelta(minutes=cfg.schedule.lock_ttl_minutes)
        if result.held_since and result.started_at and result.started_at - result.held_since > ttl:
            alerts.append(Alert(f"stuck:{job}", "stuck",
                                f"'{job}' was skipped: {result.holder} has held its lock since "
                                f"{result.held_since:%Y-%m-%d %H:%M} UTC, longer than schedule.lock_ttl_minutes; "
                                "if that process hangs, stop it (the next run resumes from the bookmarks)"))
        return alerts, resolved
    resolved.append(f"stuck:{job}")
    for step in result.steps:
        if step.status in ("not_run", "interrupted"):
            continue
        failing = set(step.failed_parts)
        for part in sorted(failing):
            src = part.split("/", 1)[1] if part.startswith("harvest/") else None
            detail = (result.sources.get(src) or {}).get("error") if src else step.error
            alerts.append(Alert(f"failed:{job}:{part}", "failed",
                                f"{job}: {part.replace('/', ' ')} failed: {detail or step.error or 'see the log'}"))
        fine = [f"{step.name}/{s}" for s in step.sources if f"{step.name}/{s}" not in failing]
        if step.name not in failing:
            fine.append(step.name)
        resolved += [f"failed:{job}:{p}" for p in fine]
    for source, entry in result.sources.items():
        if entry.get("status") not in ("ok", "skipped") or result.outcome == "interrupted":
            continue
        if entry.get("new"):
            resolved.append(f"quiet:{source}")
            continue
        streak, before = _quiet_streak(db, source)
        usually = bool(before) and 2 * sum(1 for n in before if n > 0) >= len(before)
        if streak >= cfg.alerts.quiet_runs and usually:
            why = f"; last run: {entry['error']}" if entry.get("error") else ""
            alerts.append(Alert(f"quiet:{source}", "quiet",
                                f"{source} brought no new posts in the last {streak} runs, though it usually "
                                f"does{why}; check that the hashtag is still in use and that its credentials "
                                "work"))
    return alerts, resolved


# ------------------------------------------------------------------ remembering


def _throttle(db: Database, alerts: list[Alert], resolved: list[str], now: datetime,
              repeat_after: timedelta) -> list[Alert]:
    """Update alert_state; return the alerts to send now (new ones, and summaries when due)."""
    due = []
    with db.write() as conn:
        for key in resolved:
            if conn.execute(delete(state_t).where(state_t.c.key == key)).rowcount:
                log.info("alerts: %s is fine again", key)
        for a in alerts:
            row = conn.execute(select(state_t).where(state_t.c.key == a.key)).first()
            if row is None:
                conn.execute(insert(state_t).values(key=a.key, first_at=now, last_at=now, count=1, suppressed=0,
                                                    message=a.text))
                due.append(a)
                continue
            held = (row.last_sent_at is not None and repeat_after > timedelta(0)
                    and now - row.last_sent_at < repeat_after + SLACK)
            conn.execute(update(state_t).where(state_t.c.key == a.key).values(
                count=row.count + 1, last_at=now, message=a.text, suppressed=row.suppressed + (1 if held else 0)))
            if not held:
                a.count, a.since = row.count + 1, row.first_at
                due.append(a)
    return due


def _mark_sent(db: Database, alerts: list[Alert], now: datetime) -> None:
    with db.write() as conn:
        for a in alerts:
            conn.execute(update(state_t).where(state_t.c.key == a.key).values(last_sent_at=now, suppressed=0))


# ------------------------------------------------------------------ the message


def compose(cfg: Config, result: JobResult, alerts: list[Alert],
            env: Mapping[str, str] | None = None) -> tuple[str, str, dict[str, Any]]:
    """(subject, body, webhook payload) for one run's alerts."""
    kinds = {a.kind for a in alerts}
    if "failed" in kinds:
        subject = f"[innoverheid] {result.job} {result.outcome} on {result.host}"
    elif "stuck" in kinds:
        subject = f"[innoverheid] {result.job} skipped on {result.host}: its lock is held too long"
    else:
        quiet = [a.key.split(":", 1)[1] for a in alerts if a.kind == "quiet"]
        subject = f"[innoverheid] no new posts from {', '.join(quiet)}"
    when = f"{result.started_at:%Y-%m-%d %H:%M} UTC" if result.started_at else "-"
    lines = [f"innoverheid on {result.host}: job '{result.job}' (run {result.run_id}, started {when}): "
             f"{result.outcome}.", "", "What is wrong:"]
    lines += [f"- {a.render()}" for a in alerts]
    if result.sources:
        lines += ["", "Sources in this run:"]
        lines += [f"  {name}: {s.get('status')}, new {s.get('new', 0)}, already known {s.get('known', 0)}, "
                  f"errors {s.get('errors', 0)}" for name, s in result.sources.items()]
    if result.steps:
        lines += ["", "Steps: " + ", ".join(f"{s.name} {s.status}" for s in result.steps)]
    lines += ["", f"What to do: run 'innoverheid status' on {result.host} for details. When a platform refuses the "
              "credentials, make new ones and put them in the environment variable named above (operations "
              "guide: \"When a source's credentials expire\"). The next run resumes from the bookmarks; "
              f"a problem that goes on is summarised at most once every {cfg.alerts.repeat_after_hours:g} hours."]
    secrets = config_secret_values(cfg, env)
    subject, body = redact(subject, secrets), redact("\n".join(lines), secrets)
    payload = {
        "text": f"{subject}\n\n{body}", "subject": subject, "job": result.job, "outcome": result.outcome,
        "host": result.host, "run_id": result.run_id, "started_at": result.started_at.isoformat()
        if result.started_at else None,
        "alerts": [{"kind": a.kind, "key": a.key, "count": a.count,
                    "since": a.since.isoformat() if a.since else None, "text": redact(a.render(), secrets)}
                   for a in alerts],
    }
    return subject, body, payload


# ------------------------------------------------------------------ the channels


def send_mail(a: AlertsConfig, subject: str, body: str, env: Mapping[str, str]) -> None:
    msg = EmailMessage()
    msg["Subject"] = subject
    msg["From"] = a.mail_from or f"innoverheid@{socket.gethostname()}"
    msg["To"] = ", ".join(a.mail_to)
    msg["Date"] = formatdate(localtime=True)
    msg["Message-ID"] = make_msgid(domain=socket.gethostname())
    msg.set_content(body)
    user = env.get(a.smtp_user_env) if a.smtp_user_env else None
    password = env.get(a.smtp_password_env) if a.smtp_password_env else None
    smtp_cls = smtplib.SMTP_SSL if a.smtp_port == 465 else smtplib.SMTP
    with smtp_cls(a.smtp_host, a.smtp_port, timeout=30) as smtp:
        if a.smtp_starttls and smtp_cls is smtplib.SMTP:
            smtp.starttls(context=ssl.create_default_context())
        if user and password:
            smtp.login(user, password)
        elif a.smtp_user_env or a.smtp_password_env:
            missing = [n for n in (a.smtp_user_env, a.smtp_password_env) if n and not env.get(n)]
            log.warning("alerts: sending without SMTP login: set %s", " and ".join(missing))
        smtp.send_message(msg)


def webhook_url(a: AlertsConfig, env: Mapping[str, str]) -> str | None:
    if a.webhook_url_env:
        url = env.get(a.webhook_url_env)
        if url:
            return url
        log.warning("alerts: alerts.webhook_url_env names %s, which is not set", a.webhook_url_env)
    return a.webhook_url


def send_webhook(url: str, payload: dict[str, Any]) -> None:
    import requests

    resp = requests.post(url, json=payload, timeout=15)
    if resp.status_code >= 400:
        raise RuntimeError(f"the webhook answered HTTP {resp.status_code}")


def deliver(cfg: Config, subject: str, body: str, payload: dict[str, Any],
            env: Mapping[str, str] | None = None) -> bool:
    """Send through every configured channel; True when at least one took it (or none is configured)."""
    env = os.environ if env is None else env
    a = cfg.alerts
    secrets = config_secret_values(cfg, env)
    tried, delivered = 0, 0
    if a.smtp_host:
        if not a.mail_to:
            log.error("alerts: alerts.smtp_host is set but alerts.mail_to is empty; add at least one address")
        else:
            tried += 1
            try:
                send_mail(a, subject, body, env)
                delivered += 1
            except (smtplib.SMTPException, OSError) as exc:
                log.error("alerts: e-mail through %s:%s failed: %s: %s", a.smtp_host, a.smtp_port,
                          exc.__class__.__name__, redact(str(exc), secrets))
    url = webhook_url(a, env)
    if url:
        tried += 1
        try:
            send_webhook(url, payload)
            delivered += 1
        except Exception as exc:  # noqa: BLE001 - report and go on; never show the URL (it may hold a token)
            log.error("alerts: the webhook failed: %s: %s", exc.__class__.__name__,
                      redact(str(exc).replace(url, "<webhook url>"), secrets))
    if tried == 0:
        # No channel configured: the log (file, journal, cron mail) is the channel.
        log.warning("ALERT %s\n%s", subject, body)
    elif delivered:
        log.info("alert sent through %d of %d channel(s): %s", delivered, tried, subject)
    return delivered > 0 or tried == 0


def after_run(cfg: Config, db: Database, result: JobResult, *, now: datetime | None = None,
              env: Mapping[str, str] | None = None) -> list[str]:
    """Evaluate one finished run; send one message if anything is due. Returns the keys sent."""
    now = now or result.started_at or datetime.now(timezone.utc)
    env = os.environ if env is None else env
    alerts, resolved = evaluate(cfg, db, result)
    due = _throttle(db, alerts, resolved, now, timedelta(hours=cfg.alerts.repeat_after_hours))
    if not due:
        return []
    subject, body, payload = compose(cfg, result, due, env)
    if deliver(cfg, subject, body, payload, env):
        _mark_sent(db, due, now)
        return [a.key for a in due]
    log.error("alerts: no channel took the message; it is tried again after the next run")
    return []
