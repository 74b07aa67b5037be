"""Secrets are kept (issue 7, point 3): no token in any output, file, log line or message.

Distinctive values go into the environment (the three platforms' credentials, the pseudonym
key, an SMTP login); the real `innoverheid` command then runs as a separate process, at -vv
with a JSON debug log file, against the three local platform servers: good harvests, wrong
tokens (401), rate limits, server errors, timeouts, a nightly `run` that sends an alert mail
through an SMTP server requiring login, status, every export format, forget. Afterwards every
byte the program wrote is searched for each secret, raw and in its base64 and URL-encoded
forms: its stdout and stderr, the log file, the SQLite file and its -wal, the exports, the
state folder with the Bluesky session file, the digest (pseudonymised with the key), the
alert mail.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import stat
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest
import yaml
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from innoverheid.sandbox.bluesky import BlueskyServer
from innoverheid.sandbox.mastodon import MastodonFake
from innoverheid.sandbox.sample import SamplePost
from innoverheid.sandbox.x import XServer

REPO = Path(__file__).resolve().parent.parent
T0 = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)

# Distinctive, and with characters that base64 and URL encoding change.
BSKY_PASSWORD = "bsky-S3cret+app/pw=Zq81"
MASTODON_TOKEN = "masto-S3cret+tok/en=Vw52"
X_BEARER = "AAAAx-S3cret%2Fbearer+tok=Kp03"
PSEUDONYM_KEY = "pseudo-S3cret+key/Hy44"
SMTP_PASSWORD = "smtp-S3cret+pw/Lm67"
WRONG = {"BSKY_APP_PASSWORD": "wrong-S3cret+bsky/Aa11", "MASTODON_TOKEN": "wrong-S3cret+masto/Bb22",
         "X_BEARER_TOKEN": "wrong-S3cret+x/Cc33"}
SECRETS = [BSKY_PASSWORD, MASTODON_TOKEN, X_BEARER, PSEUDONYM_KEY, SMTP_PASSWORD, *WRONG.values()]
CREDENTIAL_VARS = ("BSKY_APP_PASSWORD", "MASTODON_TOKEN", "X_BEARER_TOKEN")


def encoded_forms(secret: str) -> set[bytes]:
    """The secret as bytes, URL-encoded, JSON-escaped, and base64 at each of the three alignments
    it can have inside a longer encoded string (only the groups the secret alone determines)."""
    raw = secret.encode()
    forms = {raw, quote(secret, safe="").encode(), quote_plus(secret).encode(), json.dumps(secret)[1:-1].encode()}
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        for k in range(3):
            b = encode(b"\0" * k + raw)
            forms.add(b[4 if k else 0: len(b) - (4 if (k + len(raw)) % 3 else 0)])
    assert all(len(f) >= 12 for f in forms)
    return forms


def test_the_search_finds_every_form_it_looks_for():
    """The search must be able to fail: a secret inside a Basic-auth header, URL or JSON is found."""
    def found(blob: bytes) -> bool:
        return any(f in blob for f in encoded_forms(BSKY_PASSWORD))

    for prefix in ("", "a", "ab", "abc"):
        assert found(base64.b64encode(f"{prefix}user:{BSKY_PASSWORD}".encode()))
        assert found(base64.urlsafe_b64encode(f"{prefix}{BSKY_PASSWORD}!".encode()))
    assert found(f"https://h/?p={quote(BSKY_PASSWORD, safe='')}&x=1".encode())
    assert found(json.dumps({"p": BSKY_PASSWORD}).encode())
    assert not found(base64.b64encode(b"nothing secret here at all, only a harmless sentence"))


# ---------------------------------------------------------------- the world the program runs in


def sample(prefix: str, n: int = 12) -> list[SamplePost]:
    return [SamplePost(id=f"{prefix}{i}", text=f"Idee {prefix}{i}: meer lef #innoverheid", author=f"auteur{i % 3}",
                       author_name=f"Auteur {i % 3}", created_at=T0 + timedelta(minutes=i)) for i in range(n)]


class SmtpHandler:
    def __init__(self):
        self.messages: list[bytes] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
        self.messages.append(envelope.original_content or envelope.content)
        return "250 OK"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def smtp():
    handler = SmtpHandler()
    logins: list[bool] = []

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = isinstance(auth_data, LoginPassword) and auth_data.password == SMTP_PASSWORD.encode()
        logins.append(ok)
        return AuthResult(success=ok)

    controller = Controller(handler, hostname="127.0.0.1", port=_free_port(), authenticator=authenticator,
                            auth_require_tls=False, auth_required=True)
    controller.start()
    handler.logins = logins
    handler.port = controller.port
    yield handler
    controller.stop()


class Program:
    """The `innoverheid` command as a separate process; keeps everything it printed."""

    def __init__(self, workdir: Path, env: dict[str, str]):
        self.workdir, self.env = workdir, env
        self.outputs: list[tuple[str, bytes]] = []

    def __call__(self, *args: str, env: dict[str, str] | None = None, timeout: float = 120):
        proc = subprocess.run([sys.executable, "-m", "innoverheid.cli", *args], cwd=self.workdir,
                              env={**self.env, **(env or {})}, capture_output=True, timeout=timeout)
        name = " ".join(args)
        self.outputs += [(f"stdout of {name}", proc.stdout), (f"stderr of {name}", proc.stderr)]
        return proc


@pytest.fixture
def world(tmp_path, smtp):
    fakes = {"bluesky": BlueskyServer(sample("b"), password=BSKY_PASSWORD).start(),
             "mastodon": MastodonFake(sample("m"), token=MASTODON_TOKEN).start(),
             "x": XServer(sample("x"), bearer_token=X_BEARER).start()}
    for fake in fakes.values():
        fake.timeout_seconds = 1.0  # a scripted timeout stalls longer than the client waits
    config: dict = {
        "database": "sqlite:///innoverheid.db",
        "harvest": {"timeout": 0.5, "max_retries": 3, "backoff_base": 0.01, "backoff_max": 0.05,
                    "max_rate_limit_wait": 30},
        "logging": {"file": "innoverheid.log", "format": "json", "level": "DEBUG"},
        "report": {"pseudonymize": True},  # the digest's pseudonyms use the key
        "alerts": {"smtp_host": "127.0.0.1", "smtp_port": smtp.port, "smtp_user_env": "INNOVERHEID_SMTP_USER",
                   "smtp_password_env": "INNOVERHEID_SMTP_PASSWORD", "mail_from": "innoverheid@example.org",
                   "mail_to": ["organisatie@example.org"]},
    }
    env: dict[str, str] = {}
    for fake in fakes.values():
        fake.configure(config, env)
    assert env["BSKY_APP_PASSWORD"] == BSKY_PASSWORD and env["X_BEARER_TOKEN"] == X_BEARER
    assert MASTODON_TOKEN in env["MASTODON_TOKEN"]
    workdir = tmp_path / "work"
    workdir.mkdir()
    (workdir / "config.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    base = {k: v for k, v in os.environ.items()
            if not k.startswith(("INNOVERHEID_", "BSKY_", "MASTODON_", "X_")) and "PYTEST" not in k}
    env.update(INNOVERHEID_PSEUDONYM_KEY=PSEUDONYM_KEY, INNOVERHEID_SMTP_USER="alerts@example.org",
               INNOVERHEID_SMTP_PASSWORD=SMTP_PASSWORD, PYTHONPATH=str(REPO), COLUMNS="200")
    yield Program(workdir, {**base, **env}), fakes
    for fake in fakes.values():
        fake.stop()


def _servers(fake) -> list:
    return list(fake.servers.values()) if isinstance(fake, MastodonFake) else [fake]


def _set_faults(fakes: dict, scripts: dict[str, list[str]], reset: float = 0.0) -> None:
    for name, fake in fakes.items():
        for server in _servers(fake):
            server.faults = list(scripts.get(name, []))
            server.rate_limit_reset = reset


def everything_written(program: Program, smtp: SmtpHandler) -> list[tuple[str, bytes]]:
    blobs = list(program.outputs)
    for path in sorted(program.workdir.rglob("*")):
        if path.is_file():
            blobs.append((str(path.relative_to(program.workdir)), path.read_bytes()))
    blobs += [(f"alert mail {i}", m) for i, m in enumerate(smtp.messages)]
    return blobs


# ---------------------------------------------------------------- the run


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_no_secret_in_anything_the_program_writes(world, smtp):
    program, fakes = world

    # 1. A good night with hiccups: 429 (waited for), 500, a timeout and a cut-off body, all retried.
    _set_faults(fakes, {n: ["429", "500", "timeout", "truncate"] for n in fakes})
    first = program("-vv", "harvest")
    assert first.returncode == 0, first.stderr.decode()[-2000:]
    assert first.stdout.decode().count("new 12") == 3

    # 2. Wrong credentials everywhere: the session the first run stored is refused too.
    fakes["bluesky"].revoke_all()
    wrong = program("-vv", "harvest", env=WRONG)
    assert wrong.returncode == 1
    said = (wrong.stdout + wrong.stderr).decode()
    for var in CREDENTIAL_VARS:
        assert f"environment variable {var}" in said, var  # the message names the variable ...

    # 3. Platforms down, rate limited past the configured wait, timing out: each source gives up.
    _set_faults(fakes, {"bluesky": ["timeout"] * 4, "mastodon": ["429"], "x": ["503"] * 4}, reset=3600)
    down = program("-vv", "harvest")
    assert down.returncode == 1 and down.stdout.decode().count(": failed") == 3
    _set_faults(fakes, {})

    # 4. A credential missing altogether: named, the other sources still run.
    missing = program("-vv", "harvest", env={"X_BEARER_TOKEN": ""})
    assert b"environment variable(s) not set: X_BEARER_TOKEN" in missing.stdout + missing.stderr

    # 5. The nightly job with a failing source: an alert goes out by mail, with an SMTP login.
    nightly = program("-vv", "run", "--steps", "harvest", env={"X_BEARER_TOKEN": WRONG["X_BEARER_TOKEN"]})
    assert nightly.returncode == 1, nightly.stderr.decode()[-2000:]
    assert smtp.logins and all(smtp.logins) and smtp.messages and b"X_BEARER_TOKEN" in smtp.messages[-1]

    # 6. Everything an analyst or organiser does next.
    for args in (["status"], ["status", "--json"]):
        assert program("-vv", *args).returncode == 0
    for fmt in ("csv", "xlsx", "parquet", "jsonl"):
        assert program("-vv", "export", "--out", f"posts.{fmt}").returncode == 0
    assert program("-vv", "export", "--out", "pseudo.csv", "--pseudonymize").returncode == 0
    assert program("-vv", "classify").returncode == 0
    assert program("-vv", "digest").returncode == 0
    forgot = program("-vv", "forget", "--author", "auteur1.bsky.social", "--yes")
    assert forgot.returncode == 0 and b"erased 4 post(s)" in forgot.stdout
    assert program("-vv", "forget", "--post", "x:" + fakes["x"].tweet_id("x2"), "--yes").returncode == 0

    # What there is to search: the log is JSON at debug level, the session file and the exports exist.
    work = program.workdir
    lines = (work / "innoverheid.log").read_text(encoding="utf-8").splitlines()
    records = [json.loads(line) for line in lines]
    assert len(records) > 30 and {"DEBUG", "INFO", "WARNING", "ERROR"} <= {r["level"] for r in records}
    errors = " ".join(r["message"] for r in records if r["level"] == "ERROR")
    for var in CREDENTIAL_VARS:  # ... in the log file too, where a cron job's organiser looks
        assert f"environment variable {var}" in errors, var
    session = work / ".innoverheid" / "bluesky-session.json"
    assert session.is_file() and stat.S_IMODE(session.stat().st_mode) == 0o600
    assert "session" in json.loads(session.read_text())  # the tokens the server issued: that is its job
    for name in ("posts.csv", "posts.xlsx", "posts.parquet", "posts.jsonl", "pseudo.csv", "innoverheid.db",
                 "reports/digest.html", "reports/digest.md"):
        assert (work / name).stat().st_size > 0, name

    blobs = everything_written(program, smtp)
    assert len(blobs) >= 30
    leaks = [(where, secret) for secret in SECRETS for where, blob in blobs
             if any(form in blob for form in encoded_forms(secret))]
    assert leaks == [], f"secrets written: {leaks}"


def test_a_database_password_is_never_shown(tmp_path):
    """A PostgreSQL URL with a password, and a server that is not there: the error hides the password."""
    password = "db-S3cret+pw/Qr99"
    env = {k: v for k, v in os.environ.items() if not k.startswith("INNOVERHEID_")}
    env.update(PYTHONPATH=str(REPO), INNOVERHEID_DATABASE_URL=f"postgresql+psycopg://innov:{quote(password, safe='')}"
               f"@127.0.0.1:{_free_port()}/innoverheid")
    for args in (["status"], ["--debug", "status"], ["-vv", "export", "--out", "x.csv"]):
        proc = subprocess.run([sys.executable, "-m", "innoverheid.cli", *args], cwd=tmp_path, env=env,
                              capture_output=True, timeout=60)
        assert proc.returncode == 2, proc.stderr.decode()[-1500:]
        out = proc.stdout + proc.stderr
        assert b"127.0.0.1" in out  # the message says where it tried ...
        assert not any(f in out for f in encoded_forms(password)), args  # ... never with what
    assert not any(p.is_file() for p in tmp_path.rglob("*"))

