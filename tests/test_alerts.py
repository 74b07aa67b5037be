"""Alerts reach a real SMTP server (aiosmtpd) and a real HTTP server on 127.0.0.1: one message for
one failure, a summary instead of repeats, the quiet-source alert, and never a secret.

Failures are scripted by replacing a step function in innoverheid.jobs.STEPS; the quiet-source
runs use a fake platform registered as "mastodon" in harvester.registry.REGISTRY (this module's
build()), which brings as many posts per run as the test says.
"""

from __future__ import annotations

import json
import socket
from datetime import datetime, timedelta, timezone
from email import message_from_string

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from harvester.base import Page, Post
from harvester.registry import REGISTRY
from innoverheid import jobs
from innoverheid.config import Config
from innoverheid.jobs import run_job
from storage import open_database
from test_signals import table

SMTP_USER, SMTP_PASSWORD = "alerts@gemeente.example", "smtp-Pa55word-4711"
HOOK_TOKEN = "T0KEN-hook-98f1c2"
API_SECRET = "bsky-app-pw-zz91-qq7"
T0 = datetime(2025, 3, 3, 3, 0, tzinfo=timezone.utc)


class Inbox:
    def __init__(self) -> None:
        self.messages: list[str] = []
        self.logins: list[tuple[str, str]] = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(envelope.content.decode("utf-8", "replace"))
        return "250 OK"

    def authenticate(self, server, session, envelope, mechanism, auth_data):
        self.logins.append((auth_data.login.decode(), auth_data.password.decode()))
        return AuthResult(success=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def inbox():
    box = Inbox()
    controller = Controller(box, hostname="127.0.0.1", port=_free_port(), authenticator=box.authenticate,
                            auth_require_tls=False)
    controller.start()
    yield box, controller.port
    controller.stop()


@pytest.fixture
def hook(httpserver):
    httpserver.expect_request(f"/hooks/{HOOK_TOKEN}", method="POST").respond_with_data("ok")
    return httpserver


@pytest.fixture
def setup(db_url, inbox, hook, monkeypatch):
    box, port = inbox
    monkeypatch.setenv("ALERT_SMTP_USER", SMTP_USER)
    monkeypatch.setenv("ALERT_SMTP_PASS", SMTP_PASSWORD)
    monkeypatch.setenv("ALERT_HOOK", hook.url_for(f"/hooks/{HOOK_TOKEN}"))
    monkeypatch.setenv("BSKY_APP_PASSWORD", API_SECRET)
    cfg = Config.model_validate({
        "database": db_url,
        "sources": {"bluesky": {"enabled": False}, "mastodon": {"enabled": True}, "x": {"enabled": False}},
        "alerts": {"smtp_host": "127.0.0.1", "smtp_port": port, "smtp_user_env": "ALERT_SMTP_USER",
                   "smtp_password_env": "ALERT_SMTP_PASS", "mail_from": "innoverheid@gemeente.example",
                   "mail_to": ["organisatie@gemeente.example"], "webhook_url_env": "ALERT_HOOK",
                   "quiet_runs": 3, "repeat_after_hours": 24},
    })
    # The platform stand-in (see build() below) brings the posts the test scripts.
    monkeypatch.setitem(REGISTRY, "mastodon", __name__)
    FakeSource.plan = []
    db = open_database(db_url)
    yield cfg, db, box, hook
    db.dispose()


def webhook_posts(hook) -> list[dict]:
    return [json.loads(req.get_data()) for req, _ in hook.log]


def mails(box: Inbox) -> list:
    return [message_from_string(m) for m in box.messages]


def everything_sent(box: Inbox, hook) -> str:
    return "\n".join(box.messages) + "\n".join(req.get_data(as_text=True) for req, _ in hook.log)


def failing_digest(ctx):
    # What a careless library might say: its error echoes a URL with a token and a password.
    raise RuntimeError(f"upload to https://user:{API_SECRET}@files.example/{HOOK_TOKEN} refused")


def at(hours: float):
    return lambda: T0 + timedelta(hours=hours)


def test_one_failure_sends_exactly_one_message_per_channel_and_no_secret(setup, monkeypatch):
    cfg, db, box, hook = setup
    monkeypatch.setitem(jobs.STEPS, "digest", failing_digest)
    result = run_job(cfg, db, steps=["digest"], clock=at(0))
    assert result.outcome == "failed"

    (mail,) = mails(box)
    (payload,) = webhook_posts(hook)
    assert mail["Subject"] == payload["subject"] == f"[innoverheid] nightly failed on {socket.gethostname()}"
    assert mail["To"] == "organisatie@gemeente.example"
    assert "digest failed" in mail.get_payload() and "digest failed" in payload["text"]
    assert payload["outcome"] == "failed" and payload["alerts"][0]["key"] == "failed:nightly:digest"
    assert box.logins == [(SMTP_USER, SMTP_PASSWORD)]  # credentials came from the environment ...
    sent = everything_sent(box, hook)
    for secret in (SMTP_PASSWORD, HOOK_TOKEN, API_SECRET):  # ... and never appear in what was sent
        assert secret not in sent
    assert "***" in sent
    (run,) = table(db.url, "job_runs")
    assert API_SECRET not in run["error"] and HOOK_TOKEN not in run["error"]  # nor in the database


def test_repeated_failures_are_summarised_not_repeated(setup, monkeypatch):
    cfg, db, box, hook = setup
    monkeypatch.setitem(jobs.STEPS, "digest", failing_digest)
    for hours in (0, 1, 2):  # the same failure three times within repeat_after_hours: one message
        run_job(cfg, db, steps=["digest"], clock=at(hours))
    assert len(box.messages) == 1 and len(hook.log) == 1

    run_job(cfg, db, steps=["digest"], clock=at(25))  # past the 24 hours: one summary
    assert len(box.messages) == 2 and len(hook.log) == 2
    summary = mails(box)[1].get_payload()
    assert "failed 4 times since 2025-03-03 03:00 UTC" in summary
    assert webhook_posts(hook)[1]["alerts"][0]["count"] == 4

    run_job(cfg, db, steps=["digest"], clock=at(26))  # held back again
    assert len(box.messages) == 2

    monkeypatch.setitem(jobs.STEPS, "digest", lambda ctx: jobs.StepResult("digest"))
    assert run_job(cfg, db, steps=["digest"], clock=at(27)).outcome == "ok"  # fixed: state cleared
    assert len(box.messages) == 2
    monkeypatch.setitem(jobs.STEPS, "digest", failing_digest)
    run_job(cfg, db, steps=["digest"], clock=at(28))  # a new failure after a recovery is news
    assert len(box.messages) == 3 and "times since" not in mails(box)[2].get_payload()


def test_a_different_failure_is_its_own_alert(setup, monkeypatch):
    cfg, db, box, hook = setup
    monkeypatch.setitem(jobs.STEPS, "digest", failing_digest)
    run_job(cfg, db, steps=["digest"], clock=at(0))

    def broken_retention(ctx):
        raise RuntimeError("disk full")

    monkeypatch.setitem(jobs.STEPS, "retention", broken_retention)
    run_job(cfg, db, steps=["digest", "retention"], clock=at(1))
    assert len(box.messages) == 2
    second = mails(box)[1].get_payload()
    assert "- nightly: retention failed: unexpected RuntimeError: disk full" in second
    assert "- nightly: digest failed" not in second  # still failing, but already reported


def test_a_source_that_goes_quiet_is_reported_once(setup):
    cfg, db, box, hook = setup
    FakeSource.plan = [4, 2, 3, 0, 0, 0, 0, 5]  # posts per run
    sent_after = []
    for n in range(len(FakeSource.plan)):
        result = run_job(cfg, db, steps=["harvest"], clock=at(n))  # hourly, within repeat_after_hours
        assert result.outcome == "ok"
        sent_after.append(len(box.messages))
    # The third empty run in a row (run 6) alerts; the fourth is held back; posts again clear it.
    assert sent_after == [0, 0, 0, 0, 0, 1, 1, 1]
    (mail,) = mails(box)
    assert mail["Subject"] == "[innoverheid] no new posts from fake"
    assert "fake brought no new posts in the last 3 runs, though it usually does" in mail.get_payload()
    assert webhook_posts(hook)[0]["alerts"][0]["kind"] == "quiet"
    assert not table(db.url, "alert_state")


def test_a_source_that_never_brought_posts_is_not_called_quiet(setup):
    cfg, db, box, hook = setup
    FakeSource.plan = [0, 0, 0, 0]
    for n in range(4):
        run_job(cfg, db, steps=["harvest"], clock=at(n))
    assert box.messages == [] and hook.log == []


def test_a_broken_channel_does_not_stop_the_other(setup, monkeypatch, httpserver):
    cfg, db, box, hook = setup
    httpserver.clear()
    httpserver.expect_request(f"/hooks/{HOOK_TOKEN}", method="POST").respond_with_data("down", status=502)
    monkeypatch.setitem(jobs.STEPS, "digest", failing_digest)
    result = run_job(cfg, db, steps=["digest"], clock=at(0))
    assert result.outcome == "failed" and len(box.messages) == 1
    assert result.alerts_sent == ["failed:nightly:digest"]


# ------------------------------------------------------------------ the platform stand-in


class FakeSource:
    name = "fake"
    plan: list[int] = []
    run = 0

    def targets(self):
        return [""]

    def pages(self, hashtag, target, bookmark):
        n = FakeSource.plan[FakeSource.run] if FakeSource.run < len(FakeSource.plan) else 0
        FakeSource.run += 1
        created = T0 + timedelta(hours=FakeSource.run)
        yield Page([Post("fake", f"r{FakeSource.run}-{i}", f"Idee {i} #{hashtag}", {"i": i}, created_at=created,
                         hashtags=[hashtag]) for i in range(n)], bookmark={"run": FakeSource.run})


def build(ctx) -> FakeSource:
    return FakeSource()


@pytest.fixture(autouse=True)
def _reset_fake():
    FakeSource.run = 0
    yield
